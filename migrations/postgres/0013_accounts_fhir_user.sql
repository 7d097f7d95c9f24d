-- Accounts are found by their FHIR resource (a patient's notifications go to the account of
-- Patient/{id}): an index instead of a scan of every account.
CREATE INDEX accounts_fhir_user ON accounts (fhir_user);
