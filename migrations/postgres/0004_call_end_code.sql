-- 0004 (PostgreSQL), as SQLite's 0004: the SIP final response that ended a leg we placed.
ALTER TABLE calls ADD COLUMN end_code INTEGER;
