-- Host runs under a pseudo-terminal instead of two pipes.
ALTER TABLE scripts ADD COLUMN tty BOOLEAN NOT NULL DEFAULT FALSE;
