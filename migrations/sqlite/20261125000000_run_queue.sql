-- The runs table is the queue shared by every node (SPEC §9).
-- owner: the lease token of the node process that claimed the run (fencing: every later
--   change of the run must name it); node_id now stays NULL until a node claims the run.
-- concurrency: the script's rule when the run was admitted, so claims need no join.
-- cancel_requested: a cancel asked on any node, for the owner to act on.
-- lease_until: when the owner's lease on a running run runs out unless renewed; each owner
--   sets it from its own lease length, so nodes need not agree on one.
ALTER TABLE runs ADD COLUMN owner TEXT;
ALTER TABLE runs ADD COLUMN lease_until BIGINT;
ALTER TABLE runs ADD COLUMN concurrency TEXT NOT NULL DEFAULT 'parallel';
ALTER TABLE runs ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT FALSE;
-- At most one active run of a `single` script, whichever node admitted it.
CREATE UNIQUE INDEX runs_one_active_single ON runs (script_id)
    WHERE concurrency = 'single' AND status IN ('queued', 'running');
-- The queue, oldest first.
CREATE INDEX runs_queued ON runs (id) WHERE status = 'queued';
-- Active runs of a script, for the `queue` rule and cancels.
CREATE INDEX runs_active ON runs (script_id, id) WHERE status IN ('queued', 'running');
