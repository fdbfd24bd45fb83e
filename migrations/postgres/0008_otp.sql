-- One-time codes sent by SMS or email (users/otp.go). destination is a
-- keyed HMAC blind index of the normalized phone number or address, so the
-- table names nobody; code_hash is HMAC-SHA-256 under a key derived from
-- the key-encryption key, so that the million possible codes cannot be
-- tried offline against a copy of the table. One live code per purpose and
-- destination; attempts counts wrong guesses, and a code with too many is
-- dead until it expires.
CREATE TABLE otp_codes (
    purpose     TEXT NOT NULL,
    destination TEXT NOT NULL,
    code_hash   TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (purpose, destination)
);
CREATE INDEX otp_codes_expiry ON otp_codes (expires_at);

-- Messages sent per destination, whatever their purpose, so that every
-- node enforces the same send interval and daily limit. day_count counts
-- the sends since day_start; a day after day_start the count starts over.
CREATE TABLE otp_send_limits (
    destination  TEXT PRIMARY KEY,
    last_sent_at TIMESTAMPTZ NOT NULL,
    day_start    TIMESTAMPTZ NOT NULL,
    day_count    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX otp_send_limits_day ON otp_send_limits (day_start);
