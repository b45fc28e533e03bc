-- Per-script memory limit for the isolated JavaScript runner, in MiB; NULL = server default.
ALTER TABLE scripts ADD COLUMN memory_limit_mb BIGINT;
