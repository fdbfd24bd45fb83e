-- Device authorizations of the OAuth 2.0 device grant (RFC 8628), for
-- kiosks and other devices without a browser. The device polls with
-- device_code; only its SHA-256 (base64url) is stored, so a copy of the table
-- cannot be used to collect tokens. user_code is what a person types on the
-- /device page, normalized (eight letters, no dash); it is unique, and a
-- clash with an old row just draws a new code. status goes pending →
-- approved or denied, and approved → consumed when the tokens are issued.
-- The person who approved, and their browser session's sid, acr, amr
-- (space-separated) and auth_time, go into the tokens. interval_seconds is
-- how often the device may poll; slow_down raises it.
CREATE TABLE oauth_device_codes (
    device_code_hash   TEXT PRIMARY KEY,
    user_code          TEXT NOT NULL UNIQUE,
    client_id          TEXT NOT NULL,
    scopes             TEXT NOT NULL DEFAULT '',
    status             TEXT NOT NULL DEFAULT 'pending',
    user_id            TEXT NOT NULL DEFAULT '',
    browser_session_id TEXT NOT NULL DEFAULT '',
    acr                INTEGER NOT NULL DEFAULT 0,
    amr                TEXT NOT NULL DEFAULT '',
    auth_time          TIMESTAMP,
    interval_seconds   INTEGER NOT NULL,
    created_at         TIMESTAMP NOT NULL,
    expires_at         TIMESTAMP NOT NULL,
    last_polled_at     TIMESTAMP
);
CREATE INDEX oauth_device_codes_expiry ON oauth_device_codes (expires_at);
