-- SM2 certificates issued by the internal CA (issue 7). kind is root, ca
-- (the issuing CA), user or org; serial is the lower-case hex serial number.
-- A revoked certificate keeps its row: verification needs revoked_at to tell
-- signatures made before the revocation from those made after.
CREATE TABLE certificates (
    id                TEXT PRIMARY KEY,
    serial            TEXT NOT NULL UNIQUE,
    kind              TEXT NOT NULL CHECK (kind IN ('root', 'ca', 'user', 'org')),
    subject           TEXT NOT NULL,
    issuer            TEXT NOT NULL,
    not_before        TIMESTAMP NOT NULL,
    not_after         TIMESTAMP NOT NULL,
    status            TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    revoked_at        TIMESTAMP,
    revocation_reason INTEGER NOT NULL DEFAULT 0,
    der               BLOB NOT NULL,
    owner_user_id     TEXT NOT NULL DEFAULT '',
    created_at        TIMESTAMP NOT NULL
);
CREATE INDEX certificates_owner ON certificates (owner_user_id);
CREATE INDEX certificates_kind ON certificates (kind, status);
-- One root and one issuing CA: two concurrent 'certs init' cannot both win.
CREATE UNIQUE INDEX certificates_one_ca ON certificates (kind) WHERE kind IN ('root', 'ca');

-- Private keys held by the server: the CA keys and the keys of cloud-signing
-- certificates, sealed with SM4-GCM under a subkey of the key-encryption key.
CREATE TABLE certificate_keys (
    certificate_id TEXT PRIMARY KEY,
    sealed_key     BLOB NOT NULL,
    created_at     TIMESTAMP NOT NULL
);

-- The current CRL of each issuing CA, regenerated on every revocation.
CREATE TABLE certificate_crls (
    issuer_id   TEXT PRIMARY KEY,
    number      INTEGER NOT NULL,
    der         BLOB NOT NULL,
    this_update TIMESTAMP NOT NULL
);
