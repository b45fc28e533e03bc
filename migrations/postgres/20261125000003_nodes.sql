-- Each node's heartbeat, for the dashboard: when it started and last checked in, how often it
-- does, and how many runs it was executing then.
CREATE TABLE nodes (
    node_id      TEXT PRIMARY KEY,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    every_ms     BIGINT NOT NULL,
    running      BIGINT NOT NULL,
    version      TEXT NOT NULL
);
