-- Two-step verification with an authenticator app (TOTP, RFC 6238). The
-- secret is sealed under the key-encryption key (aad "users.totp:"+user_id).
-- confirmed_at is NULL while enrolment waits for its first code; only a
-- confirmed row makes sign-in ask for a code. last_step is the last time
-- step a code was accepted for, so that no code is accepted twice.
CREATE TABLE totp_secrets (
    user_id      TEXT PRIMARY KEY,
    secret_enc   BLOB NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    confirmed_at TIMESTAMP,
    last_step    BIGINT NOT NULL DEFAULT 0
);

-- Single-use recovery codes: HMAC-SHA-256 under a key derived from the
-- key-encryption key, never the codes themselves. A used code's row is
-- deleted.
CREATE TABLE totp_recovery_codes (
    user_id    TEXT NOT NULL,
    code_hash  TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);

-- Sign-ins whose password was right and that wait for the second factor.
-- id is the SHA-256 of the random value in the browser's sso_mfa cookie.
-- amr is space-separated; attempts counts wrong codes.
CREATE TABLE mfa_challenges (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    return_to  TEXT NOT NULL,
    amr        TEXT NOT NULL DEFAULT '',
    acr        INTEGER NOT NULL DEFAULT 1,
    attempts   INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX mfa_challenges_expiry ON mfa_challenges (expires_at);
