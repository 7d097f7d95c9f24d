-- Planner statistics for SQLite, written once instead of measured by ANALYZE (which, on a large
-- database, holds the single write lock for a long time). They describe the shape CuraNet's data
-- always has: per resource type and parameter, an index value is shared by few rows, and a
-- resource owns few rows per table. SQLite documents this way of steering its planner
-- ("Manually adjusting sqlite_stat1"). Format: rows, then rows per distinct prefix of the columns.
ANALYZE sqlite_schema;
DELETE FROM sqlite_stat1;
INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
    ('idx_string', 'idx_string_value', '1000000 50000 5000 4'),
    ('idx_string', 'idx_string_owner', '1000000 50000 8'),
    ('idx_token', 'idx_token_code', '2000000 100000 10000 100 50'),
    ('idx_token', 'idx_token_owner', '2000000 100000 10'),
    ('idx_reference', 'idx_reference_target', '2000000 100000 10000 20 20'),
    ('idx_reference', 'idx_reference_reverse', '2000000 200000 20'),
    ('idx_reference', 'idx_reference_owner', '2000000 100000 5'),
    ('idx_date', 'idx_date_lo', '1000000 50000 5000 5'),
    ('idx_date', 'idx_date_hi', '1000000 50000 5000 5'),
    ('idx_date', 'idx_date_owner', '1000000 50000 3'),
    ('idx_number', 'idx_number_value', '100000 5000 1000 5'),
    ('idx_number', 'idx_number_owner', '100000 5000 2'),
    ('idx_quantity', 'idx_quantity_value', '500000 25000 2500 5'),
    ('idx_quantity', 'idx_quantity_owner', '500000 25000 2'),
    ('idx_uri', 'idx_uri_value', '100000 5000 1000 5'),
    ('idx_uri', 'idx_uri_owner', '100000 5000 2'),
    ('resources', 'resources_type_updated', '1000000 20000 2 1'),
    ('resource_versions', 'resource_versions_type_seq', '1500000 30000 1'),
    ('resource_versions', 'resource_versions_last_updated', '1500000 2'),
    ('unique_identifiers', 'unique_identifiers_owner', '100000 2000 1');
