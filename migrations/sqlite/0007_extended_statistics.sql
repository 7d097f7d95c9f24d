-- SQLite's planner statistics are fixed in 0006; PostgreSQL adds extended statistics here. This
-- keeps both engines' version numbers aligned.
SELECT 1;
