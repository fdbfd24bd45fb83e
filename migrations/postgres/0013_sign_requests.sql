-- Signature requests (issue 7, "Signing"): a department client asks a
-- person to sign a document; the person approves or declines in the
-- account centre. digest is SM3 of the document; document is kept only
-- while the request is pending (NULL when the client sent only the digest).
-- digest_only: the raw signature signs the 32 digest bytes as its message.
-- subject is the sub the client named the person by, reported back to it.
CREATE TABLE sign_requests (
    id             TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    subject        TEXT NOT NULL,
    title          TEXT NOT NULL,
    digest         BYTEA NOT NULL,
    document       BYTEA,
    digest_only    BOOLEAN NOT NULL DEFAULT FALSE,
    callback_url   TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'signed', 'declined', 'expired')),
    certificate_id TEXT NOT NULL DEFAULT '',
    cms            BYTEA,
    signature      BYTEA,
    created_at     TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL,
    decided_at     TIMESTAMPTZ
);
CREATE INDEX sign_requests_user ON sign_requests (user_id, status);
CREATE INDEX sign_requests_due ON sign_requests (expires_at) WHERE status = 'pending';

-- Outcome notifications to the requesting client's callback URL (an
-- outbox, as for back-channel logout): written in the transaction that
-- settles the request, sent and retried by a worker on any node. The signed
-- body is minted at each attempt. next_attempt_at is also the claim.
CREATE TABLE sign_request_callbacks (
    id              TEXT PRIMARY KEY,
    request_id      TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    uri             TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_error      TEXT NOT NULL DEFAULT '',
    delivered_at    TIMESTAMPTZ,
    gave_up_at      TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX sign_request_callbacks_due ON sign_request_callbacks (next_attempt_at)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;
CREATE INDEX sign_request_callbacks_request ON sign_request_callbacks (request_id);
