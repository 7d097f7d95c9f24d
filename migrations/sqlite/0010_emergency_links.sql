-- Emergency share links (issue 5): a patient shows a chosen slice of their record to whoever
-- holds a link, without login, until it expires or is revoked. Times are microseconds since the
-- epoch, UTC. The link token and the passcode are never stored in clear: the token as its
-- SHA-256, the passcode as an argon2id PHC string.

CREATE TABLE emergency_links (
    id              TEXT    PRIMARY KEY,
    patient_id      TEXT    NOT NULL,        -- the Patient resource id whose slice is shown
    account_id      TEXT    NOT NULL REFERENCES accounts (id),
    token_hash      TEXT    NOT NULL UNIQUE,
    scope           TEXT    NOT NULL,        -- JSON array: ALLERGIES, MEDICATIONS, ...
    passcode_hash   TEXT,                    -- NULL: no passcode
    label           TEXT,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    revoked_at      INTEGER,
    failed_attempts INTEGER NOT NULL,        -- wrong passcodes (and ones being checked)
    locked_at       INTEGER                  -- set by the last allowed wrong passcode
);
CREATE INDEX emergency_links_account ON emergency_links (account_id, created_at);

-- Every use of a link, granted or refused.
CREATE TABLE emergency_accesses (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    link_id    TEXT    NOT NULL REFERENCES emergency_links (id),
    at         INTEGER NOT NULL,
    ip         TEXT,
    user_agent TEXT,
    recipient  TEXT,                         -- the name the visitor gave, if any
    outcome    TEXT    NOT NULL              -- granted, passcode_required, wrong_passcode, ...
);
CREATE INDEX emergency_accesses_link ON emergency_accesses (link_id, at);
