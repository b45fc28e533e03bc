-- Every definition a script has had; the newest is the current one (`scripts.version`).
-- `definition` is the script as a document (JSON, secret values left out); `secrets_changed`
-- names the secrets whose value this version changed (JSON list), never the values.
CREATE TABLE script_versions (
    script_id       TEXT NOT NULL,
    version         BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    author          TEXT NOT NULL,
    message         TEXT NOT NULL DEFAULT '',
    definition      TEXT NOT NULL,
    secrets_changed TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (script_id, version)
);
-- 0 until the first version is recorded (scripts stored before versions were kept get
-- theirs when a node starts).
ALTER TABLE scripts ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN script_version BIGINT;
-- Append-only: every admin action, written in the transaction of the change it records.
-- Ids are UUIDv7s, so they sort by time and cut pages.
CREATE TABLE audit_log (
    id      TEXT PRIMARY KEY,
    at      BIGINT NOT NULL,
    actor   TEXT NOT NULL,
    client  TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    summary TEXT NOT NULL,
    count   BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX audit_by_action ON audit_log (action, id);
CREATE INDEX audit_by_actor ON audit_log (actor, id);
CREATE INDEX audit_by_target ON audit_log (target, id);
CREATE INDEX audit_by_time ON audit_log (at);
