-- Search index: one table per search-parameter type, rows written in the same transaction as the
-- resource version they describe. Values are normalised at extraction (strings lower-cased
-- without accents, dates as [lo, hi) microsecond ranges).
CREATE TABLE idx_string (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    param         TEXT NOT NULL,
    value         TEXT NOT NULL, -- normalised: lower case, accents removed
    exact         TEXT NOT NULL    -- as written, for :exact
);
CREATE INDEX idx_string_value ON idx_string (resource_type, param, value);
CREATE INDEX idx_string_owner ON idx_string (resource_type, id);

CREATE TABLE idx_token (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    param         TEXT NOT NULL,
    system        TEXT NOT NULL, -- '' when the value has no system
    code          TEXT NOT NULL
);
CREATE INDEX idx_token_code ON idx_token (resource_type, param, code, system);
CREATE INDEX idx_token_owner ON idx_token (resource_type, id);

CREATE TABLE idx_reference (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    param         TEXT NOT NULL,
    target_type   TEXT NOT NULL, -- '' when unknown (e.g. a canonical URL)
    target_id     TEXT NOT NULL, -- '' when the reference is only a URL
    url           TEXT NOT NULL  -- the reference as written
);
CREATE INDEX idx_reference_target ON idx_reference (resource_type, param, target_id, target_type);
CREATE INDEX idx_reference_reverse ON idx_reference (target_type, target_id);
CREATE INDEX idx_reference_owner ON idx_reference (resource_type, id);

CREATE TABLE idx_date (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    param         TEXT NOT NULL,
    lo            INTEGER NOT NULL, -- microseconds since the epoch, inclusive
    hi            INTEGER NOT NULL  -- exclusive
);
CREATE INDEX idx_date_lo ON idx_date (resource_type, param, lo);
CREATE INDEX idx_date_hi ON idx_date (resource_type, param, hi);
CREATE INDEX idx_date_owner ON idx_date (resource_type, id);

CREATE TABLE idx_number (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    param         TEXT NOT NULL,
    value         REAL NOT NULL
);
CREATE INDEX idx_number_value ON idx_number (resource_type, param, value);
CREATE INDEX idx_number_owner ON idx_number (resource_type, id);

CREATE TABLE idx_quantity (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    param         TEXT NOT NULL,
    value         REAL NOT NULL,
    system        TEXT NOT NULL,
    code          TEXT NOT NULL,
    unit          TEXT NOT NULL
);
CREATE INDEX idx_quantity_value ON idx_quantity (resource_type, param, value);
CREATE INDEX idx_quantity_owner ON idx_quantity (resource_type, id);

CREATE TABLE idx_uri (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    param         TEXT NOT NULL,
    value         TEXT NOT NULL
);
CREATE INDEX idx_uri_value ON idx_uri (resource_type, param, value);
CREATE INDEX idx_uri_owner ON idx_uri (resource_type, id);

-- Search pages resources of a type by id (keyset) and by last update.
CREATE INDEX resources_type_updated ON resources (resource_type, last_updated, id);
