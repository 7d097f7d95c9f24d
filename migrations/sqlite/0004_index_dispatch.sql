-- One statement writes all of a resource's index rows: inserting into this view dispatches each
-- row to its table (tbl = 'string', 'token', ...), and a row with tbl = 'clear' first removes the
-- resource's rows (of one parameter when param is not NULL). Each SQL statement costs a round trip
-- to the SQLite worker thread, so this turns up to fourteen statements per write into one.
CREATE VIEW idx_dispatch (tbl, resource_type, id, param, c1, c2, c3, c4) AS
    SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL WHERE 0;

CREATE TRIGGER idx_dispatch_insert INSTEAD OF INSERT ON idx_dispatch
BEGIN
    DELETE FROM idx_string WHERE NEW.tbl = 'clear' AND resource_type = NEW.resource_type AND id = NEW.id AND (NEW.param IS NULL OR param = NEW.param);
    DELETE FROM idx_token WHERE NEW.tbl = 'clear' AND resource_type = NEW.resource_type AND id = NEW.id AND (NEW.param IS NULL OR param = NEW.param);
    DELETE FROM idx_reference WHERE NEW.tbl = 'clear' AND resource_type = NEW.resource_type AND id = NEW.id AND (NEW.param IS NULL OR param = NEW.param);
    DELETE FROM idx_date WHERE NEW.tbl = 'clear' AND resource_type = NEW.resource_type AND id = NEW.id AND (NEW.param IS NULL OR param = NEW.param);
    DELETE FROM idx_number WHERE NEW.tbl = 'clear' AND resource_type = NEW.resource_type AND id = NEW.id AND (NEW.param IS NULL OR param = NEW.param);
    DELETE FROM idx_quantity WHERE NEW.tbl = 'clear' AND resource_type = NEW.resource_type AND id = NEW.id AND (NEW.param IS NULL OR param = NEW.param);
    DELETE FROM idx_uri WHERE NEW.tbl = 'clear' AND resource_type = NEW.resource_type AND id = NEW.id AND (NEW.param IS NULL OR param = NEW.param);
    INSERT INTO idx_string (resource_type, id, param, value, exact)
        SELECT NEW.resource_type, NEW.id, NEW.param, NEW.c1, NEW.c2 WHERE NEW.tbl = 'idx_string';
    INSERT INTO idx_token (resource_type, id, param, system, code)
        SELECT NEW.resource_type, NEW.id, NEW.param, NEW.c1, NEW.c2 WHERE NEW.tbl = 'idx_token';
    INSERT INTO idx_reference (resource_type, id, param, target_type, target_id, url)
        SELECT NEW.resource_type, NEW.id, NEW.param, NEW.c1, NEW.c2, NEW.c3 WHERE NEW.tbl = 'idx_reference';
    INSERT INTO idx_date (resource_type, id, param, lo, hi)
        SELECT NEW.resource_type, NEW.id, NEW.param, NEW.c1, NEW.c2 WHERE NEW.tbl = 'idx_date';
    INSERT INTO idx_number (resource_type, id, param, value)
        SELECT NEW.resource_type, NEW.id, NEW.param, NEW.c1 WHERE NEW.tbl = 'idx_number';
    INSERT INTO idx_quantity (resource_type, id, param, value, system, code, unit)
        SELECT NEW.resource_type, NEW.id, NEW.param, NEW.c1, NEW.c2, NEW.c3, NEW.c4 WHERE NEW.tbl = 'idx_quantity';
    INSERT INTO idx_uri (resource_type, id, param, value)
        SELECT NEW.resource_type, NEW.id, NEW.param, NEW.c1 WHERE NEW.tbl = 'idx_uri';
END;
