-- The index tables' columns are strongly correlated (a code belongs to one system and parameter),
-- which PostgreSQL's per-column statistics cannot see; without these it can underestimate a
-- common code badly and drive a patient-scoped search from the code instead of the patient.
CREATE STATISTICS IF NOT EXISTS idx_token_columns (dependencies, mcv)
    ON resource_type, param, system, code FROM idx_token;
CREATE STATISTICS IF NOT EXISTS idx_reference_columns (dependencies)
    ON resource_type, param, target_type, target_id FROM idx_reference;
CREATE STATISTICS IF NOT EXISTS idx_string_columns (dependencies)
    ON resource_type, param, value FROM idx_string;
