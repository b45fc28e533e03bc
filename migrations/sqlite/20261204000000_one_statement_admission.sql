-- A run's admission in one statement, as PostgreSQL does with a data-modifying WITH, which
-- SQLite lacks: inserting into this view checks the queue's bounds, writes the run and its
-- start's audit entry, all or nothing. Each statement is a hand-off to the connection's
-- thread, so one instead of a transaction of four is most of what admission costs.
-- A full queue is the error 'scriptd: queue full'; a busy `single` script is the unique
-- index's violation, as with a plain insert.
CREATE VIEW run_admissions (
    id, script_id, status, trigger_kind, meta, input, queued_at, started_at, finished_at,
    exit_code, signal, error, output_tail, result, log_bytes, log_truncated, node_id,
    script_version, concurrency, queue_total, queue_per_script,
    audit_id, audit_at, audit_actor, audit_client, audit_action, audit_target, audit_summary,
    audit_count
) AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL WHERE 0;

CREATE TRIGGER run_admission INSTEAD OF INSERT ON run_admissions
BEGIN
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
    INSERT INTO audit_log (id, at, actor, client, action, target, summary, count)
    VALUES (NEW.audit_id, NEW.audit_at, NEW.audit_actor, NEW.audit_client, NEW.audit_action,
        NEW.audit_target, NEW.audit_summary, NEW.audit_count);
END;
