package users

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"time"

	"github.com/govsso/sso/db"
)

// Session is one signed-in browser. ID is public (it becomes the OpenID
// Connect sid); the cookie secret that proves possession is never part of it.
type Session struct {
	ID         string    `json:"id"`
	UserID     string    `json:"user_id"`
	AuthTime   time.Time `json:"auth_time"`
	AMR        []string  `json:"amr"`
	ACR        int       `json:"acr"`
	ActingFor  string    `json:"acting_for,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	IP         string    `json:"ip"`
	UserAgent  string    `json:"user_agent"`
}

// SessionOptions bound how long a browser stays signed in.
type SessionOptions struct {
	IdleTimeout time.Duration // ends a session nobody used for this long; default 30m
	Lifetime    time.Duration // ends every session this long after sign-in; default 12h
}

// Default session limits.
const (
	DefaultSessionIdleTimeout = 30 * time.Minute
	DefaultSessionLifetime    = 12 * time.Hour
)

// touchEvery is how stale last_seen_at may get before a Lookup writes it:
// most page views then only read. The idle timeout is therefore honoured to
// within this much.
const touchEvery = time.Minute

// sessionTokenBytes is the cookie secret's entropy: 256 bits.
const sessionTokenBytes = 32

// Sessions keeps browser sessions in the database, so that every node sees
// the same sessions and a sign-out anywhere ends them everywhere.
type Sessions struct {
	d    *db.DB
	opts SessionOptions
	now  func() time.Time // replaced by tests
}

// NewSessions returns the browser sessions stored in d; zero options take the defaults.
func NewSessions(d *db.DB, o SessionOptions) *Sessions {
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultSessionIdleTimeout
	}
	if o.Lifetime <= 0 {
		o.Lifetime = DefaultSessionLifetime
	}
	return &Sessions{d: d, opts: o, now: time.Now}
}

// clock is the current time as the database stores it.
func (s *Sessions) clock() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}

// live reports whether a session may still be used at now.
func (s *Sessions) live(ss *Session, now time.Time) bool {
	return now.Before(ss.ExpiresAt) && !ss.LastSeenAt.Add(s.opts.IdleTimeout).Before(now)
}

// newSessionToken returns a fresh cookie secret and the hash that is stored.
func newSessionToken() (token, hash string, err error) {
	b := make([]byte, sessionTokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, hashSessionToken(token), nil
}

// hashSessionToken is what identifies a cookie in the database: a leaked
// copy of the table cannot be turned back into cookies.
func hashSessionToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// wellFormedToken rejects cookies that cannot be ours before any query.
func wellFormedToken(token string) bool {
	return len(token) == base64.RawURLEncoding.EncodedLen(sessionTokenBytes)
}

func joinAMR(amr []string) string { return strings.Join(amr, " ") }

func splitAMR(s string) []string { return strings.Fields(s) }
