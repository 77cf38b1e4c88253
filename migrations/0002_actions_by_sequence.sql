-- 0002: cheaper writes (issue 7's benchmark target).
-- Executed actions are keyed by their activeflow's integer sequence instead of its TEXT uuid:
-- sequences grow with creation, so new actions land at the end of the b-tree instead of on a
-- random page (each random page was one more page read, written to the WAL and checkpointed per
-- action). Existing rows are carried over.
CREATE TABLE executed_actions_by_sequence (
    activeflow_sequence INTEGER NOT NULL,   -- activeflows.sequence
    idx                 INTEGER NOT NULL,
    body                TEXT NOT NULL,      -- JSON: the action after substitution, tm_execute, result
    PRIMARY KEY (activeflow_sequence, idx)
) WITHOUT ROWID;
INSERT INTO executed_actions_by_sequence (activeflow_sequence, idx, body)
    SELECT a.sequence, e.idx, e.body FROM executed_actions e JOIN activeflows a ON a.id = e.activeflow_id;
DROP TABLE executed_actions;
ALTER TABLE executed_actions_by_sequence RENAME TO executed_actions;

-- No query uses the (status, sequence) indexes (listings walk the integer primary key; the
-- purge has the tm_end index), yet every status change moved a row in them. Recovery looks for
-- the records not ended: a partial index holds just those, so it stays a few pages.
DROP INDEX activeflows_by_status;
DROP INDEX calls_by_status;
CREATE INDEX activeflows_not_ended ON activeflows (sequence) WHERE status != 'ended';
CREATE INDEX calls_not_ended ON calls (sequence) WHERE status != 'ended';
