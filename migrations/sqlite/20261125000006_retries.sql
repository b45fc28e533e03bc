-- A script's retry policy (JSON; '{}' is none), and when a queued retry is due (ms; NULL: now).
ALTER TABLE scripts ADD COLUMN retry_policy TEXT NOT NULL DEFAULT '{}';
ALTER TABLE runs ADD COLUMN not_before BIGINT;
