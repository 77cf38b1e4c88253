-- 0006 (PostgreSQL; issue 20, cluster): records are keyed by their id, not their sequence. Two
-- nodes whose ids share a clock slot may create records with the same sequence in the same
-- microsecond; keyed by sequence, the second overwrote the first. Upserts now conflict on
-- (id, sequence): the same record again. The id stays unique on its own (a write of a known id
-- with another sequence fails as its own error, not an overwrite). Sequences stay indexed (not
-- unique) for listings and page tokens; executed actions are keyed by their activeflow's id.
ALTER TABLE activeflows DROP CONSTRAINT activeflows_pkey;
ALTER TABLE activeflows ADD PRIMARY KEY (id, sequence);
CREATE INDEX activeflows_by_sequence ON activeflows (sequence);

ALTER TABLE calls DROP CONSTRAINT calls_pkey;
ALTER TABLE calls ADD PRIMARY KEY (id, sequence);
CREATE INDEX calls_by_sequence ON calls (sequence);

ALTER TABLE executed_actions ADD COLUMN activeflow_id TEXT;
UPDATE executed_actions e SET activeflow_id = a.id FROM activeflows a
    WHERE a.sequence = e.activeflow_sequence;
DELETE FROM executed_actions WHERE activeflow_id IS NULL;
ALTER TABLE executed_actions ALTER COLUMN activeflow_id SET NOT NULL;
ALTER TABLE executed_actions DROP CONSTRAINT executed_actions_by_sequence_pkey;
ALTER TABLE executed_actions ADD PRIMARY KEY (activeflow_id, idx);
