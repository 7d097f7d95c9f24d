-- The patients the user opened recently (the chart opener records them), per account: the
-- background sync keeps their records current in the cache, each from the server time its last
-- sync started (`_since`), so that only what changed comes down.
CREATE TABLE recent_patients (
    account      TEXT    NOT NULL,
    patient      TEXT    NOT NULL,
    opened_at    INTEGER NOT NULL,
    synced_since TEXT,
    PRIMARY KEY (account, patient)
);
CREATE INDEX recent_patients_opened ON recent_patients (account, opened_at);
