-- Every version of every resource; `seq` orders system-wide history.
CREATE TABLE resource_versions (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    resource_type TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    last_updated  INTEGER NOT NULL, -- microseconds since the epoch, UTC
    deleted       BOOLEAN NOT NULL,
    method        TEXT    NOT NULL, -- POST, PUT or DELETE
    content       TEXT,             -- the resource JSON; NULL for a delete tombstone
    UNIQUE (resource_type, id, version)
);
CREATE INDEX resource_versions_type_seq ON resource_versions (resource_type, seq);
CREATE INDEX resource_versions_last_updated ON resource_versions (last_updated);

-- The current version of each resource (pointing at its row in resource_versions).
CREATE TABLE resources (
    resource_type TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    last_updated  INTEGER NOT NULL,
    deleted       BOOLEAN NOT NULL,
    current_seq   INTEGER NOT NULL,
    PRIMARY KEY (resource_type, id)
) WITHOUT ROWID;

-- Identifiers that must be unique across the server (the Health ID), owned by one resource forever.
CREATE TABLE unique_identifiers (
    system        TEXT NOT NULL,
    value         TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    PRIMARY KEY (system, value)
) WITHOUT ROWID;
CREATE INDEX unique_identifiers_owner ON unique_identifiers (resource_type, id);
