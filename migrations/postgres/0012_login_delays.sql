-- Growing delays between failed sign-ins: after a few failures a key must
-- wait until retry_after before its next attempt is even checked, and the
-- wait doubles with each further failure until the lock.
ALTER TABLE login_failures ADD COLUMN retry_after TIMESTAMPTZ;
