-- A run's log is stored as chunks, one row per stored batch, rather than one row per line:
-- a script printing millions of lines costs thousands of rows, not millions. `lines` is a
-- JSON array of [stream (1 stdout, 2 stderr), ts (ms), text], numbered first_seq..last_seq.
CREATE TABLE run_log_chunks (
    run_id    TEXT NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq  BIGINT NOT NULL,
    lines     TEXT NOT NULL,
    PRIMARY KEY (run_id, last_seq)
);
INSERT INTO run_log_chunks (run_id, first_seq, last_seq, lines)
SELECT run_id, seq, seq,
       json_array(json_array(CASE stream WHEN 'stderr' THEN 2 ELSE 1 END, ts, line))
FROM run_logs;
DROP TABLE run_logs;
