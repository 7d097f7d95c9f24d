-- PostgreSQL appends a version and makes it current in one statement with data-modifying CTEs,
-- so it needs no trigger (see migrations/sqlite/0005_current_version_trigger.sql). This keeps the
-- version numbers of both engines' migrations aligned.
SELECT 1;
