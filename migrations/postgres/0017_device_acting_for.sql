-- The enterprise the approving person acted for, if any: a kiosk's tokens
-- must say so, as the authorization code flow's do (acting_for).
ALTER TABLE oauth_device_codes ADD COLUMN acting_for TEXT NOT NULL DEFAULT '';
