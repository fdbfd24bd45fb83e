package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/users"
)

// Database counts in the login_failures table through users.Lockout, one
// row per key updated under a row lock: nothing besides the database, at
// the price of a write transaction per request.
type Database struct {
	l *users.Lockout
}

// NewDatabase returns a limiter that counts in d under p.
func NewDatabase(d *db.DB, p Policy) (*Database, error) {
	p, err := p.check()
	if err != nil {
		return nil, err
	}
	if p.Window > users.CounterRetention {
		// Housekeeping would purge the counters inside their window.
		return nil, fmt.Errorf("ratelimit: window %s is longer than the %s the database keeps a counter", p.Window, users.CounterRetention)
	}
	// The lockout refuses the failure that reaches MaxFailures, hence +1;
	// the same number for keys that look like addresses ("ip:…"), which
	// it would otherwise give its own per-address limit. Its growing delays
	// are not used: Fail reports only locks.
	limit := p.Limit
	if limit < int(^uint32(0)>>1) {
		limit++
	}
	return &Database{l: users.NewLockout(d, users.LockoutPolicy{
		MaxFailures: limit, MaxFailuresPerIP: limit, Window: p.Window, LockFor: p.Block,
	})}, nil
}

// Count implements Limiter.
func (c *Database) Count(ctx context.Context, key string) (time.Time, error) {
	return c.l.Fail(ctx, key)
}
