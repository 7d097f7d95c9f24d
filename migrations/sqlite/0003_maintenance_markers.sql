-- Progress of resumable maintenance jobs (e.g. `curanet reindex`), by job name.
CREATE TABLE maintenance_markers (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
