package users

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

func newTestSessions(d *db.DB) (*Sessions, *testClock) {
	c := newTestClock()
	s := NewSessions(d, SessionOptions{})
	s.now = c.now
	return s, c
}

func TestSessionCreateAndLookup(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, c := newTestSessions(d)
		created, token, err := s.Create(ctx, "user-1", []string{"pwd", "otp"}, 2, "192.0.2.7", "TestBrowser/1.0")
		if err != nil {
			t.Fatal(err)
		}
		if created.ID == "" || len(token) != 43 || strings.ContainsAny(token, "+/=") {
			t.Fatalf("session %q, token %q", created.ID, token)
		}
		got, err := s.Lookup(ctx, token)
		if err != nil {
			t.Fatal(err)
		}
		want := Session{ID: created.ID, UserID: "user-1", AuthTime: c.t, AMR: []string{"pwd", "otp"}, ACR: 2,
			CreatedAt: c.t, LastSeenAt: c.t, ExpiresAt: c.t.Add(DefaultSessionLifetime), IP: "192.0.2.7", UserAgent: "TestBrowser/1.0"}
		if !sessionsEqual(got, &want) || !sessionsEqual(created, &want) {
			t.Fatalf("lookup:\n got %+v\nwant %+v", got, want)
		}
	})
}

func sessionsEqual(a, b *Session) bool {
	return a.ID == b.ID && a.UserID == b.UserID && a.AuthTime.Equal(b.AuthTime) && slices.Equal(a.AMR, b.AMR) &&
		a.ACR == b.ACR && a.ActingFor == b.ActingFor && a.CreatedAt.Equal(b.CreatedAt) && a.LastSeenAt.Equal(b.LastSeenAt) &&
		a.ExpiresAt.Equal(b.ExpiresAt) && a.IP == b.IP && a.UserAgent == b.UserAgent
}

func TestSessionTokenIsNotStored(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, _ := newTestSessions(d)
		ss, token, err := s.Create(ctx, "user-1", []string{"pwd"}, 1, "", "")
		if err != nil {
			t.Fatal(err)
		}
		var id, hash, userID, amr, actingFor, ip, ua string
		if err := d.QueryRow(ctx, `SELECT id, token_hash, user_id, amr, acting_for, ip, user_agent FROM browser_sessions`).
			Scan(&id, &hash, &userID, &amr, &actingFor, &ip, &ua); err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{id, hash, userID, amr, actingFor, ip, ua} {
			if strings.Contains(v, token) {
				t.Fatal("the cookie token is stored in clear")
			}
		}
		if hash != hashSessionToken(token) || id != ss.ID {
			t.Fatalf("row holds id %q hash %q", id, hash)
		}
	})
}

func TestSessionLookupRefusesUnknownTokens(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, _ := newTestSessions(d)
		_, token, err := s.Create(ctx, "user-1", []string{"pwd"}, 1, "", "")
		if err != nil {
			t.Fatal(err)
		}
		_, other, _ := newSessionToken()
		for name, tok := range map[string]string{"empty": "", "short": token[:20], "long": token + "A", "unknown": other, "hash itself": hashSessionToken(token)} {
			if _, err := s.Lookup(ctx, tok); !errors.Is(err, db.ErrNotFound) {
				t.Errorf("%s: %v", name, err)
			}
		}
	})
}

func TestSessionIdleTimeout(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, c := newTestSessions(d)
		_, token, err := s.Create(ctx, "user-1", []string{"pwd"}, 1, "", "")
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ { // each use keeps it alive for another 30 minutes
			c.advance(DefaultSessionIdleTimeout - time.Minute)
			if _, err := s.Lookup(ctx, token); err != nil {
				t.Fatalf("use %d: %v", i, err)
			}
		}
		c.advance(DefaultSessionIdleTimeout + time.Second)
		if _, err := s.Lookup(ctx, token); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("idle session: %v", err)
		}
	})
}

func TestSessionLookupWritesAtMostOnceAMinute(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, c := newTestSessions(d)
		ss, token, err := s.Create(ctx, "user-1", []string{"pwd"}, 1, "", "")
		if err != nil {
			t.Fatal(err)
		}
		stored := func() time.Time {
			var at time.Time
			if err := d.QueryRow(ctx, `SELECT last_seen_at FROM browser_sessions WHERE id = ?`, ss.ID).Scan(&at); err != nil {
				t.Fatal(err)
			}
			return at.UTC()
		}
		start := c.t
		c.advance(30 * time.Second)
		if got, err := s.Lookup(ctx, token); err != nil || !got.LastSeenAt.Equal(start) || !stored().Equal(start) {
			t.Fatalf("after 30s: %v, last seen %v, stored %v", err, got.LastSeenAt, stored())
		}
		c.advance(31 * time.Second)
		if got, err := s.Lookup(ctx, token); err != nil || !got.LastSeenAt.Equal(c.t) || !stored().Equal(c.t) {
			t.Fatalf("after 61s: %v, last seen %v, stored %v", err, got.LastSeenAt, stored())
		}
	})
}

