-- Every change to a script row counts here, in the same transaction: a node keeps the scripts
-- list it last read and learns from this one number, read with each script's newest run,
-- whether it is still current.
CREATE TABLE catalog_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO catalog_generation (id, generation) VALUES (1, 0);

CREATE TRIGGER scripts_inserted_count AFTER INSERT ON scripts
BEGIN
    UPDATE catalog_generation SET generation = generation + 1 WHERE id = 1;
END;

CREATE TRIGGER scripts_updated_count AFTER UPDATE ON scripts
BEGIN
    UPDATE catalog_generation SET generation = generation + 1 WHERE id = 1;
END;

CREATE TRIGGER scripts_deleted_count AFTER DELETE ON scripts
BEGIN
    UPDATE catalog_generation SET generation = generation + 1 WHERE id = 1;
END;
