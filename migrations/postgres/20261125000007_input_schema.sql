-- A script's input form (a JSON Schema subset, as JSON text); NULL: any input.
ALTER TABLE scripts ADD COLUMN input_schema TEXT;
