-- The hash chain of the audit trail (AuditEvents themselves are ordinary resources). Each link
-- names one AuditEvent and holds SHA-256(previous hash ‖ "\n" ‖ canonical JSON of the record),
-- hex; `curanet audit verify` walks the links in `seq` order. The single head row orders appends:
-- every batch locks it (SELECT ... FOR UPDATE) in its write transaction, so instances sharing the
-- database extend one linear chain.
CREATE TABLE audit_chain (
    seq         BIGINT PRIMARY KEY,
    resource_id TEXT COLLATE "C" NOT NULL UNIQUE,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);

CREATE TABLE audit_chain_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT   NOT NULL
);
INSERT INTO audit_chain_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
