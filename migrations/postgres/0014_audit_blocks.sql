-- The audit log in blocks: the background writer stores every batch of records (up to a second
-- of traffic) as one row, and a write's record rides in the write's transaction as a block of
-- one. A block's body is its records' compact JSON joined by "\n"; the first record's id is the
-- block number, the n-th after it `{block}-{n}`. One hash link per block: hash =
-- SHA-256(prev_hash ‖ "\n" ‖ block ‖ "\n" ‖ body), hex, in `seq` order, so a block of one
-- record has exactly the link the record had in audit_log (0012), whose rows become blocks of
-- one here (same number, same chain). Searches find candidate blocks by time range and by key
-- (patient, agent, altId: one row per block and key, with how many of its records carry it) and
-- filter the decoded records. The head row stays audit_log_head.
CREATE TABLE audit_block (
    block          BIGSERIAL PRIMARY KEY,
    first_recorded BIGINT  NOT NULL,
    last_recorded  BIGINT  NOT NULL,
    records        BIGINT  NOT NULL,
    body           TEXT    NOT NULL,
    seq            BIGINT UNIQUE,
    prev_hash      TEXT,
    hash           TEXT
);
CREATE INDEX audit_block_last ON audit_block (last_recorded);
CREATE INDEX audit_block_first ON audit_block (first_recorded);
CREATE INDEX audit_block_unlinked ON audit_block (block) WHERE seq IS NULL;

-- `patient|{id}`, `agent|{reference}`, `altid|{subject}`.
CREATE TABLE audit_block_key (
    key     TEXT COLLATE "C" NOT NULL,
    block   BIGINT  NOT NULL,
    records BIGINT  NOT NULL,
    PRIMARY KEY (key, block)
);

INSERT INTO audit_block (block, first_recorded, last_recorded, records, body, seq, prev_hash, hash)
SELECT position, recorded, recorded, 1, body, seq, prev_hash, hash FROM audit_log;
INSERT INTO audit_block_key (key, block, records)
SELECT 'patient|' || patient, position, 1 FROM audit_log_patient;
INSERT INTO audit_block_key (key, block, records)
SELECT 'agent|' || agent, position, 1 FROM audit_log WHERE agent IS NOT NULL;
INSERT INTO audit_block_key (key, block, records)
SELECT 'altid|' || alt_id, position, 1 FROM audit_log WHERE alt_id IS NOT NULL;
-- New blocks continue after the records converted.
SELECT setval(pg_get_serial_sequence('audit_block', 'block'),
              GREATEST((SELECT MAX(block) FROM audit_block), 1),
              (SELECT MAX(block) FROM audit_block) IS NOT NULL);
DROP TABLE audit_log_patient;
DROP TABLE audit_log;
