-- Composite search parameters (`code-value-quantity`, ...): one row per component value. A tuple
-- (`grp`) holds one row or more per component position (`pos`); a search matches when one tuple
-- has a matching value at every position. Columns by component type: token (system, code),
-- quantity (value, system, code, text = unit), number (value), date (lo, hi), string (text,
-- normalised), reference (system = target type, code = target id, text = URL).
CREATE TABLE idx_composite (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    param         TEXT NOT NULL,
    grp           BIGINT NOT NULL,
    pos           BIGINT NOT NULL,
    system        TEXT COLLATE "C",
    code          TEXT COLLATE "C",
    value         DOUBLE PRECISION,
    lo            BIGINT,
    hi            BIGINT,
    text          TEXT COLLATE "C"
);
CREATE INDEX idx_composite_code ON idx_composite (resource_type, param, pos, code);
CREATE INDEX idx_composite_owner ON idx_composite (resource_type, id);
