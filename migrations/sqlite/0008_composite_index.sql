-- Composite search parameters (`code-value-quantity`, ...): one row per component value. A tuple
-- (`grp`) holds one row or more per component position (`pos`); a search matches when one tuple
-- has a matching value at every position. Columns by component type: token (system, code),
-- quantity (value, system, code, text = unit), number (value), date (lo, hi), string (text,
-- normalised), reference (system = target type, code = target id, text = URL).
CREATE TABLE idx_composite (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    param         TEXT NOT NULL,
    grp           INTEGER NOT NULL,
    pos           INTEGER NOT NULL,
    system        TEXT,
    code          TEXT,
    value         REAL,
    lo            INTEGER,
    hi            INTEGER,
    text          TEXT
);
CREATE INDEX idx_composite_code ON idx_composite (resource_type, param, pos, code);
CREATE INDEX idx_composite_owner ON idx_composite (resource_type, id);

-- The dispatch view (0004) gains the composite table and eight value columns.
DROP TRIGGER idx_dispatch_insert;
DROP VIEW idx_dispatch;
CREATE VIEW idx_dispatch (tbl, resource_type, id, param, c1, c2, c3, c4, c5, c6, c7, c8) AS
    SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL WHERE 0;

CREATE TRIGGER idx_dispatch_insert INSTEAD OF INSERT ON idx_dispatch
BEGIN
    DELETE FROM idx_string WHERE NEW.tbl = 'clear' AND resource_type = NEW.resource_type AND id = NEW.id AND (NEW.param IS NULL OR param = NEW.param);
    DELETE FROM idx_token WHERE NEW.tbl = 'clear' AND resource_type = NEW.resource_type AND id = NEW.id AND (NEW.param IS NULL OR param = NEW.param);
    DELETE FROM idx_reference WHERE NEW.tbl = 'clear' AND resource_type = NEW.resource_type AND id = NEW.id AND (NEW.param IS NULL OR param = NEW.param);
    DELETE FROM idx_date WHERE NEW.tbl = 'clear' AND resource_type = NEW.resource_type AND id = NEW.id AND (NEW.param IS NULL OR param = NEW.param);
    DELETE FROM idx_number WHERE NEW.tbl = 'clear' AND resource_type = NEW.resource_type AND id = NEW.id AND (NEW.param IS NULL OR param = NEW.param);
    DELETE FROM idx_quantity WHERE NEW.tbl = 'clear' AND resource_type = NEW.resource_type AND id = NEW.id AND (NEW.param IS NULL OR param = NEW.param);
    DELETE FROM idx_uri WHERE NEW.tbl = 'clear' AND resource_type = NEW.resource_type AND id = NEW.id AND (NEW.param IS NULL OR param = NEW.param);
    DELETE FROM idx_composite WHERE NEW.tbl = 'clear' AND resource_type = NEW.resource_type AND id = NEW.id AND (NEW.param IS NULL OR param = NEW.param);
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
    INSERT INTO idx_composite (resource_type, id, param, grp, pos, system, code, value, lo, hi, text)
        SELECT NEW.resource_type, NEW.id, NEW.param, NEW.c1, NEW.c2, NEW.c3, NEW.c4, NEW.c5, NEW.c6, NEW.c7, NEW.c8
        WHERE NEW.tbl = 'idx_composite';
END;

-- Planner statistics for the new indexes (see 0006).
INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
    ('idx_composite', 'idx_composite_code', '500000 25000 2500 1250 5'),
    ('idx_composite', 'idx_composite_owner', '500000 25000 4');
