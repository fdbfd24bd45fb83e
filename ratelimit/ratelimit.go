// Package ratelimit counts requests per key (a client address, mostly) in
// fixed windows that every node shares: in the database by default, or in
// Redis when SSO_REDIS_URL names one, so that a busy public endpoint costs
// an in-memory increment instead of a database transaction per request.
//
// Only pure rate limits belong here: counters that nobody looks at, that an
// administrator never lifts, and whose loss (a Redis restart or flush) lets
// an address start a fresh window and nothing worse. Sign-in failures and
// account locks stay in the database (users.Lockout).
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Policy is how many requests a key may make in a window, which starts at
// the key's first request. The request over the limit refuses the key for
// Block from that request on; requests while refused are counted but do not
// make the wait longer, so hammering an endpoint buys nothing. Then the
// key starts a fresh window.
type Policy struct {
	Limit  int           // requests allowed per window, at least 1
	Window time.Duration // at least a millisecond
	Block  time.Duration // zero: Window
}

// check fills the default Block and refuses a policy that cannot limit.
func (p Policy) check() (Policy, error) {
	if p.Block == 0 {
		p.Block = p.Window
	}
	switch {
	case p.Limit < 1:
		return p, fmt.Errorf("ratelimit: limit %d: must be at least 1", p.Limit)
	case p.Window < time.Millisecond || p.Block < time.Millisecond:
		return p, errors.New("ratelimit: window and block must be at least a millisecond")
	}
	return p, nil
}

// Limiter counts requests per key against one policy. Both implementations
// are safe for concurrent use by many goroutines on many nodes: every
// request is counted exactly once.
type Limiter interface {
	// Count counts one request for key and returns until when key is
	// refused, or the zero time when the request may go on.
	Count(ctx context.Context, key string) (time.Time, error)
}
