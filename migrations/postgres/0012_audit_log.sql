-- The compact, append-only audit log that replaced AuditEvent resources (records of 0011 stay as
-- they are, chained in audit_chain). One row per record: the few columns AuditEvent searches
-- need, the record's body as compact JSON (the AuditEvent is built from it when read), and its
-- link in the hash chain: hash = SHA-256(prev_hash ‖ "\n" ‖ position ‖ "\n" ‖ body), hex, in
-- `seq` order. Writes' records are inserted in the write's transaction with seq NULL and linked
-- soon after by a background writer (in position order, under the head row's lock, so
-- instances sharing the database extend one linear chain); reads' records arrive linked.
CREATE TABLE audit_log (
    position  BIGSERIAL PRIMARY KEY,
    recorded  BIGINT NOT NULL,
    agent     TEXT COLLATE "C",
    alt_id    TEXT COLLATE "C",
    type      TEXT COLLATE "C" NOT NULL,
    subtype   TEXT COLLATE "C" NOT NULL,
    action    TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    entity    TEXT COLLATE "C",
    body      TEXT NOT NULL,
    seq       BIGINT UNIQUE,
    prev_hash TEXT,
    hash      TEXT
);
CREATE INDEX audit_log_recorded ON audit_log (recorded);
CREATE INDEX audit_log_agent ON audit_log (agent, recorded);
CREATE INDEX audit_log_unlinked ON audit_log (position) WHERE seq IS NULL;

-- The patients a record is about (AuditEvent?patient=), one row each.
CREATE TABLE audit_log_patient (
    patient  TEXT COLLATE "C" NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (patient, position)
);

CREATE TABLE audit_log_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT   NOT NULL
);
INSERT INTO audit_log_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
