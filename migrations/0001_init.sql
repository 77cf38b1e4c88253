-- 0001: flows, activeflows with their executed actions, and calls (issue 7).
-- Timestamps are RFC 3339 UTC with microseconds and a trailing Z, so they compare as text.

CREATE TABLE flows (
    id        TEXT PRIMARY KEY,
    name      TEXT NOT NULL,
    source    TEXT NOT NULL,          -- 'file' (flows.dir) or 'api'
    body      TEXT NOT NULL,          -- the flow's JSON
    tm_update TEXT NOT NULL
);

CREATE TABLE activeflows (
    sequence       INTEGER PRIMARY KEY,   -- creation order: listings and page tokens
    id             TEXT NOT NULL UNIQUE,
    flow_id        TEXT NOT NULL,
    status         TEXT NOT NULL,         -- 'running' | 'ended'
    end_reason     TEXT,
    reference_type TEXT NOT NULL,
    reference_id   TEXT NOT NULL,
    reference_activeflow_id TEXT,         -- the parent of an on_complete_flow_id chain
    current_action TEXT,                  -- JSON
    variables      TEXT,                  -- JSON, the final set once ended
    tm_create      TEXT NOT NULL,
    tm_update      TEXT NOT NULL,
    tm_end         TEXT
);
CREATE INDEX activeflows_by_status ON activeflows (status, sequence);
CREATE INDEX activeflows_by_end ON activeflows (tm_end) WHERE tm_end IS NOT NULL;

-- One row per executed action, in order (idx from 0).
CREATE TABLE executed_actions (
    activeflow_id TEXT NOT NULL,
    idx           INTEGER NOT NULL,
    body          TEXT NOT NULL,          -- JSON: the action after substitution, tm_execute, result
    PRIMARY KEY (activeflow_id, idx)
) WITHOUT ROWID;

CREATE TABLE calls (
    sequence    INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    sip_call_id TEXT NOT NULL,
    direction   TEXT NOT NULL,
    source      TEXT NOT NULL,
    destination TEXT NOT NULL,
    peer        TEXT NOT NULL,
    status      TEXT NOT NULL,            -- 'ringing' | 'answered' | 'ended'
    end_cause   TEXT,
    tm_create   TEXT NOT NULL,
    tm_answer   TEXT,
    tm_end      TEXT
);
CREATE INDEX calls_by_status ON calls (status, sequence);
CREATE INDEX calls_by_end ON calls (tm_end) WHERE tm_end IS NOT NULL;
