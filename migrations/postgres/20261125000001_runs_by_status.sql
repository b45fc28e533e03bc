-- Runs filtered by status come newest first: the index serves the order too.
DROP INDEX runs_by_status;
CREATE INDEX runs_by_status ON runs (status, id);
