package users

import (
	"strings"
	"time"

	"github.com/govsso/sso/db"
)

// LockoutPolicy is how many failed sign-ins a key may have within Window
// before it is locked for LockFor. Client addresses get a higher limit
// because many people may share one (a government office behind NAT).
type LockoutPolicy struct {
	MaxFailures      int           // per account; default 5
	Window           time.Duration // failures older than this are forgotten; default 15m
	LockFor          time.Duration // default 15m
	MaxFailuresPerIP int           // per client address; default 50
}

// Default lockout policy.
const (
	DefaultMaxFailures      = 5
	DefaultFailureWindow    = 15 * time.Minute
	DefaultLockFor          = 15 * time.Minute
	DefaultMaxFailuresPerIP = 50
)

// Key prefixes of login_failures rows.
const (
	accountKeyPrefix = "account:"
	ipKeyPrefix      = "ip:"
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
	return &Lockout{d: d, policy: p, now: time.Now}
}

// failureState is one login_failures row.
type failureState struct {
	failures    int
	windowStart time.Time
	lockedUntil time.Time // zero when not locked
}

// limit is the number of failures that locks key.
func (l *Lockout) limit(key string) int {
	if strings.HasPrefix(key, ipKeyPrefix) {
		return l.policy.MaxFailuresPerIP
	}
	return l.policy.MaxFailures
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
	if st.failures >= l.limit(key) {
		st.lockedUntil = now.Add(l.policy.LockFor)
	}
	return st
}

func (l *Lockout) clock() time.Time {
	return l.now().UTC().Truncate(time.Microsecond)
}
