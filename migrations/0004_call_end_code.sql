-- 0004 (issue 19, outbound calls): the SIP final response (486, 480, 603, ...) that ended a leg
-- the engine placed before its answer; NULL for every other end.
ALTER TABLE calls ADD COLUMN end_code INTEGER;
