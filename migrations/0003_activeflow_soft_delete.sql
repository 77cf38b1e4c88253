-- 0003 (issue 18, VoIPBIN compatibility): `DELETE /v1/activeflows/{id}` soft-deletes, as VoIPBIN does: the row and its executed
-- actions stay (GET still answers, with `tm_delete` set); listings leave out rows with one.
ALTER TABLE activeflows ADD COLUMN tm_delete TEXT;
-- VoIPBIN's record fields that the row did not hold (NULL reads as VoIPBIN's "none").
ALTER TABLE activeflows ADD COLUMN on_complete_flow_id TEXT;
ALTER TABLE activeflows ADD COLUMN forward_action_id TEXT;
ALTER TABLE activeflows ADD COLUMN webhook_uri TEXT;
ALTER TABLE activeflows ADD COLUMN webhook_method TEXT;
-- A VoIPBIN timestamp page token ("created before") finds its first sequence by creation time
-- through these instead of scanning the table.
CREATE INDEX activeflows_by_create ON activeflows (tm_create);
CREATE INDEX calls_by_create ON calls (tm_create);
