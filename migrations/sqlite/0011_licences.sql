-- Electronic licences (issue 7, GB/T 36901-36906). A licence type is
-- registered once; fields is a JSON array of {"name", "label", "required"}.
CREATE TABLE licence_types (
    type_code                 TEXT PRIMARY KEY,
    name                      TEXT NOT NULL,
    defining_body_credit_code TEXT NOT NULL,
    fields                    TEXT NOT NULL,
    created_at                TIMESTAMP NOT NULL
);

-- One row per licence version; a renewal adds a row whose
-- previous_identifier names the row it supersedes. Dates are YYYY-MM-DD
-- (valid_to '' means no end). The holder's number is sealed under the
-- key-encryption key and found through a keyed blind index. signed_data is
-- the canonical JSON that signature (raw SM2 DER) covers.
CREATE TABLE licences (
    identifier          TEXT PRIMARY KEY,
    type_code           TEXT NOT NULL REFERENCES licence_types (type_code),
    serial              TEXT NOT NULL,
    version             TEXT NOT NULL,
    previous_identifier TEXT NOT NULL DEFAULT '',
    superseded_by       TEXT NOT NULL DEFAULT '',
    licence_name        TEXT NOT NULL,
    licence_number      TEXT NOT NULL,
    holder_name         TEXT NOT NULL,
    holder_id_type      TEXT NOT NULL CHECK (holder_id_type IN ('resident_id', 'credit_code')),
    holder_id_enc       BLOB NOT NULL,
    holder_id_index     TEXT NOT NULL,
    issuer_name         TEXT NOT NULL,
    issuer_credit_code  TEXT NOT NULL,
    issue_date          TEXT NOT NULL,
    valid_from          TEXT NOT NULL,
    valid_to            TEXT NOT NULL DEFAULT '',
    fields              TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('valid', 'suspended', 'revoked', 'cancelled', 'revoked_by_penalty', 'superseded')),
    status_reason       TEXT NOT NULL DEFAULT '',
    status_at           TIMESTAMP,
    signed_data         BLOB NOT NULL,
    signature           BLOB NOT NULL,
    certificate_id      TEXT NOT NULL,
    client_id           TEXT NOT NULL DEFAULT '',
    created_at          TIMESTAMP NOT NULL
);
CREATE INDEX licences_holder ON licences (holder_id_index);
CREATE UNIQUE INDEX licences_version ON licences (type_code, issuer_credit_code, serial, version);

-- The last serial handed out per type, issuer and year.
CREATE TABLE licence_serials (
    type_code          TEXT NOT NULL,
    issuer_credit_code TEXT NOT NULL,
    year               INTEGER NOT NULL,
    last               INTEGER NOT NULL,
    PRIMARY KEY (type_code, issuer_credit_code, year)
);

-- The organisation certificate that seals an issuing authority's licences.
CREATE TABLE licence_issuer_certificates (
    issuer_credit_code TEXT PRIMARY KEY,
    certificate_id     TEXT NOT NULL
);
