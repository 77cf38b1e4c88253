-- 0003 (PostgreSQL), as SQLite's 0003: soft delete and VoIPBIN's record fields; creation-time
-- indexes for VoIPBIN timestamp page tokens.
ALTER TABLE activeflows ADD COLUMN tm_delete TEXT;
ALTER TABLE activeflows ADD COLUMN on_complete_flow_id TEXT;
ALTER TABLE activeflows ADD COLUMN forward_action_id TEXT;
ALTER TABLE activeflows ADD COLUMN webhook_uri TEXT;
ALTER TABLE activeflows ADD COLUMN webhook_method TEXT;
CREATE INDEX activeflows_by_create ON activeflows (tm_create);
CREATE INDEX calls_by_create ON calls (tm_create);
