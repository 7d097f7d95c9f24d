-- PostgreSQL measures its own statistics (autovacuum's ANALYZE), so it needs nothing here; see
-- migrations/sqlite/0006_planner_statistics.sql. This keeps both engines' version numbers aligned.
SELECT 1;
