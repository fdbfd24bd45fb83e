package users

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

func newTestLockout(d *db.DB, p LockoutPolicy) (*Lockout, *testClock) {
	c := newTestClock()
	l := NewLockout(d, p)
	l.now = c.now
	return l, c
}

// failN counts n failures and returns the lock the last one reported.
func failN(t *testing.T, l *Lockout, key string, n int) time.Time {
	t.Helper()
	var until time.Time
	for i := 0; i < n; i++ {
		var err error
		if until, err = l.Fail(context.Background(), key); err != nil {
			t.Fatal(err)
		}
	}
	return until
}

func checkLock(t *testing.T, l *Lockout, key string) time.Time {
	t.Helper()
	until, err := l.Check(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return until
}

func TestLockoutLocksAtTheLimit(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		l, c := newTestLockout(d, LockoutPolicy{MaxFailuresPerIP: 8})
		tests := []struct {
			key   string
			limit int
		}{
			{AccountKey("user-1"), DefaultMaxFailures},
			{IPKey("192.0.2.1"), 8},
		}
		for _, tc := range tests {
			for i := 1; i < tc.limit; i++ {
				if until := failN(t, l, tc.key, 1); !until.IsZero() {
					t.Fatalf("%s locked after %d failures", tc.key, i)
				}
			}
			if r, err := l.State(context.Background(), tc.key); err != nil || r.Locked {
				t.Fatalf("%s: State says locked below the limit: %+v, %v", tc.key, r, err)
			}
			want := c.t.Add(DefaultLockFor)
			if until := failN(t, l, tc.key, 1); !until.Equal(want) {
				t.Fatalf("%s: failure %d locked until %v, want %v", tc.key, tc.limit, until, want)
			}
			if until := checkLock(t, l, tc.key); !until.Equal(want) {
				t.Fatalf("%s: Check = %v, want %v", tc.key, until, want)
			}
		}
		if !checkLock(t, l, AccountKey("user-2")).IsZero() {
			t.Fatal("another account is locked")
		}
	})
}

func TestLockoutFailuresWhileLockedDoNotExtendIt(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		l, c := newTestLockout(d, LockoutPolicy{})
		key := AccountKey("user-1")
		want := c.t.Add(DefaultLockFor)
		failN(t, l, key, DefaultMaxFailures)
		c.advance(5 * time.Minute)
		if until := failN(t, l, key, 3); !until.Equal(want) {
			t.Fatalf("locked until %v, want still %v", until, want)
		}
	})
}

func TestLockoutExpires(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		l, c := newTestLockout(d, LockoutPolicy{})
		key := AccountKey("user-1")
		failN(t, l, key, DefaultMaxFailures)
		c.advance(DefaultLockFor - time.Second)
		if checkLock(t, l, key).IsZero() {
			t.Fatal("unlocked a second early")
		}
		c.advance(time.Second)
		if !checkLock(t, l, key).IsZero() {
			t.Fatal("still locked after LockFor")
		}
		if until := failN(t, l, key, DefaultMaxFailures-1); !until.IsZero() {
			t.Fatal("an ended lock did not start a fresh count")
		}
	})
}

func TestLockoutWindowAndReset(t *testing.T) {
	tests := []struct {
		name    string
		between func(l *Lockout, c *testClock, key string) error
	}{
		{"window passes", func(l *Lockout, c *testClock, key string) error { c.advance(DefaultFailureWindow); return nil }},
		{"reset", func(l *Lockout, c *testClock, key string) error { return l.Reset(context.Background(), key) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dbtest.Backends(t, func(t *testing.T, d *db.DB) {
				l, c := newTestLockout(d, LockoutPolicy{})
				key := AccountKey("user-1")
				failN(t, l, key, DefaultMaxFailures-1)
				if err := tc.between(l, c, key); err != nil {
					t.Fatal(err)
				}
				if until := failN(t, l, key, DefaultMaxFailures-1); !until.IsZero() {
					t.Fatal("old failures still counted")
				}
				if until := failN(t, l, key, 1); until.IsZero() {
					t.Fatal("the new count does not lock at the limit")
				}
			})
		})
	}
}

