-- PostgreSQL writes all index rows of a resource in one statement with data-modifying CTEs, so it
-- needs no dispatch view (see migrations/sqlite/0004_index_dispatch.sql). This keeps the version
-- numbers of both engines' migrations aligned.
SELECT 1;
