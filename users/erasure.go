package users

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
)

// DefaultErasureAfter is how long a deleted account keeps its personal
// data before it is erased: time to undo a mistaken deletion and to answer
// questions about it, after which the Personal Information Protection Law's
// right to deletion applies.
const DefaultErasureAfter = 30 * 24 * time.Hour

// ActionUserErase is audited when an account's personal data is erased.
const ActionUserErase = "user.erase"

// erasedUsernamePrefix makes the username of a tombstone: unique, and
// saying nothing about the person.
const erasedUsernamePrefix = "erased-"

// SoftDelete marks an account deleted at now: it can no longer sign in, is
// left out of searches and cannot be changed. Its personal data stays until
// EraseDeleted. Deleting a deleted account is an error wrapping ErrDeleted.
// Callers revoke sessions and tokens in the same transaction.
func (s *SQLStore) SoftDelete(ctx context.Context, id string, now time.Time) (*User, error) {
	now = now.UTC().Truncate(time.Microsecond)
	var out *User
	err := s.d.InTx(ctx, func(ctx context.Context) error {
		u, err := s.Get(ctx, id)
		if err != nil {
			return err
		}
		if u.Status == StatusDeleted {
			return fmt.Errorf("account %s: %w", id, ErrDeleted)
		}
		if err := s.d.ExecOne(ctx, `UPDATE users SET status = ?, deleted_at = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL`,
			string(StatusDisabled), now, now, id); err != nil {
			return fmt.Errorf("delete account %s: %w", id, err)
		}
		// Links and second-factor challenges must not outlive the account.
		for _, q := range []string{
			`DELETE FROM password_reset_links WHERE user_id = ?`,
			`DELETE FROM mfa_challenges WHERE user_id = ?`,
		} {
			if _, err := s.d.Exec(ctx, q, id); err != nil {
				return fmt.Errorf("delete account %s: %w", id, err)
			}
		}
		u.Status, u.DeletedAt, u.UpdatedAt = StatusDeleted, now, now
		out = u
		return s.changed(ctx, ChangeDeleted, u)
	})
	return out, err
}

