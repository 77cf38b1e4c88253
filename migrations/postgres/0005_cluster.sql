-- 0005 (PostgreSQL only; issue 20, cluster): the node that wrote each record, and each run
-- (incarnation) of each node: 'up' while it may write, 'lost' once declared dead. Every write
-- batch checks its run is up (FOR SHARE) inside its transaction, so nothing a lost run writes
-- commits after the declaration (fencing).
ALTER TABLE activeflows ADD COLUMN node_id TEXT NOT NULL DEFAULT '';
ALTER TABLE calls ADD COLUMN node_id TEXT NOT NULL DEFAULT '';
-- Recovery and node loss look for one node's records not ended.
CREATE INDEX activeflows_not_ended_by_node ON activeflows (node_id) WHERE status <> 'ended';
CREATE INDEX calls_not_ended_by_node ON calls (node_id) WHERE status <> 'ended';

CREATE TABLE cluster_nodes (
    node_id     TEXT NOT NULL,
    incarnation TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('up', 'lost')),
    tm_update   TEXT NOT NULL,
    PRIMARY KEY (node_id, incarnation)
);
