-- Audit records moved out of the database by retention (sso audit archive):
-- each row names a JSON-lines file holding the places first_pos..last_pos
-- of the chain, and the hash of its last record, so that the chain that
-- stays in audit_events still verifies from there, and the file can be
-- checked against it (file_sha256) years later.
CREATE TABLE audit_archives (
    id          TEXT PRIMARY KEY,
    first_pos   BIGINT NOT NULL,
    last_pos    BIGINT NOT NULL UNIQUE,
    last_hash   TEXT NOT NULL,
    records     BIGINT NOT NULL,
    file_name   TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    before_time TIMESTAMP NOT NULL,
    archived_at TIMESTAMP NOT NULL
);