// EraseDeleted erases the personal data of at most limit accounts deleted
// before before: names, contact details, ID number (ciphertext and blind
// index), password, passkeys, TOTP, memberships, agent roles and the
// assurance history. What
// remains is a tombstone — id, kind, deleted_at, erased_at — so that audit
// records naming the account still resolve; the audit log itself is not
// touched. Each account is erased in its own transaction with its audit
// record and with also (may be nil), which erases what other domains hold
// of the person. It returns the ids erased.
func (s *SQLStore) EraseDeleted(ctx context.Context, log *audit.Log, before, now time.Time, limit int, also func(ctx context.Context, userID string) error) ([]string, error) {
	rows, err := s.d.Query(ctx, `SELECT id FROM users WHERE deleted_at IS NOT NULL AND erased_at IS NULL AND deleted_at <= ?
		ORDER BY deleted_at, id LIMIT ?`, before.UTC(), limit)
	if err != nil {
		return nil, fmt.Errorf("accounts to erase: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, s.d.Err(err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.d.Err(err)
	}
	var done []string
	var failed []error
	for _, id := range ids {
		var gone bool
		err := s.d.InTx(ctx, func(ctx context.Context) error {
			err := s.erase(ctx, log, id, now)
			if gone = errors.Is(err, db.ErrNotFound); err != nil {
				return err
			}
			if also != nil {
				// A not-found from another domain is an error to report,
				// not "already erased": only erase's own update says that.
				if err := also(ctx, id); err != nil {
					return fmt.Errorf("erase what other domains hold of account %s: %w", id, err)
				}
			}
			return nil
		})
		if gone {
			continue // another node erased it first
		}
		if err != nil {
			if ctx.Err() != nil {
				return done, err
			}
			// One account that cannot be erased must not hold up the
			// others: the error is reported and the next pass retries it.
			failed = append(failed, err)
			continue
		}
		done = append(done, id)
	}
	return done, errors.Join(failed...)
}

// erase turns one deleted account into a tombstone.
func (s *SQLStore) erase(ctx context.Context, log *audit.Log, id string, now time.Time) error {
	now = now.UTC().Truncate(time.Microsecond)
	err := s.d.ExecOne(ctx, `UPDATE users SET username = ?, display_name = '', email = NULL, phone_enc = NULL, phone_index = NULL,
		id_number_enc = NULL, id_number_index = NULL, password_hash = NULL, is_admin = ?, erased_at = ?, updated_at = ?
		WHERE id = ? AND deleted_at IS NOT NULL AND erased_at IS NULL`,
		erasedUsernamePrefix+id, false, now, now, id)
	if err != nil {
		return fmt.Errorf("erase account %s: %w", id, err)
	}
	for _, q := range []string{
		`DELETE FROM totp_secrets WHERE user_id = ?`,
		`DELETE FROM totp_recovery_codes WHERE user_id = ?`,
		`DELETE FROM mfa_challenges WHERE user_id = ?`,
		`DELETE FROM webauthn_credentials WHERE user_id = ?`,
		`DELETE FROM webauthn_users WHERE user_id = ?`,
		`DELETE FROM webauthn_challenges WHERE user_id = ?`,
		`DELETE FROM browser_sessions WHERE user_id = ?`,
		`DELETE FROM password_reset_links WHERE user_id = ?`,
		`DELETE FROM org_memberships WHERE user_id = ?`,
		`DELETE FROM enterprise_agents WHERE user_id = ?`,
		// Free-text reasons of level changes may name the person; the
		// audit log keeps that the changes happened.
		`DELETE FROM assurance_events WHERE user_id = ?`,
	} {
		if _, err := s.d.Exec(ctx, q, id); err != nil {
			return fmt.Errorf("erase account %s: %w", id, err)
		}
	}
	if log == nil {
		return nil
	}
	_, err = log.Append(ctx, audit.Event{Actor: "system", Subject: id, Action: ActionUserErase, Result: audit.ResultSuccess})
	return err
}

// Eraser runs EraseDeleted now and then: the housekeeping job of the
// right to deletion. It also clears reset links past their expiry.
type Eraser struct {
	store *SQLStore
	links *ResetLinks // nil: none to clear
	log   *audit.Log
	after time.Duration
	l     *slog.Logger
	now   func() time.Time // replaced by tests

	// OnErase runs in the transaction of each erasure, for the personal
	// data other domains hold (cmd/sso destroys the person's signing
	// keys); nil does nothing.
	OnErase func(ctx context.Context, userID string) error
}

// NewEraser erases accounts deleted longer than after ago (<= 0 takes
// DefaultErasureAfter) and clears the dead links of links (may be nil).
func NewEraser(s *SQLStore, links *ResetLinks, log *audit.Log, after time.Duration, l *slog.Logger) *Eraser {
	if after <= 0 {
		after = DefaultErasureAfter
	}
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &Eraser{store: s, links: links, log: log, after: after, l: l, now: time.Now}
}

// eraseBatch bounds one pass, so that a backlog is worked off in short
// transactions.
const eraseBatch = 100

// Pass erases every account whose retention has run out, and says how
// many; dead reset links go too.
func (e *Eraser) Pass(ctx context.Context) (int, error) {
	now := e.now().UTC()
	if e.links != nil {
		if _, err := e.links.PurgeExpired(ctx, now); err != nil {
			return 0, err
		}
	}
	total := 0
	for {
		ids, err := e.store.EraseDeleted(ctx, e.log, now.Add(-e.after), now, eraseBatch, e.OnErase)
		total += len(ids)
		if err != nil || len(ids) < eraseBatch {
			return total, err
		}
	}
}

// Run makes a pass every interval until ctx ends.
func (e *Eraser) Run(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		n, err := e.Pass(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			e.l.ErrorContext(ctx, "erasure of deleted accounts failed", "err", err)
		case n > 0:
			e.l.InfoContext(ctx, "erased deleted accounts", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
