-- Back-channel logout notifications waiting to be sent (an outbox). A
-- logout writes one row per client in the transaction that ends the browser
-- session, so a notification is never lost to a crash or a restart; a worker
-- on any node sends it and retries with backoff. The logout token itself is
-- minted at each attempt from subject and session_id, because it lives only
-- two minutes and retries last longer. next_attempt_at is also the claim: a
-- node that takes a row moves it past the send timeout, so that no other
-- node sends it meanwhile.
CREATE TABLE oauth_logout_deliveries (
    id              TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL,
    uri             TEXT NOT NULL,
    subject         TEXT NOT NULL,
    session_id      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_error      TEXT NOT NULL DEFAULT '',
    delivered_at    TIMESTAMPTZ,
    gave_up_at      TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX oauth_logout_deliveries_due ON oauth_logout_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;

-- Logout finds every client that received tokens from a browser session.
CREATE INDEX oauth_tokens_session ON oauth_tokens (session_id, client_id);
