-- 0001 (PostgreSQL): flows, activeflows with their executed actions, and calls (issue 7), as
-- SQLite's 0001. Timestamps are RFC 3339 UTC text with microseconds and a trailing Z, so they
-- compare as text on both backends.

CREATE TABLE flows (
    id        TEXT PRIMARY KEY,
    name      TEXT NOT NULL,
    source    TEXT NOT NULL,          -- 'file' (flows.dir) or 'api'
    body      TEXT NOT NULL,          -- the flow's JSON
    tm_update TEXT NOT NULL
);

CREATE TABLE activeflows (
    sequence       BIGINT PRIMARY KEY,    -- creation order: listings and page tokens
    id             TEXT NOT NULL UNIQUE,
    flow_id        TEXT NOT NULL,
    status         TEXT NOT NULL,         -- 'running' | 'ended'
    end_reason     TEXT,
    reference_type TEXT NOT NULL,
    reference_id   TEXT NOT NULL,
    reference_activeflow_id TEXT,
    current_action TEXT,                  -- JSON
    variables      TEXT,                  -- JSON, the final set once ended
    tm_create      TEXT NOT NULL,
    tm_update      TEXT NOT NULL,
    tm_end         TEXT
);
CREATE INDEX activeflows_by_status ON activeflows (status, sequence);
CREATE INDEX activeflows_by_end ON activeflows (tm_end) WHERE tm_end IS NOT NULL;

CREATE TABLE executed_actions (
    activeflow_id TEXT NOT NULL,
    idx           INTEGER NOT NULL,
    body          TEXT NOT NULL,
    PRIMARY KEY (activeflow_id, idx)
);

CREATE TABLE calls (
    sequence    BIGINT PRIMARY KEY,
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
