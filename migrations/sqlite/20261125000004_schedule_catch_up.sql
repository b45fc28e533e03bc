-- What a schedule does about ticks missed while no node was up: 'none' or 'last'.
ALTER TABLE scripts ADD COLUMN schedule_catch_up TEXT NOT NULL DEFAULT 'none';
