-- Resident ID numbers, sealed under the key-encryption key like phone
-- numbers, with a keyed blind index (HMAC-SHA-256) for sign-in by ID number.
ALTER TABLE users ADD COLUMN id_number_enc BYTEA;
ALTER TABLE users ADD COLUMN id_number_index TEXT;
CREATE UNIQUE INDEX users_id_number_index ON users (id_number_index);

-- Browser sessions: one row per signed-in browser. The cookie holds a random
-- secret; only its SHA-256 (token_hash) is stored, so a copy of the database
-- cannot be replayed as a cookie. id is public (the OpenID Connect sid).
-- amr is space-separated. A session ends at expires_at, or earlier when
-- last_seen_at is older than the idle timeout.
CREATE TABLE browser_sessions (
    id           TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    user_id      TEXT NOT NULL,
    auth_time    TIMESTAMPTZ NOT NULL,
    amr          TEXT NOT NULL DEFAULT '',
    acr          INTEGER NOT NULL DEFAULT 1,
    acting_for   TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    ip           TEXT NOT NULL DEFAULT '',
    user_agent   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX browser_sessions_user ON browser_sessions (user_id);
CREATE INDEX browser_sessions_expiry ON browser_sessions (expires_at);

-- Failed sign-ins counted per account ("account:<user id>") and per client
-- address ("ip:<ip>") within a window, shared by every node. locked_until is
-- set when a key passes its limit.
CREATE TABLE login_failures (
    key          TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL DEFAULT 0,
    window_start TIMESTAMPTZ NOT NULL,
    locked_until TIMESTAMPTZ
);
