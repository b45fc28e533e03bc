-- An admission may start its run at once on the node that admits it: a node with a free slot
-- passes its lease (start_owner, start_node, start_at, start_until), and the run is written
-- as running under that lease when no queued run that a claim could take is waiting (the
-- claim's own test: due, and not a `queue` run behind another of its script) and its script is
-- not `queue` (whose turns are the claims' to give). Otherwise it is queued as before. The
-- statement's RETURNING reads the status the trigger wrote.
-- A run made from a definition that is no longer its script's current version (a node may
-- hold one from an earlier run) is refused with 'scriptd: definition changed'.
DROP TRIGGER run_admission;
DROP VIEW run_admissions;

CREATE VIEW run_admissions (
    id, script_id, status, trigger_kind, meta, input, queued_at, started_at, finished_at,
    exit_code, signal, error, output_tail, result, log_bytes, log_truncated, node_id,
    script_version, concurrency, queue_total, queue_per_script,
    audit_id, audit_at, audit_actor, audit_client, audit_action, audit_target, audit_summary,
    audit_count, start_owner, start_node, start_at, start_until
) AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL WHERE 0;

CREATE TRIGGER run_admission INSTEAD OF INSERT ON run_admissions
BEGIN
    SELECT RAISE(ABORT, 'scriptd: definition changed')
    WHERE (SELECT version FROM scripts WHERE id = NEW.script_id) IS NOT NEW.script_version;
    SELECT RAISE(ABORT, 'scriptd: queue full')
    WHERE (SELECT COUNT(*) FROM runs WHERE status = 'queued') >= NEW.queue_total
       OR (SELECT COUNT(*) FROM runs WHERE script_id = NEW.script_id AND status = 'queued')
          >= NEW.queue_per_script;
    INSERT INTO runs (id, script_id, status, trigger_kind, meta, input, queued_at, started_at,
        finished_at, exit_code, signal, error, output_tail, result, log_bytes, log_truncated,
        node_id, script_version, concurrency)
    VALUES (NEW.id, NEW.script_id, NEW.status, NEW.trigger_kind, NEW.meta, NEW.input,
        NEW.queued_at, NEW.started_at, NEW.finished_at, NEW.exit_code, NEW.signal, NEW.error,
        NEW.output_tail, NEW.result, NEW.log_bytes, NEW.log_truncated, NEW.node_id,
        NEW.script_version, NEW.concurrency);
    UPDATE runs SET status = 'running', owner = NEW.start_owner, node_id = NEW.start_node,
        started_at = NEW.start_at, lease_until = NEW.start_until
    WHERE id = NEW.id AND NEW.start_owner IS NOT NULL AND NEW.concurrency <> 'queue'
      AND NOT EXISTS (SELECT 1 FROM runs q WHERE q.status = 'queued' AND q.id <> NEW.id
          AND (q.not_before IS NULL OR q.not_before <= NEW.start_at)
          AND (q.concurrency <> 'queue' OR NOT EXISTS (
              SELECT 1 FROM runs o WHERE o.script_id = q.script_id
              AND o.status IN ('queued', 'running') AND (o.status = 'running' OR o.id < q.id))));
    INSERT INTO audit_log (id, at, actor, client, action, target, summary, count)
    VALUES (NEW.audit_id, NEW.audit_at, NEW.audit_actor, NEW.audit_client, NEW.audit_action,
        NEW.audit_target, NEW.audit_summary, NEW.audit_count);
END;
