-- 0005 (issue 21, CDR export): the audio codec an answered call used (PCMU, PCMA), and an
-- index from a call to the activeflow it started, so an export of many calls finds each
-- call's activeflow in one index step instead of a scan.
ALTER TABLE calls ADD COLUMN codec TEXT;
CREATE INDEX activeflows_by_reference ON activeflows (reference_id, sequence);
