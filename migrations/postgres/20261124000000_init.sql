-- Times are milliseconds since the Unix epoch (UTC); JSON is stored as text.
CREATE TABLE scripts (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    code_identifier  TEXT NOT NULL UNIQUE,
    description      TEXT NOT NULL DEFAULT '',
    script_type      TEXT NOT NULL,
    runner           TEXT NOT NULL,
    script           TEXT NOT NULL,
    working_dir      TEXT,
    env              TEXT NOT NULL DEFAULT '[]',
    timeout_ms       BIGINT NOT NULL,
    enabled          BOOLEAN NOT NULL,
    concurrency      TEXT NOT NULL,
    schedule_enabled BOOLEAN NOT NULL DEFAULT FALSE,
    schedule_cron    TEXT NOT NULL DEFAULT '',
    schedule_tz      TEXT NOT NULL DEFAULT 'UTC',
    next_fire_at     BIGINT,
    api_enabled      BOOLEAN NOT NULL DEFAULT FALSE,
    token_hash       TEXT,
    token_created_at BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE TABLE runs (
    id            TEXT PRIMARY KEY,
    script_id     TEXT NOT NULL,
    status        TEXT NOT NULL,
    trigger_kind  TEXT NOT NULL,
    meta          TEXT NOT NULL DEFAULT '{}',
    input         TEXT,
    queued_at     BIGINT NOT NULL,
    started_at    BIGINT,
    finished_at   BIGINT,
    exit_code     INTEGER,
    signal        INTEGER,
    error         TEXT,
    output_tail   TEXT NOT NULL DEFAULT '',
    result        TEXT,
    log_bytes     BIGINT NOT NULL DEFAULT 0,
    log_truncated BOOLEAN NOT NULL DEFAULT FALSE,
    node_id       TEXT,
    heartbeat_at  BIGINT
);
CREATE INDEX runs_by_script ON runs (script_id, id);
CREATE INDEX runs_by_status ON runs (status);

CREATE TABLE run_logs (
    run_id TEXT NOT NULL,
    seq    BIGINT NOT NULL,
    stream TEXT NOT NULL,
    ts     BIGINT NOT NULL,
    line   TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
