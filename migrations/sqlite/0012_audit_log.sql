-- The compact, append-only audit log that replaced AuditEvent resources (records of 0011 stay as
-- they are, chained in audit_chain). One row per record: the few columns AuditEvent searches
-- need, the record's body as compact JSON (the AuditEvent is built from it when read), and its
-- link in the hash chain: hash = SHA-256(prev_hash ‖ "\n" ‖ position ‖ "\n" ‖ body), hex, in
-- `seq` order. Writes' records are inserted in the write's transaction with seq NULL and linked
-- soon after by the background writer (in position order); reads' records arrive linked.
CREATE TABLE audit_log (
    position  INTEGER PRIMARY KEY,
    recorded  INTEGER NOT NULL,
    agent     TEXT,
    alt_id    TEXT,
    type      TEXT NOT NULL,
    subtype   TEXT NOT NULL,
    action    TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    entity    TEXT,
    body      TEXT NOT NULL,
    seq       INTEGER UNIQUE,
    prev_hash TEXT,
    hash      TEXT
);
CREATE INDEX audit_log_recorded ON audit_log (recorded);
CREATE INDEX audit_log_agent ON audit_log (agent, recorded);
CREATE INDEX audit_log_unlinked ON audit_log (position) WHERE seq IS NULL;

-- The patients a record is about (AuditEvent?patient=), one row each.
CREATE TABLE audit_log_patient (
    patient  TEXT    NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (patient, position)
) WITHOUT ROWID;

CREATE TABLE audit_log_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT    NOT NULL
);
INSERT INTO audit_log_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
