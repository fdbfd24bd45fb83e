-- WebAuthn passkeys. Each account that registers one gets a random user
-- handle (never its username or id), which authenticators store and hand
-- back at passwordless sign-in.
CREATE TABLE webauthn_users (
    user_id    TEXT PRIMARY KEY,
    handle     BLOB NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL
);

-- One row per passkey. id is the credential id, base64url without padding.
-- The flags are those of registration, updated after each sign-in;
-- backup_eligible never changes, because a credential whose BE flag flips is
-- refused. transports is space-separated. last_used_at is NULL until the
-- first sign-in.
CREATE TABLE webauthn_credentials (
    id                 TEXT PRIMARY KEY,
    user_id            TEXT NOT NULL,
    name               TEXT NOT NULL DEFAULT '',
    public_key         BLOB NOT NULL,
    attestation_type   TEXT NOT NULL DEFAULT '',
    attestation_format TEXT NOT NULL DEFAULT '',
    transports         TEXT NOT NULL DEFAULT '',
    attachment         TEXT NOT NULL DEFAULT '',
    user_present       BOOLEAN NOT NULL DEFAULT FALSE,
    user_verified      BOOLEAN NOT NULL DEFAULT FALSE,
    backup_eligible    BOOLEAN NOT NULL DEFAULT FALSE,
    backup_state       BOOLEAN NOT NULL DEFAULT FALSE,
    aaguid             BLOB,
    sign_count         BIGINT NOT NULL DEFAULT 0,
    clone_warning      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at         TIMESTAMP NOT NULL,
    last_used_at       TIMESTAMP
);
CREATE INDEX webauthn_credentials_user ON webauthn_credentials (user_id);

-- Ceremonies in flight: the server-side state of a registration or sign-in
-- between its begin and finish requests, so that any node can finish it.
-- id is the SHA-256 of the random value in the browser's cookie; a row is
-- deleted when it is used, and is worthless after expires_at.
CREATE TABLE webauthn_challenges (
    id         TEXT PRIMARY KEY,
    ceremony   TEXT NOT NULL,
    user_id    TEXT NOT NULL DEFAULT '',
    data       BLOB NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX webauthn_challenges_expiry ON webauthn_challenges (expires_at);
