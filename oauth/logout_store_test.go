package oauth

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/kek"
)

func newLogoutStore(t *testing.T, d *db.DB) *SQLStore {
	t.Helper()
	k, err := kek.New(logoutRandomBytes(t))
	if err != nil {
		t.Fatal(err)
	}
	return NewSQLStore(d, k)
}

func TestSessionClientsAndGrants(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		e := &logoutEnv{t: t, d: d, store: newLogoutStore(t, d)}
		e.grant(KindRefreshToken, "tax", "s1")
		e.grant(KindAccessToken, "tax", "s1")
		e.grant(KindAuthorizeCode, "portal", "s1")
		e.grant(KindRefreshToken, "other", "s2")
		e.grant(KindAccessToken, "batch", "") // client credentials: no session

		ids, err := e.store.sessionClientIDs(ctx, "s1")
		if err != nil || !slices.Equal(ids, []string{"portal", "tax"}) {
			t.Fatalf("clients of s1 = %v, %v; want [portal tax]", ids, err)
		}
		if _, err := e.store.sessionClientIDs(ctx, ""); err == nil {
			t.Error("an empty session id matched the tokens issued without a session")
		}
		n, err := e.store.revokeSessionGrants(ctx, "s1")
		if err != nil || n != 2 {
			t.Fatalf("revoked %d, %v; want the refresh token and the code", n, err)
		}
		if n, _ := e.store.revokeSessionGrants(ctx, "s1"); n != 0 {
			t.Errorf("second revocation revoked %d", n)
		}
		if _, err := e.store.revokeSessionGrants(ctx, ""); err == nil {
			t.Error("an empty session id was accepted")
		}
	})
}

func TestLogoutOutboxClaims(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newLogoutStore(t, d)
		t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		for _, id := range []string{"a", "b", "c"} {
			if err := s.enqueueLogoutDelivery(ctx, &logoutDelivery{ClientID: id, URI: "https://" + id + ".example.gov/bc", Subject: "u", SessionID: "s1"}, t0); err != nil {
				t.Fatal(err)
			}
		}
		if got, _ := s.claimLogoutDeliveries(ctx, t0.Add(-time.Second), time.Minute, 10); len(got) != 0 {
			t.Fatalf("claimed %d before they were due", len(got))
		}
		first, err := s.claimLogoutDeliveries(ctx, t0, time.Minute, 2)
		if err != nil || len(first) != 2 {
			t.Fatalf("claimed %d, %v; want the batch limit 2", len(first), err)
		}
		rest, err := s.claimLogoutDeliveries(ctx, t0, time.Minute, 10)
		if err != nil || len(rest) != 1 || slices.ContainsFunc(first, func(d *logoutDelivery) bool { return d.ID == rest[0].ID }) {
			t.Fatalf("second claim got %d, %v; want only the unclaimed one", len(rest), err)
		}
		if rest[0].Attempts != 1 {
			t.Errorf("attempts = %d after one claim", rest[0].Attempts)
		}
		if err := s.markLogoutDelivered(ctx, first[0].ID, t0); err != nil {
			t.Fatal(err)
		}
		if err := s.abandonLogoutDelivery(ctx, first[1].ID, t0, "HTTP 500"); err != nil {
			t.Fatal(err)
		}
		// After the lease only the unsettled one comes back: its node died.
		again, err := s.claimLogoutDeliveries(ctx, t0.Add(time.Minute), time.Minute, 10)
		if err != nil || len(again) != 1 || again[0].ID != rest[0].ID || again[0].Attempts != 2 {
			t.Fatalf("after the lease: %d claimed, %v", len(again), err)
		}
		n, err := s.purgeLogoutDeliveries(ctx, t0.Add(time.Second))
		if err != nil || n != 2 {
			t.Fatalf("purged %d, %v; want the delivered and the abandoned one", n, err)
		}
		left, _ := s.logoutDeliveriesOfSession(ctx, "s1")
		if len(left) != 1 || left[0].ID != rest[0].ID {
			t.Fatalf("left %d", len(left))
		}
	})
}
