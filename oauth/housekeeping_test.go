package oauth

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

// fakePurger stands for users.Sessions and users.Lockout: it records the
// times it was asked to purge at and reports n rows each time.
type fakePurger struct {
	n      int64
	mu     sync.Mutex
	calls  []time.Time
	called chan struct{}
}

func (f *fakePurger) purge(now time.Time) (int64, error) {
	f.mu.Lock()
	f.calls = append(f.calls, now)
	f.mu.Unlock()
	if f.called != nil {
		select {
		case f.called <- struct{}{}:
		default:
		}
	}
	return f.n, nil
}

func (f *fakePurger) PurgeExpired(_ context.Context, now time.Time) (int64, error) {
	return f.purge(now)
}

func (f *fakePurger) Purge(_ context.Context, now time.Time) (int64, error) {
	return f.purge(now)
}

func (f *fakePurger) times() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.calls...)
}

// addToken stores an access token that expires at exp and returns its signature.
func addToken(t *testing.T, s *SQLStore, exp time.Time) string {
	t.Helper()
	sig := rand.Text()
	err := s.CreateToken(context.Background(), &Token{Kind: KindAccessToken, Signature: sig, RequestID: rand.Text(), ClientID: "app",
		Subject: "u1", Active: true, RequestedAt: time.Now(), ExpiresAt: exp, Data: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func hasToken(t *testing.T, s *SQLStore, sig string) bool {
	t.Helper()
	_, err := s.GetToken(context.Background(), KindAccessToken, sig)
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func count(t *testing.T, d *db.DB, table string) int {
	t.Helper()
	var n int
	if err := d.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestHousekeepingPurgesExpiredRows(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		sessions, lockouts := &fakePurger{n: 4}, &fakePurger{n: 6}
		p := newTokenTestProvider(t, d, func(deps *Dependencies) { deps.ExpiredSessions, deps.Lockouts = sessions, lockouts })
		ctx := context.Background()
		now := time.Now().UTC()
		past, future := now.Add(-time.Minute), now.Add(time.Hour)

		var expired, live []string
		for range 5 { // more than two batches of two
			expired = append(expired, addToken(t, p.store, past))
		}
		for range 2 {
			live = append(live, addToken(t, p.store, future))
		}
		liveJTI := rand.Text()
		if err := p.storage.SetClientAssertionJWT(ctx, liveJTI, future); err != nil {
			t.Fatal(err)
		}
		for range 3 { // SetClientAssertionJWT would sweep them; insert them as they would be left behind
			if _, err := d.Exec(ctx, `INSERT INTO oauth_assertion_jtis (jti, expires_at) VALUES (?, ?)`, rand.Text(), past); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.store.GrantConsent(ctx, "u-live", "app", []string{"openid"}, true); err != nil {
			t.Fatal(err)
		}
		for _, u := range []string{"u-old1", "u-old2"} {
			if _, err := d.Exec(ctx, `INSERT INTO oauth_consents (user_id, client_id, scopes, granted_at, expires_at, single_use) VALUES (?, ?, ?, ?, ?, ?)`,
				u, "app", "openid", past.Add(-time.Hour), past, false); err != nil {
				t.Fatal(err)
			}
		}

		got, ran, err := p.housekeep(ctx, now, 2)
		if err != nil || !ran {
			t.Fatalf("pass: ran=%v err=%v", ran, err)
		}
		if want := (Purged{Tokens: 5, Assertions: 3, Consents: 2, Sessions: 4, Lockouts: 6}); got != want {
			t.Fatalf("purged %+v, want %+v", got, want)
		}
		for _, sig := range expired {
			if hasToken(t, p.store, sig) {
				t.Fatal("an expired token survived")
			}
		}
		for _, sig := range live {
			if !hasToken(t, p.store, sig) {
				t.Fatal("a live token was purged")
			}
		}
		if err := p.storage.ClientAssertionJWTValid(ctx, liveJTI); !errors.Is(err, fosite.ErrJTIKnown) {
			t.Fatalf("the live jti was forgotten: %v", err)
		}
		if n := count(t, d, "oauth_assertion_jtis"); n != 1 {
			t.Fatalf("%d jtis left, want 1", n)
		}
		if n := count(t, d, "oauth_consents"); n != 1 {
			t.Fatalf("%d consents left, want 1", n)
		}
		if ok, err := p.store.UseConsent(ctx, "u-live", "app", []string{"openid"}); err != nil || !ok {
			t.Fatalf("the live consent was purged: %v %v", ok, err)
		}
		for name, f := range map[string]*fakePurger{"sessions": sessions, "lockouts": lockouts} {
			if calls := f.times(); len(calls) != 1 || !calls[0].Equal(now) {
				t.Fatalf("%s purged at %v, want once at %v", name, calls, now)
			}
		}
	})
}

func TestHousekeepingSkipsWhileAnotherNodeRuns(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		if d.Dialect() != db.Postgres {
			t.Skip("SQLite serves one node; there is no lock to share")
		}
		p := newTokenTestProvider(t, d, nil)
		ctx := context.Background()
		sig := addToken(t, p.store, time.Now().Add(-time.Minute))

		other, err := d.SQL().Conn(ctx) // another node's connection
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		if _, err := other.ExecContext(ctx, `SELECT pg_advisory_lock(`+housekeepingLockKey+`)`); err != nil {
			t.Fatal(err)
		}
		if _, ran, err := p.housekeep(ctx, time.Now(), purgeBatch); err != nil || ran {
			t.Fatalf("pass ran beside another node's: ran=%v err=%v", ran, err)
		}
		if !hasToken(t, p.store, sig) {
			t.Fatal("a skipped pass deleted rows")
		}
		if _, err := other.ExecContext(ctx, `SELECT pg_advisory_unlock(`+housekeepingLockKey+`)`); err != nil {
			t.Fatal(err)
		}
		if n, ran, err := p.housekeep(ctx, time.Now(), purgeBatch); err != nil || !ran || n.Tokens != 1 {
			t.Fatalf("pass after the other node finished: %+v ran=%v err=%v", n, ran, err)
		}
		// The pass gave its lock back: the other node can take it again.
		var ok bool
		if err := other.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(`+housekeepingLockKey+`)`).Scan(&ok); err != nil || !ok {
			t.Fatalf("lock still held after the pass: %v %v", ok, err)
		}
	})
}

func TestRunHousekeepingRepeatsUntilCancelled(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		sessions := &fakePurger{called: make(chan struct{}, 1)}
		p := newTokenTestProvider(t, d, func(deps *Dependencies) { deps.ExpiredSessions = sessions })
		expired := addToken(t, p.store, time.Now().Add(-time.Minute))
		live := addToken(t, p.store, time.Now().Add(time.Hour))

		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			p.RunHousekeeping(ctx, time.Millisecond)
		}()
		limit := time.After(30 * time.Second) // bounds a broken run only
		for range 2 {                         // a second pass proves it repeats
			select {
			case <-sessions.called:
			case <-limit:
				t.Fatal("no housekeeping pass ran")
			}
		}
		cancel()
		<-done
		if hasToken(t, p.store, expired) || !hasToken(t, p.store, live) {
			t.Fatal("the passes did not keep exactly the live token")
		}
	})
}
