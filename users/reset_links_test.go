package users

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

func TestResetLinks(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		c := newTestClock()
		l := NewResetLinks(d, 10*time.Minute)
		l.now = c.now
		use := func(token string) (string, error) {
			var got string
			err := l.UseThen(ctx, token, func(_ context.Context, userID string) error { got = userID; return nil })
			return got, err
		}

		token, expires, err := l.Create(ctx, "user-1", "admin-1")
		if err != nil || len(token) != 43 || !expires.Equal(c.t.Add(10*time.Minute)) {
			t.Fatalf("create: %q %v %v", token, expires, err)
		}
		var stored int
		d.QueryRow(ctx, `SELECT count(*) FROM password_reset_links WHERE token_hash = ?`, token).Scan(&stored)
		if stored != 0 {
			t.Fatal("the token is stored in clear")
		}
		if id, err := l.Peek(ctx, token); err != nil || id != "user-1" {
			t.Fatalf("peek: %q %v", id, err)
		}

		// A failing step leaves the link usable.
		boom := errors.New("boom")
		if err := l.UseThen(ctx, token, func(context.Context, string) error { return boom }); !errors.Is(err, boom) {
			t.Fatalf("failing then: %v", err)
		}
		if id, err := use(token); err != nil || id != "user-1" {
			t.Fatalf("use: %q %v", id, err)
		}
		if _, err := use(token); !errors.Is(err, ErrResetLinkInvalid) {
			t.Fatalf("second use: %v", err)
		}

		// A new link replaces the old one.
		first, _, _ := l.Create(ctx, "user-1", "admin-1")
		second, _, _ := l.Create(ctx, "user-1", "admin-1")
		if _, err := l.Peek(ctx, first); !errors.Is(err, ErrResetLinkInvalid) {
			t.Fatalf("replaced link still works: %v", err)
		}

		c.advance(10 * time.Minute)
		if _, err := use(second); !errors.Is(err, ErrResetLinkInvalid) {
			t.Fatalf("expired link: %v", err)
		}
		for _, bad := range []string{"", "short", second + "x"} {
			if _, err := l.Peek(ctx, bad); !errors.Is(err, ErrResetLinkInvalid) {
				t.Fatalf("malformed %q: %v", bad, err)
			}
		}
		if n, err := l.PurgeExpired(ctx, c.t); err != nil || n != 1 {
			t.Fatalf("purge: %d %v", n, err)
		}

		third, _, _ := l.Create(ctx, "user-2", "admin-1")
		if err := l.RevokeForUser(ctx, "user-2"); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Peek(ctx, third); !errors.Is(err, ErrResetLinkInvalid) {
			t.Fatalf("revoked link: %v", err)
		}
	})
}
