-- Appending a version makes it current in the same statement (one round trip to the SQLite
-- worker thread instead of two per write).
CREATE TRIGGER resource_versions_make_current AFTER INSERT ON resource_versions
BEGIN
    INSERT OR REPLACE INTO resources (resource_type, id, version, last_updated, deleted, current_seq)
    VALUES (NEW.resource_type, NEW.id, NEW.version, NEW.last_updated, NEW.deleted, NEW.seq);
END;
