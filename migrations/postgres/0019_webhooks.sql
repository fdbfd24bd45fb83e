-- Change events for department systems (信息同步): a client subscribes a URL
-- to event types; the secret signing the deliveries is sealed under the
-- key-encryption key, since it must be read back to sign.
CREATE TABLE webhook_subscriptions (
    id          TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL,
    url         TEXT NOT NULL,
    secret_enc  BYTEA NOT NULL,
    event_types TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_subscriptions_client ON webhook_subscriptions (client_id);

-- The outbox: one row per event and subscription, written in the
-- transaction that makes the change, so that no event is lost to a crash or
-- a restart. next_attempt_at is also the claim: a node that takes a row
-- moves it past the send timeout, so that no other node sends it meanwhile.
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_error      TEXT NOT NULL DEFAULT '',
    delivered_at    TIMESTAMPTZ,
    gave_up_at      TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (subscription_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;

-- The delivery log: every attempt and what the receiver answered.
CREATE TABLE webhook_attempts (
    id              TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    at              TIMESTAMPTZ NOT NULL,
    status_code     INTEGER NOT NULL,
    error           TEXT NOT NULL DEFAULT ''
);
CREATE INDEX webhook_attempts_subscription ON webhook_attempts (subscription_id, id);
