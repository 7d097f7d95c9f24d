-- Writes made while offline, replayed in order when the link returns. A create carries a local
-- id (`local-...`) until the server assigns one; later entries' references to it are rewritten
-- then. An update replays with `If-Match` on the version it was made from; a 412 parks it as a
-- conflict (with the server's version) for the user to resolve.
CREATE TABLE outbox (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    account       TEXT    NOT NULL,
    method        TEXT    NOT NULL CHECK (method IN ('create', 'update')),
    resource_type TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    if_match      TEXT,
    body          TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    conflict      TEXT
);
CREATE INDEX outbox_account ON outbox (account, seq);
