-- A `queue` script runs one run at a time, across every node. A claim tests that rule in its
-- statement's snapshot, where a run another node is claiming at that moment still looks queued
-- and, when its admission committed after a later-numbered one's, does not come first: both
-- claims would start a run. With this index the second claim fails instead, once the first
-- has committed, and is made again on what is then committed.
-- Runs that already broke the rule (that race, before this index) are ended first: every one
-- but the oldest running run of its script.
UPDATE runs r SET status = 'failed',
    finished_at = (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT,
    error = 'ended: another run of this queue script was running at the same time'
WHERE r.concurrency = 'queue' AND r.status = 'running' AND EXISTS (
    SELECT 1 FROM runs o WHERE o.script_id = r.script_id AND o.concurrency = 'queue'
    AND o.status = 'running' AND o.id < r.id);
CREATE UNIQUE INDEX runs_one_running_queue_run ON runs (script_id)
    WHERE concurrency = 'queue' AND status = 'running';
