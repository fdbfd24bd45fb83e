-- QR-code sign-ins (扫码登录, users/qrlogin.go). A desktop sign-in page shows
-- a QR code naming token; a phone already signed in scans it and approves.
-- Only hashes are stored (SHA-256, hex): token_hash of the QR code's token,
-- which the phone presents, and browser_hash of a secret held in the
-- desktop browser's cookie, which alone can see the outcome and complete
-- the sign-in. ip and user_agent are the desktop's, shown on the phone.
-- status goes pending → approved or declined, and approved → completed,
-- once. user_id, acr and amr (space-separated) are the approving session's.
CREATE TABLE qr_logins (
    id           TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    browser_hash TEXT NOT NULL UNIQUE,
    status       TEXT NOT NULL DEFAULT 'pending',
    ip           TEXT NOT NULL DEFAULT '',
    user_agent   TEXT NOT NULL DEFAULT '',
    user_id      TEXT NOT NULL DEFAULT '',
    session_id   TEXT NOT NULL DEFAULT '',
    acr          INTEGER NOT NULL DEFAULT 0,
    amr          TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL,
    decided_at   TIMESTAMP
);
CREATE INDEX qr_logins_expiry ON qr_logins (expires_at);
