-- Accounts: citizens, enterprises and staff. Phone numbers are stored
-- encrypted under the key-encryption key, with a keyed blind index
-- (HMAC-SHA-256) so that an exact lookup needs no decryption.
CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    username        TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL CHECK (kind IN ('citizen', 'enterprise', 'staff')),
    display_name    TEXT NOT NULL DEFAULT '',
    email           TEXT,
    phone_enc       BLOB,
    phone_index     TEXT UNIQUE,
    password_hash   TEXT,
    is_admin        BOOLEAN NOT NULL DEFAULT FALSE,
    status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    assurance_level INTEGER NOT NULL DEFAULT 1,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL
);
CREATE INDEX users_email ON users (email);

-- OAuth 2.0 / OpenID Connect clients (department systems). The protocol
-- metadata lives in one JSON document so that new metadata needs no
-- migration; secret_hash is HMAC-SHA-256 of the secret under a key derived
-- from the key-encryption key.
CREATE TABLE clients (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL DEFAULT '',
    secret_hash BLOB,
    public      BOOLEAN NOT NULL DEFAULT FALSE,
    disabled    BOOLEAN NOT NULL DEFAULT FALSE,
    metadata    TEXT NOT NULL DEFAULT '{}',
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);

-- Authorization codes, access and refresh tokens, PKCE and OpenID Connect
-- sessions, PAR requests: one row per artefact, keyed by kind and the
-- token's signature (never the token itself). data is the serialized,
-- encrypted request.
CREATE TABLE oauth_tokens (
    kind             TEXT NOT NULL,
    signature        TEXT NOT NULL,
    request_id       TEXT NOT NULL,
    client_id        TEXT NOT NULL,
    subject          TEXT NOT NULL DEFAULT '',
    session_id       TEXT NOT NULL DEFAULT '',
    active           BOOLEAN NOT NULL DEFAULT TRUE,
    requested_at     TIMESTAMP NOT NULL,
    expires_at       TIMESTAMP NOT NULL,
    first_used_at    TIMESTAMP,
    access_signature TEXT NOT NULL DEFAULT '',
    data             BLOB NOT NULL,
    PRIMARY KEY (kind, signature)
);
CREATE INDEX oauth_tokens_request ON oauth_tokens (request_id);
CREATE INDEX oauth_tokens_subject ON oauth_tokens (subject, client_id);
CREATE INDEX oauth_tokens_expiry ON oauth_tokens (expires_at);

-- Keys that sign ID tokens and JWT access tokens. id is the kid, the
-- RFC 7638 thumbprint of the public key. The private key (PKCS#8) is
-- encrypted under the key-encryption key, bound to its kid. A retired key
-- stays published in the JWKS until retire_after, so tokens it signed keep
-- verifying.
CREATE TABLE signing_keys (
    id              TEXT PRIMARY KEY,
    algorithm       TEXT NOT NULL,
    private_key_enc BLOB NOT NULL,
    public_jwk      TEXT NOT NULL,
    active          BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      TIMESTAMP NOT NULL,
    retired_at      TIMESTAMP,
    retire_after    TIMESTAMP
);
-- At most one active key per algorithm, whatever several nodes starting or
-- rotating at once do (package signing also serializes them with a lock).
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (algorithm) WHERE active;

-- The audit log: append-only. A record is inserted in the transaction of
-- the change it records; a sealer (one per cluster at a time) then gives
-- each new record its place in the chain (chain_pos) and the SM3 hash of
-- the record before it, so that an edited or deleted record breaks the
-- chain. Appenders never wait for each other (package audit documents the
-- hashed encoding).
CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    occurred_at TIMESTAMP NOT NULL,
    actor       TEXT NOT NULL DEFAULT '',
    subject     TEXT NOT NULL DEFAULT '',
    client_id   TEXT NOT NULL DEFAULT '',
    ip          TEXT NOT NULL DEFAULT '',
    user_agent  TEXT NOT NULL DEFAULT '',
    action      TEXT NOT NULL,
    result      TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    details     TEXT NOT NULL DEFAULT '{}',
    chain_pos   BIGINT UNIQUE,
    prev_hash   TEXT,
    hash        TEXT
);
CREATE INDEX audit_events_time ON audit_events (occurred_at);
CREATE INDEX audit_events_subject ON audit_events (subject, seq);
CREATE INDEX audit_events_action ON audit_events (action, seq);
CREATE INDEX audit_events_actor ON audit_events (actor, seq);
CREATE INDEX audit_events_unsealed ON audit_events (seq) WHERE chain_pos IS NULL;
