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
		before := records()
		unblock := dbtest.FailInserts(t, d, "audit_events", "NEW.action = 'oauth.token'")
		if status, out := refresh(); status == 200 {
			t.Fatalf("refreshed although the record could not be written (%d, %d fields)", status, len(out))
		}
		unblock()
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
