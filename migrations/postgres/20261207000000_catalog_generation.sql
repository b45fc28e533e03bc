-- Every change to a script row counts here, in the same transaction: a node keeps the scripts
-- list it last read and learns from this one number, read with each script's newest run,
-- whether it is still current. The count is taken at commit (a deferred constraint trigger),
-- so the one row is locked last and briefly: a transaction changing several scripts never
-- waits for it while holding one of them.
CREATE TABLE catalog_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO catalog_generation (id, generation) VALUES (1, 0);

CREATE FUNCTION count_catalog_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalog_generation SET generation = generation + 1 WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER scripts_changed_count
    AFTER INSERT OR UPDATE OR DELETE ON scripts
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION count_catalog_change();
