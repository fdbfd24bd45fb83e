-- A holder's consent that a client may read their licences of one type
-- (issue 7, "bring your licence once"). Withdrawing it deletes the row.
CREATE TABLE licence_consents (
    user_id    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    type_code  TEXT NOT NULL REFERENCES licence_types (type_code),
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, client_id, type_code)
);
