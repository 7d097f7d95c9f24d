-- The hash chain of the audit trail (AuditEvents themselves are ordinary resources). Each link
-- names one AuditEvent and holds SHA-256(previous hash ‖ "\n" ‖ canonical JSON of the record),
-- hex; `curanet audit verify` walks the links in `seq` order. The single head row orders appends:
-- every batch reads and updates it in its write transaction (SQLite has one writer anyway).
CREATE TABLE audit_chain (
    seq         INTEGER PRIMARY KEY,
    resource_id TEXT NOT NULL UNIQUE,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);

CREATE TABLE audit_chain_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT    NOT NULL
);
INSERT INTO audit_chain_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
