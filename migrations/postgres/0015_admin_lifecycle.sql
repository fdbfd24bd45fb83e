-- Soft delete and erasure of accounts. A deleted account keeps status
-- 'disabled' in the status column (so that anything reading the column
-- alone still refuses it) and deleted_at says it is deleted; after the
-- retention its personal data is erased and erased_at set, leaving a
-- tombstone (id, kind, deleted_at, erased_at) that audit records still
-- name.
ALTER TABLE users ADD COLUMN deleted_at TIMESTAMPTZ;
ALTER TABLE users ADD COLUMN erased_at TIMESTAMPTZ;
CREATE INDEX users_awaiting_erasure ON users (deleted_at) WHERE deleted_at IS NOT NULL AND erased_at IS NULL;

-- One-time password reset links an administrator creates. token_hash is
-- SHA-256 of a 256-bit random token (never stored); a link is used up by
-- its first use and dies at expires_at. One live link per account.
CREATE TABLE password_reset_links (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL UNIQUE,
    created_by TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX password_reset_links_expiry ON password_reset_links (expires_at);

-- Client secret rotation with overlap: the replaced secret's hash keeps
-- working until previous_secret_expires_at. org_unit_id is the department
-- the client belongs to ('' for none: only super admins and client
-- managers see it).
ALTER TABLE clients ADD COLUMN previous_secret_hash BYTEA;
ALTER TABLE clients ADD COLUMN previous_secret_expires_at TIMESTAMPTZ;
ALTER TABLE clients ADD COLUMN org_unit_id TEXT NOT NULL DEFAULT '';
