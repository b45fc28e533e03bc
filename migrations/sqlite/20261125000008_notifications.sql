-- A script's webhooks (JSON; signing secrets sealed), and each notification to deliver.
ALTER TABLE scripts ADD COLUMN notifications TEXT NOT NULL DEFAULT '[]';
-- One row per notification of a run to a webhook: the notifier of any node claims it when
-- due (owner/lease_until, like runs), sends it and records the answer; a failed attempt is
-- due again later, until the last one.
CREATE TABLE deliveries (
    id          TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL,
    script_id   TEXT NOT NULL,
    event       TEXT NOT NULL,
    url         TEXT NOT NULL,
    status      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     BIGINT NOT NULL,
    owner       TEXT,
    lease_until BIGINT,
    response    INTEGER,
    error       TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX deliveries_by_run ON deliveries (run_id);
CREATE INDEX deliveries_due ON deliveries (next_at) WHERE status = 'pending';
