-- 0008 (PostgreSQL), as SQLite's 0005 (issue 21, CDR export): the codec an answered call
-- used, and an index from a call to the activeflow it started.
ALTER TABLE calls ADD COLUMN codec TEXT;
CREATE INDEX activeflows_by_reference ON activeflows (reference_id, sequence);
