-- CuraNet Desktop's local cache: each resource fetched from a server, per signed-in account, as
-- the server sent it (R4 JSON), with what revalidation needs (ETag, versionId, lastUpdated) and
-- when it was last used (least-recently-used eviction).
CREATE TABLE cached_resources (
    account       TEXT    NOT NULL,
    resource_type TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    patient       TEXT,
    version_id    TEXT,
    etag          TEXT,
    last_updated  TEXT,
    body          TEXT    NOT NULL,
    bytes         INTEGER NOT NULL,
    fetched_at    INTEGER NOT NULL,
    used_at       INTEGER NOT NULL,
    PRIMARY KEY (account, resource_type, id)
);
CREATE INDEX cached_resources_patient ON cached_resources (account, patient);
CREATE INDEX cached_resources_used ON cached_resources (used_at);
