package users

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/govsso/sso/db"
)

// DefaultResetLinkTTL is how long an administrator's reset link works:
// long enough to hand it over at a service-centre desk or read it in a
// mail, short enough that a forgotten one is soon worthless.
const DefaultResetLinkTTL = 30 * time.Minute

// ErrResetLinkInvalid means a reset link is unknown, used or expired; the
// three are not told apart, so that a guessed token learns nothing.
var ErrResetLinkInvalid = errors.New("the reset link is invalid, used or expired; ask for a new one")

// ResetLinks are one-time password reset links that administrators create
// for a person. Only the SHA-256 of a token is stored; each account has at
// most one live link, and a link is used up by its first use.
type ResetLinks struct {
	d   *db.DB
	ttl time.Duration
	now func() time.Time // replaced by tests
}

// NewResetLinks returns the reset links kept in d; ttl <= 0 takes
// DefaultResetLinkTTL.
func NewResetLinks(d *db.DB, ttl time.Duration) *ResetLinks {
	if ttl <= 0 {
		ttl = DefaultResetLinkTTL
	}
	return &ResetLinks{d: d, ttl: ttl, now: time.Now}
}

// TTL is how long a new link works.
func (l *ResetLinks) TTL() time.Duration { return l.ttl }

func (l *ResetLinks) clock() time.Time { return l.now().UTC().Truncate(time.Microsecond) }

// Create makes a new link for userID, replacing any earlier one, and
// returns its token (to be put in the link and shown or sent once) and
// when it expires. createdBy names the administrator.
func (l *ResetLinks) Create(ctx context.Context, userID, createdBy string) (token string, expiresAt time.Time, err error) {
	token, hash, err := newSessionToken()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("new reset link: %w", err)
	}
	now := l.clock()
	expiresAt = now.Add(l.ttl)
	err = l.d.InTx(ctx, func(ctx context.Context) error {
		if _, err := l.d.Exec(ctx, `DELETE FROM password_reset_links WHERE user_id = ?`, userID); err != nil {
			return err
		}
		_, err := l.d.Exec(ctx, `INSERT INTO password_reset_links (token_hash, user_id, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
			hash, userID, createdBy, now, expiresAt)
		return err
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("new reset link for %s: %w", userID, err)
	}
	return token, expiresAt, nil
}

// Peek returns the account a live link belongs to without using it up,
// so that the page can ask for the new password.
func (l *ResetLinks) Peek(ctx context.Context, token string) (string, error) {
	return l.find(ctx, token, "")
}

func (l *ResetLinks) find(ctx context.Context, token, lock string) (string, error) {
	if !wellFormedToken(token) {
		return "", ErrResetLinkInvalid
	}
	var userID string
	var expires time.Time
	err := l.d.Err(l.d.QueryRow(ctx, `SELECT user_id, expires_at FROM password_reset_links WHERE token_hash = ?`+lock,
		hashSessionToken(token)).Scan(&userID, &expires))
	switch {
	case errors.Is(err, db.ErrNotFound):
		return "", ErrResetLinkInvalid
	case err != nil:
		return "", fmt.Errorf("reset link: %w", err)
	case !l.clock().Before(expires):
		return "", ErrResetLinkInvalid
	}
	return userID, nil
}

// UseThen checks a link and runs then with its account in the same
// transaction; the link is used up only if then succeeds.
func (l *ResetLinks) UseThen(ctx context.Context, token string, then func(ctx context.Context, userID string) error) error {
	return l.d.InTx(ctx, func(ctx context.Context) error {
		userID, err := l.find(ctx, token, l.d.ForUpdate())
		if err != nil {
			return err
		}
		if err := l.d.ExecOne(ctx, `DELETE FROM password_reset_links WHERE token_hash = ?`, hashSessionToken(token)); err != nil {
			if errors.Is(err, db.ErrNotFound) { // used by a concurrent request
				return ErrResetLinkInvalid
			}
			return fmt.Errorf("use reset link: %w", err)
		}
		return then(ctx, userID)
	})
}

// RevokeForUser deletes the account's link (account deleted or disabled).
func (l *ResetLinks) RevokeForUser(ctx context.Context, userID string) error {
	if _, err := l.d.Exec(ctx, `DELETE FROM password_reset_links WHERE user_id = ?`, userID); err != nil {
		return fmt.Errorf("revoke reset link of %s: %w", userID, err)
	}
	return nil
}

// PurgeExpired deletes the links dead at now and says how many.
func (l *ResetLinks) PurgeExpired(ctx context.Context, now time.Time) (int64, error) {
	res, err := l.d.Exec(ctx, `DELETE FROM password_reset_links WHERE expires_at <= ?`, now.UTC())
	if err != nil {
		return 0, fmt.Errorf("purge reset links: %w", err)
	}
	return res.RowsAffected()
}
