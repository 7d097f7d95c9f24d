-- Accounts and the SMART/OAuth 2 authorization server (issue 4). Times are microseconds since the
-- epoch, UTC, as everywhere else. Secrets are never stored in clear: passwords, codes and tokens
-- as hashes, TOTP secrets and private keys sealed with the key from the environment. Enumerated
-- values (role, status, purpose, kind) are checked by the Rust types, not by CHECK constraints,
-- so that a new value needs no table rebuild in SQLite.

-- People who sign in, each linked to their FHIR resource (the `fhirUser`).
CREATE TABLE accounts (
    id                   TEXT    PRIMARY KEY,
    role                 TEXT    NOT NULL, -- patient, doctor, pharmacist, admin
    email                TEXT    UNIQUE,   -- normalised by the caller
    phone                TEXT    UNIQUE,   -- E.164
    email_verified       BOOLEAN NOT NULL,
    phone_verified       BOOLEAN NOT NULL,
    password_hash        TEXT,             -- PHC string; NULL until the person sets one
    fhir_user            TEXT,             -- e.g. Patient/123
    status               TEXT    NOT NULL, -- active, pending_approval, disabled
    totp_secret          BLOB,             -- sealed; NULL while two-factor authentication is off
    totp_last_step       INTEGER,          -- last accepted RFC 6238 time step (replay guard)
    recovery_code_hashes TEXT    NOT NULL, -- JSON array of the unused codes' hashes
    failed_logins        INTEGER NOT NULL,
    locked_until         INTEGER,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);
CREATE INDEX accounts_status ON accounts (status, id);

-- Single-use expiring codes that prove an email address or phone number, or reset a password.
CREATE TABLE verification_codes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT    NOT NULL REFERENCES accounts (id),
    purpose    TEXT    NOT NULL, -- email, phone, password_reset
    code_hash  TEXT    NOT NULL, -- not unique: short codes of different accounts may collide
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX verification_codes_hash ON verification_codes (purpose, code_hash);
CREATE INDEX verification_codes_account ON verification_codes (account_id, purpose);
CREATE INDEX verification_codes_expiry ON verification_codes (expires_at);

-- Signed-in devices of the first-party API and the authorization pages.
CREATE TABLE sessions (
    id         TEXT    PRIMARY KEY, -- hash of the opaque session token
    account_id TEXT    NOT NULL REFERENCES accounts (id),
    device     TEXT,
    ip         TEXT,
    created_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX sessions_account ON sessions (account_id, last_seen);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- Registered apps (RFC 7591 or `curanet client add`).
CREATE TABLE oauth_clients (
    client_id       TEXT    PRIMARY KEY,
    name            TEXT    NOT NULL,
    kind            TEXT    NOT NULL, -- public, confidential_symmetric, confidential_asymmetric, backend
    secret_hash     TEXT,             -- confidential symmetric clients only
    redirect_uris   TEXT    NOT NULL, -- JSON array
    jwks            TEXT,             -- JSON Web Key Set registered by value
    jwks_url        TEXT,             -- or by URL
    scope           TEXT    NOT NULL, -- the scopes it may ask for, space-separated
    allowed_origins TEXT    NOT NULL, -- JSON array, for CORS
    created_by      TEXT,             -- the admin's account id; NULL from the command line
    created_at      INTEGER NOT NULL
);

-- What a user granted an app: the rights its access and refresh tokens carry until revoked.
CREATE TABLE grants (
    id         TEXT    PRIMARY KEY,
    client_id  TEXT    NOT NULL REFERENCES oauth_clients (client_id),
    account_id TEXT    NOT NULL REFERENCES accounts (id),
    scope      TEXT    NOT NULL,
    context    TEXT    NOT NULL, -- launch context JSON (patient, encounter, fhirContext, ...)
    session_id TEXT,             -- online_access: the grant ends with this session
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX grants_account ON grants (account_id, created_at);
CREATE INDEX grants_session ON grants (session_id);

-- Codes of the authorization code flow; single-use and short-lived. A used code keeps the grant
-- its exchange created, so that a second exchange can revoke it.
CREATE TABLE authorization_codes (
    code_hash      TEXT    PRIMARY KEY,
    client_id      TEXT    NOT NULL REFERENCES oauth_clients (client_id),
    account_id     TEXT    NOT NULL REFERENCES accounts (id),
    redirect_uri   TEXT    NOT NULL,
    scope          TEXT    NOT NULL, -- what the user granted
    code_challenge TEXT    NOT NULL, -- PKCE S256
    context        TEXT    NOT NULL, -- launch context JSON
    nonce          TEXT,
    session_id     TEXT,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER,
    grant_id       TEXT
);
CREATE INDEX authorization_codes_expiry ON authorization_codes (expires_at);

-- Refresh tokens, rotated on every use: a used token points to its successor, and presenting it
-- again reveals a stolen token.
CREATE TABLE refresh_tokens (
    token_hash  TEXT    PRIMARY KEY,
    grant_id    TEXT    NOT NULL REFERENCES grants (id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER, -- NULL: as long as the grant
    used_at     INTEGER,
    replaced_by TEXT
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_used ON refresh_tokens (used_at);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);

-- EHR launch: the opaque `launch` value an EHR hands to an app stands for this context.
CREATE TABLE launch_contexts (
    id           TEXT    PRIMARY KEY, -- hash of the `launch` value
    patient      TEXT,
    encounter    TEXT,
    fhir_context TEXT,             -- JSON array (SMART 2.2 fhirContext)
    created_by   TEXT    NOT NULL, -- the account that opened the launch
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER
);
CREATE INDEX launch_contexts_expiry ON launch_contexts (expires_at);

-- Keys that sign access and ID tokens; replaced keys stay for verification until retired.
CREATE TABLE signing_keys (
    kid         TEXT    PRIMARY KEY,
    algorithm   TEXT    NOT NULL, -- RS256, ...
    public_jwk  TEXT    NOT NULL, -- JSON
    private_key BLOB    NOT NULL, -- sealed
    created_at  INTEGER NOT NULL,
    retire_at   INTEGER
);

-- `jti` values of client assertions seen until the assertion expires (replay guard).
CREATE TABLE client_assertion_jtis (
    client_id  TEXT    NOT NULL,
    jti        TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, jti)
) WITHOUT ROWID;
CREATE INDEX client_assertion_jtis_expiry ON client_assertion_jtis (expires_at);

-- Failed sign-ins, counted per account (or the identifier tried) and per IP for back-off.
CREATE TABLE login_failures (
    subject TEXT, -- account id, or the email or phone tried when no account matched
    ip      TEXT,
    at      INTEGER NOT NULL
);
CREATE INDEX login_failures_subject ON login_failures (subject, at);
CREATE INDEX login_failures_ip ON login_failures (ip, at);
CREATE INDEX login_failures_at ON login_failures (at);

-- Security events (sign-in, failure, lock, reset, two-factor changes, ...), never with secrets.
CREATE TABLE security_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    account_id TEXT,
    ip         TEXT,
    detail     TEXT    NOT NULL -- JSON object
);
CREATE INDEX security_events_account ON security_events (account_id, id);
