package users

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/govsso/sso/db"
)

// Check returns when key's lock ends, or the zero time when key is not locked.
func (l *Lockout) Check(ctx context.Context, key string) (time.Time, error) {
	var until sql.NullTime
	err := l.d.Err(l.d.QueryRow(ctx, `SELECT locked_until FROM login_failures WHERE key = ?`, key).Scan(&until))
	switch {
	case errors.Is(err, db.ErrNotFound):
		return time.Time{}, nil
	case err != nil:
		return time.Time{}, fmt.Errorf("lockout %s: %w", key, err)
	case until.Valid && l.clock().Before(until.Time):
		return until.Time.UTC(), nil
	}
	return time.Time{}, nil
}

// Fail counts one failed sign-in for key and returns when key's lock ends,
// or the zero time when key is not locked. The row is created if missing and
// then updated under a row lock, so concurrent failures on several nodes are
// all counted.
func (l *Lockout) Fail(ctx context.Context, key string) (time.Time, error) {
	var st failureState
	err := l.d.InTx(ctx, func(ctx context.Context) error {
		now := l.clock()
		if _, err := l.d.Exec(ctx, `INSERT INTO login_failures (key, failures, window_start) VALUES (?, 0, ?)
			ON CONFLICT (key) DO NOTHING`, key, now); err != nil {
			return err
		}
		var until sql.NullTime
		err := l.d.Err(l.d.QueryRow(ctx, `SELECT failures, window_start, locked_until FROM login_failures WHERE key = ?`+l.d.ForUpdate(), key).
			Scan(&st.failures, &st.windowStart, &until))
		if err != nil {
			return err
		}
		st.windowStart = st.windowStart.UTC()
		if until.Valid {
			st.lockedUntil = until.Time.UTC()
		}
		st = l.afterFailure(st, key, now)
		return l.d.ExecOne(ctx, `UPDATE login_failures SET failures = ?, window_start = ?, locked_until = ? WHERE key = ?`,
			st.failures, st.windowStart, nullTime(st.lockedUntil), key)
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("lockout %s: count failure: %w", key, err)
	}
	return st.lockedUntil, nil // afterFailure leaves only a lock still in force
}

// Reset forgets key's failures and lifts its lock: after a successful
// sign-in, or when an administrator unlocks an account.
func (l *Lockout) Reset(ctx context.Context, key string) error {
	if _, err := l.d.Exec(ctx, `DELETE FROM login_failures WHERE key = ?`, key); err != nil {
		return fmt.Errorf("lockout %s: reset: %w", key, err)
	}
	return nil
}

// Purge deletes the counters that no longer matter at now (window over and
// no lock in force) and says how many.
func (l *Lockout) Purge(ctx context.Context, now time.Time) (int64, error) {
	now = now.UTC()
	res, err := l.d.Exec(ctx, `DELETE FROM login_failures
		WHERE window_start <= ? AND (locked_until IS NULL OR locked_until <= ?)`, now.Add(-l.policy.Window), now)
	if err != nil {
		return 0, fmt.Errorf("purge lockout counters: %w", err)
	}
	return res.RowsAffected()
}

func nullTime(t time.Time) sql.NullTime {
	return sql.NullTime{Time: t, Valid: !t.IsZero()}
}
