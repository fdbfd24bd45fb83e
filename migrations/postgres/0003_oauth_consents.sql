-- Consents a person gave a client: remembered per user, client and scope
-- set until expires_at when "remember my choice" was ticked; otherwise
-- single_use, good for the one authorization that asked for it.
CREATE TABLE oauth_consents (
    user_id    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    granted_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    single_use BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (user_id, client_id)
);

-- jti values of private_key_jwt client assertions already used, so that a
-- replayed assertion is refused until it would have expired anyway.
CREATE TABLE oauth_assertion_jtis (
    jti        TEXT PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX oauth_assertion_jtis_expiry ON oauth_assertion_jtis (expires_at);
