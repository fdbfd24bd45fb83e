package users

import (
	"strings"
	"time"

	"github.com/govsso/sso/db"
)

// LockoutPolicy is how many failed sign-ins a key may have within Window
// before it is locked for LockFor, and how the wait between attempts grows
// before that: after FreeFailures, each failure makes the key wait BaseDelay,
// doubled for every further failure, up to MaxDelay. Client addresses get
// higher numbers because many people may share one (a government office
// behind NAT).
type LockoutPolicy struct {
	MaxFailures      int           // per account; default 5
	Window           time.Duration // failures older than this are forgotten; default 15m
	LockFor          time.Duration // default 15m
	MaxFailuresPerIP int           // per client address; default 50

	FreeFailures      int           // per account, before delays start; default 2
	FreeFailuresPerIP int           // per client address; default 10
	BaseDelay         time.Duration // default 1s
	MaxDelay          time.Duration // default 30s
}

// Default lockout policy.
const (
	DefaultMaxFailures      = 5
	DefaultFailureWindow    = 15 * time.Minute
	DefaultLockFor          = 15 * time.Minute
	DefaultMaxFailuresPerIP = 50

	DefaultFreeFailures      = 2
	DefaultFreeFailuresPerIP = 10
	DefaultBaseDelay         = time.Second
	DefaultMaxDelay          = 30 * time.Second
)

// CounterRetention is the least time Purge keeps a counter, whatever the
// lockout window: login_failures also holds the per-address counters of
// package ratelimit, whose windows may be up to this long, and purging one
// inside its window would hand the address a fresh allowance.
const CounterRetention = 10 * time.Minute

// Key prefixes of login_failures rows.
const (
	accountKeyPrefix = "account:"
	ipKeyPrefix      = "ip:"
	unknownKeyPrefix = "name:"
)

// AccountKey is the lockout key of an account.
func AccountKey(userID string) string { return accountKeyPrefix + userID }

// IPKey is the lockout key of a client address.
func IPKey(ip string) string { return ipKeyPrefix + ip }

// Lockout counts failed sign-ins per key in the database, so that every node
// shares the counters and an attacker gains nothing by spreading attempts
// over nodes.
type Lockout struct {
	d      *db.DB
	policy LockoutPolicy
	now    func() time.Time // replaced by tests
}

// NewLockout returns the counters stored in d; zero policy fields take the defaults.
func NewLockout(d *db.DB, p LockoutPolicy) *Lockout {
	if p.MaxFailures <= 0 {
		p.MaxFailures = DefaultMaxFailures
	}
	if p.Window <= 0 {
		p.Window = DefaultFailureWindow
	}
	if p.LockFor <= 0 {
		p.LockFor = DefaultLockFor
	}
	if p.MaxFailuresPerIP <= 0 {
		p.MaxFailuresPerIP = DefaultMaxFailuresPerIP
	}
	if p.FreeFailures <= 0 {
		p.FreeFailures = DefaultFreeFailures
	}
	if p.FreeFailuresPerIP <= 0 {
		p.FreeFailuresPerIP = DefaultFreeFailuresPerIP
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = DefaultBaseDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = DefaultMaxDelay
	}
	return &Lockout{d: d, policy: p, now: time.Now}
}

// failureState is one login_failures row.
type failureState struct {
	failures    int
	windowStart time.Time
	lockedUntil time.Time // zero when not locked
	retryAfter  time.Time // end of the growing delay; zero when none
}

// Refusal says until when attempts on a key are refused, and why: a lock
// (Locked) or the growing delay between failures. The zero Refusal lets
// the attempt through.
type Refusal struct {
	Until  time.Time
	Locked bool
	// Failures counts the key's failures in the current window, so that a
	// success with none to forget writes nothing.
	Failures int
}

// refusal is what st means for an attempt at now.
func (st failureState) refusal(now time.Time) Refusal {
	switch {
	case now.Before(st.lockedUntil):
		return Refusal{Until: st.lockedUntil, Locked: true}
	case now.Before(st.retryAfter):
		return Refusal{Until: st.retryAfter}
	}
	return Refusal{}
}

// limit is the number of failures that locks key.
func (l *Lockout) limit(key string) int {
	if strings.HasPrefix(key, ipKeyPrefix) {
		return l.policy.MaxFailuresPerIP
	}
	return l.policy.MaxFailures
}

// delay is how long key must wait after its failures-th failure.
func (l *Lockout) delay(key string, failures int) time.Duration {
	free := l.policy.FreeFailures
	if strings.HasPrefix(key, ipKeyPrefix) {
		free = l.policy.FreeFailuresPerIP
	}
	if failures <= free {
		return 0
	}
	d := l.policy.BaseDelay
	for i := free + 1; i < failures && d < l.policy.MaxDelay; i++ {
		d *= 2
	}
	return min(d, l.policy.MaxDelay)
}

// afterFailure is the state once one more failure is counted at now. A
// failure while locked changes nothing, so that an attacker cannot keep an
// account locked longer by hammering it. An ended lock or window starts a
// fresh count.
func (l *Lockout) afterFailure(st failureState, key string, now time.Time) failureState {
	if now.Before(st.lockedUntil) {
		return st
	}
	if !st.lockedUntil.IsZero() || !now.Before(st.windowStart.Add(l.policy.Window)) {
		st = failureState{windowStart: now}
	}
	st.failures++
	st.retryAfter = time.Time{}
	if st.failures >= l.limit(key) {
		st.lockedUntil = now.Add(l.policy.LockFor)
	} else if d := l.delay(key, st.failures); d > 0 {
		st.retryAfter = now.Add(d)
	}
	return st
}

func (l *Lockout) clock() time.Time {
	return l.now().UTC().Truncate(time.Microsecond)
}
