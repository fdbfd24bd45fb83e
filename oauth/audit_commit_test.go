package oauth_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/oauth"
)

// TestRefreshAndItsRecordCommitTogether: when the oauth.token audit record
// of a refresh cannot be written (make soak lost such records when
// PostgreSQL restarted between the tokens' commit and the record), the
// refresh fails and its refresh token is not rotated: no tokens are handed
// out unrecorded, and the client can simply try again.
func TestRefreshAndItsRecordCommitTogether(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		e := newDeviceEnv(t, d)
		status, tok := e.poll(t, e.seed(t, "kiosk", oauth.DeviceApproved, 10*time.Minute, "openid", "offline_access"))
		if status != 200 {
			t.Fatalf("tokens: %d %v", status, tok)
		}
		refresh := func() (int, map[string]any) {
			return e.post(t, "/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}, "client_id": {"kiosk"}}, "", "")
		}
		records := func() int {
			var n int
			if err := d.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE action = 'oauth.token'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		block, unblock := []string{
			`CREATE TRIGGER block_token_audit BEFORE INSERT ON audit_events WHEN NEW.action = 'oauth.token' BEGIN SELECT RAISE(ABORT, 'blocked'); END`,
		}, []string{`DROP TRIGGER block_token_audit`}
		if d.Dialect() == db.Postgres {
			block = []string{
				`CREATE FUNCTION block_token_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.action = 'oauth.token' THEN RAISE EXCEPTION 'blocked'; END IF; RETURN NEW; END $$`,
				`CREATE TRIGGER block_token_audit BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION block_token_audit()`,
			}
			unblock = []string{`DROP TRIGGER block_token_audit ON audit_events`, `DROP FUNCTION block_token_audit()`}
		}
		exec := func(stmts []string) {
			for _, q := range stmts {
				if _, err := d.Exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
		}
		before := records()
		exec(block)
		if status, out := refresh(); status == 200 {
			t.Fatalf("refreshed although the record could not be written (%d, %d fields)", status, len(out))
		}
		exec(unblock)
		if n := records(); n != before {
			t.Fatalf("%d records after the failed refresh, want %d", n, before)
		}
		if status, out := refresh(); status != 200 || out["refresh_token"] == nil {
			t.Fatalf("the same refresh token after the failed refresh: %d %v (rotated without its record?)", status, out)
		}
		if n := records(); n != before+1 {
			t.Fatalf("%d records after the refresh, want %d", n, before+1)
		}
	})
}
