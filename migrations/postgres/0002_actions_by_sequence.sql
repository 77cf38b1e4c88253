-- 0002 (PostgreSQL), as SQLite's 0002: executed actions keyed by their activeflow's sequence;
-- the status indexes give way to partial indexes of the records not ended (recovery's search).
CREATE TABLE executed_actions_by_sequence (
    activeflow_sequence BIGINT NOT NULL,   -- activeflows.sequence
    idx                 INTEGER NOT NULL,
    body                TEXT NOT NULL,
    PRIMARY KEY (activeflow_sequence, idx)
);
INSERT INTO executed_actions_by_sequence (activeflow_sequence, idx, body)
    SELECT a.sequence, e.idx, e.body FROM executed_actions e JOIN activeflows a ON a.id = e.activeflow_id;
DROP TABLE executed_actions;
ALTER TABLE executed_actions_by_sequence RENAME TO executed_actions;

DROP INDEX activeflows_by_status;
DROP INDEX calls_by_status;
CREATE INDEX activeflows_not_ended ON activeflows (sequence) WHERE status <> 'ended';
CREATE INDEX calls_not_ended ON calls (sequence) WHERE status <> 'ended';
