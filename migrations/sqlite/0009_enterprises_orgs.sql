-- Enterprises (legal persons). The enterprise is itself an account of kind
-- 'enterprise' (user_id); people act for it as its legal representative or
-- as authorised agents.
CREATE TABLE enterprises (
    user_id           TEXT PRIMARY KEY,
    credit_code       TEXT NOT NULL UNIQUE,
    name              TEXT NOT NULL,
    legal_rep_user_id TEXT NOT NULL,
    created_at        TIMESTAMP NOT NULL
);

CREATE TABLE enterprise_agents (
    enterprise_id TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('legal_representative', 'agent')),
    added_at      TIMESTAMP NOT NULL,
    PRIMARY KEY (enterprise_id, user_id)
);
CREATE INDEX enterprise_agents_user ON enterprise_agents (user_id);

-- The organisation tree: city, departments and towns, villages and
-- communities. path is the chain of ids from the root ("/a/b/c/"), so a
-- subtree is one prefix query.
CREATE TABLE org_units (
    id         TEXT PRIMARY KEY,
    parent_id  TEXT,
    code       TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    path       TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX org_units_path ON org_units (path);

CREATE TABLE org_memberships (
    org_unit_id TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    role        TEXT NOT NULL DEFAULT 'member',
    added_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (org_unit_id, user_id)
);
CREATE INDEX org_memberships_user ON org_memberships (user_id);

-- How and when each account reached its assurance level.
CREATE TABLE assurance_events (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    level       INTEGER NOT NULL,
    method      TEXT NOT NULL,
    verified_by TEXT NOT NULL DEFAULT '',
    reason      TEXT NOT NULL DEFAULT '',
    at          TIMESTAMP NOT NULL
);
CREATE INDEX assurance_events_user ON assurance_events (user_id, at);
