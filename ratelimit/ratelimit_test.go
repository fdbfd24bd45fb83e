package ratelimit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/ratelimit/ratelimittest"
	"github.com/govsso/sso/users"
)

// newLimiterFunc makes a limiter under a policy on the backend under test.
type newLimiterFunc func(t *testing.T, p Policy) Limiter

// backends runs fn as a subtest once per backend: the database on SQLite
// and on PostgreSQL, and Redis, each starting empty.
func backends(t *testing.T, fn func(t *testing.T, newLimiter newLimiterFunc)) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		fn(t, func(t *testing.T, p Policy) Limiter {
			l, err := NewDatabase(d, p)
			if err != nil {
				t.Fatal(err)
			}
			return l
		})
	})
	t.Run("redis", func(t *testing.T) {
		rawURL, prefix := ratelimittest.Redis(t)
		opt, err := RedisOptions(rawURL)
		if err != nil {
			t.Fatal(err)
		}
		c := redis.NewClient(opt)
		t.Cleanup(func() { c.Close() })
		fn(t, func(t *testing.T, p Policy) Limiter {
			l, err := NewRedis(c, prefix, p)
			if err != nil {
				t.Fatal(err)
			}
			return l
		})
	})
}

// count counts one request and fails the test on an error.
func count(t *testing.T, l Limiter, key string) time.Time {
	t.Helper()
	until, err := l.Count(context.Background(), key)
	if err != nil {
		t.Fatalf("Count(%s): %v", key, err)
	}
	return until
}

// near reports whether a and b are within d of each other.
func near(a, b time.Time, d time.Duration) bool {
	return a.Sub(b).Abs() <= d
}

func TestLimiterWindow(t *testing.T) {
	backends(t, func(t *testing.T, newLimiter newLimiterFunc) {
		l := newLimiter(t, Policy{Limit: 3, Window: time.Minute, Block: 2 * time.Minute})
		for i := range 3 {
			if until := count(t, l, "198.51.100.1"); !until.IsZero() {
				t.Fatalf("request %d of 3 refused until %v", i+1, until)
			}
		}
		refused := time.Now()
		first := count(t, l, "198.51.100.1")
		if !near(first, refused.Add(2*time.Minute), 5*time.Second) {
			t.Fatalf("request over the limit refused until %v, want the block, about %v", first, refused.Add(2*time.Minute))
		}
		// Requests while refused are refused too, and do not make the wait longer.
		for range 3 {
			if until := count(t, l, "198.51.100.1"); !near(until, first, time.Second) {
				t.Fatalf("request while refused: until %v, want %v", until, first)
			}
		}
	})
}

func TestLimiterExpiry(t *testing.T) {
	const window = time.Second
	backends(t, func(t *testing.T, newLimiter newLimiterFunc) {
		l := newLimiter(t, Policy{Limit: 2, Window: window})
		t.Run("window", func(t *testing.T) {
			count(t, l, "window")
			count(t, l, "window")
			time.Sleep(window + 200*time.Millisecond)
			// A fresh window: two more pass, the third is refused.
			for i := range 2 {
				if until := count(t, l, "window"); !until.IsZero() {
					t.Fatalf("request %d of a fresh window refused until %v", i+1, until)
				}
			}
			if until := count(t, l, "window"); until.IsZero() {
				t.Fatal("third request of the fresh window allowed")
			}
		})
		t.Run("block", func(t *testing.T) {
			count(t, l, "block")
			count(t, l, "block")
			until := count(t, l, "block")
			if until.IsZero() {
				t.Fatal("request over the limit allowed")
			}
			time.Sleep(time.Until(until) + 200*time.Millisecond)
			if until := count(t, l, "block"); !until.IsZero() {
				t.Fatalf("request after the block refused until %v", until)
			}
		})
	})
}

func TestLimiterKeysAreIndependent(t *testing.T) {
	backends(t, func(t *testing.T, newLimiter newLimiterFunc) {
		l := newLimiter(t, Policy{Limit: 1, Window: time.Minute})
		other := newLimiter(t, Policy{Limit: 1, Window: time.Minute})
		count(t, l, "a")
		if until := count(t, l, "a"); until.IsZero() {
			t.Fatal("second request of key a allowed under a limit of 1")
		}
		for _, key := range []string{"b", "a:", "ip:a", "A"} {
			if until := count(t, other, key); !until.IsZero() {
				t.Fatalf("key %q refused after key a went over its limit", key)
			}
		}
	})
}

func TestLimiterCountsConcurrentRequestsExactly(t *testing.T) {
	const goroutines, each, limit = 16, 10, 100
	backends(t, func(t *testing.T, newLimiter newLimiterFunc) {
		// As many limiters as goroutines, as if on as many nodes.
		var allowed, refused atomic.Int64
		var wg sync.WaitGroup
		for range goroutines {
			l := newLimiter(t, Policy{Limit: limit, Window: time.Minute})
			wg.Go(func() {
				for range each {
					until, err := l.Count(context.Background(), "busy")
					switch {
					case err != nil:
						t.Error(err)
						return
					case until.IsZero():
						allowed.Add(1)
					default:
						refused.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if allowed.Load() != limit || refused.Load() != goroutines*each-limit {
			t.Fatalf("%d allowed and %d refused of %d; want exactly %d allowed", allowed.Load(), refused.Load(), goroutines*each, limit)
		}
	})
}

func TestPolicyCheck(t *testing.T) {
	for _, c := range []struct {
		name string
		p    Policy
		ok   bool
	}{
		{"ordinary", Policy{Limit: 600, Window: time.Minute}, true},
		{"huge limit", Policy{Limit: 1<<31 - 1, Window: time.Minute}, true},
		{"no limit", Policy{Window: time.Minute}, false},
		{"negative limit", Policy{Limit: -1, Window: time.Minute}, false},
		{"no window", Policy{Limit: 1}, false},
		{"sub-millisecond block", Policy{Limit: 1, Window: time.Minute, Block: time.Microsecond}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := c.p.check()
			if (err == nil) != c.ok {
				t.Fatalf("check(%+v) = %v, want ok %v", c.p, err, c.ok)
			}
			if c.ok && c.p.Block == 0 && p.Block != p.Window {
				t.Fatalf("default block %v, want the window %v", p.Block, p.Window)
			}
		})
	}
}

// TestDatabaseWindowWithinRetention: the database counters are purged
// after users.CounterRetention, so a longer window is refused up front
// rather than silently reset by housekeeping.
func TestDatabaseWindowWithinRetention(t *testing.T) {
	d := dbtest.Open(t, db.SQLite)
	for _, c := range []struct {
		window time.Duration
		ok     bool
	}{
		{users.CounterRetention, true},
		{users.CounterRetention + time.Second, false},
	} {
		if _, err := NewDatabase(d, Policy{Limit: 1, Window: c.window}); (err == nil) != c.ok {
			t.Errorf("window %s: %v, want ok %v", c.window, err, c.ok)
		}
	}
}