func TestSessionLifetime(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, c := newTestSessions(d)
		_, token, err := s.Create(ctx, "user-1", []string{"pwd"}, 1, "", "")
		if err != nil {
			t.Fatal(err)
		}
		end := c.t.Add(DefaultSessionLifetime)
		for c.advance(20 * time.Minute); c.t.Before(end); c.advance(20 * time.Minute) {
			if _, err := s.Lookup(ctx, token); err != nil {
				t.Fatalf("at %v, before the end: %v", c.t, err)
			}
		}
		c.t = end
		if _, err := s.Lookup(ctx, token); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("at the end of its lifetime: %v", err)
		}
	})
}

func TestSessionRotate(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, _ := newTestSessions(d)
		ss, old, err := s.Create(ctx, "user-1", []string{"pwd"}, 1, "", "")
		if err != nil {
			t.Fatal(err)
		}
		fresh, err := s.Rotate(ctx, old)
		if err != nil || fresh == old || len(fresh) != len(old) {
			t.Fatalf("rotate: %q, %v", fresh, err)
		}
		if got, err := s.Lookup(ctx, fresh); err != nil || got.ID != ss.ID {
			t.Fatalf("new token: %+v, %v", got, err)
		}
		if _, err := s.Lookup(ctx, old); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("old token after rotation: %v", err)
		}
		if _, err := s.Rotate(ctx, old); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("rotating a dead token: %v", err)
		}
	})
}

func TestSessionRevoke(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, _ := newTestSessions(d)
		ss, token, err := s.Create(ctx, "user-1", []string{"pwd"}, 1, "", "")
		if err != nil {
			t.Fatal(err)
		}
		_, otherToken, _ := s.Create(ctx, "user-1", []string{"pwd"}, 1, "", "")
		if err := s.Revoke(ctx, ss.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Lookup(ctx, token); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("revoked session: %v", err)
		}
		if _, err := s.Lookup(ctx, otherToken); err != nil {
			t.Fatalf("the user's other session: %v", err)
		}
		if err := s.Revoke(ctx, ss.ID); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("revoking twice: %v", err)
		}
	})
}

func TestSessionListAndRevokeAllForUser(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, c := newTestSessions(d)
		idle, _, err := s.Create(ctx, "alice", []string{"pwd"}, 1, "", "")
		if err != nil {
			t.Fatal(err)
		}
		c.advance(DefaultSessionIdleTimeout + time.Minute)
		var live []string
		var tokens []string
		for i := 0; i < 3; i++ {
			ss, tok, err := s.Create(ctx, "alice", []string{"pwd"}, 1, "", "")
			if err != nil {
				t.Fatal(err)
			}
			live, tokens = append(live, ss.ID), append(tokens, tok)
			c.advance(time.Second)
		}
		_, bobToken, _ := s.Create(ctx, "bob", []string{"pwd"}, 1, "", "")

		list, err := s.ListForUser(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, ss := range list {
			ids = append(ids, ss.ID)
		}
		if !slices.Equal(ids, live) || slices.Contains(ids, idle.ID) {
			t.Fatalf("listed %v, want the live ones %v", ids, live)
		}

		n, err := s.RevokeAllForUser(ctx, "alice")
		if err != nil || n != 4 {
			t.Fatalf("revoked %d, %v; want all 4", n, err)
		}
		for _, tok := range tokens {
			if _, err := s.Lookup(ctx, tok); !errors.Is(err, db.ErrNotFound) {
				t.Fatalf("alice's session survived: %v", err)
			}
		}
		if _, err := s.Lookup(ctx, bobToken); err != nil {
			t.Fatalf("bob's session: %v", err)
		}
		if list, err := s.ListForUser(ctx, "alice"); err != nil || len(list) != 0 {
			t.Fatalf("after revoke all: %v, %v", list, err)
		}
	})
}

func TestSessionPurgeExpired(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, c := newTestSessions(d)
		end := c.t.Add(DefaultSessionLifetime)
		_, busyToken, _ := s.Create(ctx, "alice", []string{"pwd"}, 1, "", "") // used until its lifetime ends
		_, _, _ = s.Create(ctx, "alice", []string{"pwd"}, 1, "", "")          // never used again
		for c.advance(20 * time.Minute); c.t.Before(end.Add(-10 * time.Minute)); c.advance(20 * time.Minute) {
			if _, err := s.Lookup(ctx, busyToken); err != nil {
				t.Fatal(err)
			}
		}
		_, freshToken, _ := s.Create(ctx, "alice", []string{"pwd"}, 1, "", "")

		n, err := s.PurgeExpired(ctx, end)
		if err != nil || n != 2 {
			t.Fatalf("purged %d, %v; want the busy (past its lifetime) and the idle one", n, err)
		}
		var left int
		if err := d.QueryRow(ctx, `SELECT count(*) FROM browser_sessions`).Scan(&left); err != nil || left != 1 {
			t.Fatalf("%d sessions left, %v", left, err)
		}
		c.t = end
		if _, err := s.Lookup(ctx, freshToken); err != nil {
			t.Fatalf("the fresh session: %v", err)
		}
	})
}