func TestLockoutResetUnlocks(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		l, _ := newTestLockout(d, LockoutPolicy{})
		key := AccountKey("user-1")
		failN(t, l, key, DefaultMaxFailures)
		if err := l.Reset(context.Background(), key); err != nil {
			t.Fatal(err)
		}
		if !checkLock(t, l, key).IsZero() {
			t.Fatal("still locked after Reset")
		}
		if err := l.Reset(context.Background(), AccountKey("nobody")); err != nil {
			t.Fatalf("resetting a clean key: %v", err)
		}
	})
}

func TestLockoutCountsConcurrentFailures(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		const n = 12
		l, _ := newTestLockout(d, LockoutPolicy{MaxFailures: n})
		key := AccountKey("user-1")
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := l.Fail(context.Background(), key)
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if checkLock(t, l, key).IsZero() {
			t.Fatalf("%d concurrent failures did not reach the limit of %d: some were lost", n, n)
		}
	})
}

func TestLockoutPurge(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		l, c := newTestLockout(d, LockoutPolicy{LockFor: time.Hour})
		failN(t, l, AccountKey("stale"), 1)
		failN(t, l, AccountKey("locked"), DefaultMaxFailures)
		c.advance(DefaultFailureWindow - time.Minute)
		failN(t, l, AccountKey("recent"), 1)
		n, err := l.Purge(ctx, c.t.Add(2*time.Minute))
		if err != nil || n != 1 {
			t.Fatalf("purged %d, %v; want only the stale counter", n, err)
		}
		if checkLock(t, l, AccountKey("locked")).IsZero() {
			t.Fatal("purge lifted a lock")
		}

		// A lockout window shorter than CounterRetention does not purge
		// the rate-limit counters that share the table inside theirs.
		short, c2 := newTestLockout(d, LockoutPolicy{Window: time.Second})
		failN(t, short, "qr:192.0.2.7", 1)
		if n, err := short.Purge(ctx, c2.t.Add(CounterRetention-time.Minute)); err != nil || n != 0 {
			t.Fatalf("purged %d, %v inside CounterRetention", n, err)
		}
		if n, err := short.Purge(ctx, c2.t.Add(CounterRetention+time.Minute)); err != nil || n != 1 {
			t.Fatalf("purged %d, %v after CounterRetention; want the counter", n, err)
		}
	})
}

func TestLockoutDelaysGrowUntilTheLock(t *testing.T) {
	tests := []struct {
		name  string
		key   string
		waits []time.Duration // after each failure; the last failure locks
	}{
		{"account", AccountKey("user-1"), []time.Duration{0, 0, time.Second, 2 * time.Second}},
		{"address", IPKey("192.0.2.1"), []time.Duration{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, time.Second, 2 * time.Second, 4 * time.Second,
			8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dbtest.Backends(t, func(t *testing.T, d *db.DB) {
				l, c := newTestLockout(d, LockoutPolicy{MaxFailuresPerIP: 18})
				for i, want := range tc.waits {
					failN(t, l, tc.key, 1)
					r, err := l.State(context.Background(), tc.key)
					if err != nil {
						t.Fatal(err)
					}
					got := time.Duration(0)
					if !r.Until.IsZero() {
						got = r.Until.Sub(c.t)
					}
					if got != want || r.Locked {
						t.Fatalf("after failure %d: wait %v (locked %v), want %v", i+1, got, r.Locked, want)
					}
					c.advance(got)
					if !checkLock(t, l, tc.key).IsZero() {
						t.Fatalf("after failure %d: still refused once the wait is over", i+1)
					}
				}
				if r, _ := l.State(context.Background(), tc.key); !r.Until.IsZero() {
					t.Fatalf("refused before the limit: %+v", r)
				}
				failN(t, l, tc.key, 1)
				if r, _ := l.State(context.Background(), tc.key); !r.Locked || !r.Until.Equal(c.t.Add(DefaultLockFor)) {
					t.Fatalf("the failure at the limit: %+v, want a lock for %v", r, DefaultLockFor)
				}
			})
		})
	}
}
