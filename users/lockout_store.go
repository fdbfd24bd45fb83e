package users

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/govsso/sso/db"
)

// Check returns until when attempts on key are refused — by a lock or by
// the growing delay after recent failures — or the zero time when the next
// attempt may be checked.
func (l *Lockout) Check(ctx context.Context, key string) (time.Time, error) {
	r, err := l.State(ctx, key)
	return r.Until, err
}

// State is Check that also says whether the refusal is a lock.
func (l *Lockout) State(ctx context.Context, key string) (Refusal, error) {
	var until, retry sql.NullTime
	var failures int
	err := l.d.Err(l.d.QueryRow(ctx, `SELECT failures, locked_until, retry_after FROM login_failures WHERE key = ?`, key).Scan(&failures, &until, &retry))
	switch {
	case errors.Is(err, db.ErrNotFound):
		return Refusal{}, nil
	case err != nil:
		return Refusal{}, fmt.Errorf("lockout %s: %w", key, err)
	}
	r := failureState{lockedUntil: until.Time.UTC(), retryAfter: retry.Time.UTC()}.refusal(l.clock())
	r.Failures = failures
	return r, nil
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
		var until, retry sql.NullTime
		err := l.d.Err(l.d.QueryRow(ctx, `SELECT failures, window_start, locked_until, retry_after FROM login_failures WHERE key = ?`+l.d.ForUpdate(), key).
			Scan(&st.failures, &st.windowStart, &until, &retry))
		if err != nil {
			return err
		}
		st.windowStart, st.lockedUntil, st.retryAfter = st.windowStart.UTC(), until.Time.UTC(), retry.Time.UTC()
		st = l.afterFailure(st, key, now)
		return l.d.ExecOne(ctx, `UPDATE login_failures SET failures = ?, window_start = ?, locked_until = ?, retry_after = ? WHERE key = ?`,
			st.failures, st.windowStart, nullTime(st.lockedUntil), nullTime(st.retryAfter), key)
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
		WHERE window_start <= ? AND (locked_until IS NULL OR locked_until <= ?)`, now.Add(-max(l.policy.Window, CounterRetention)), now)
	if err != nil {
		return 0, fmt.Errorf("purge lockout counters: %w", err)
	}
	return res.RowsAffected()
}

func nullTime(t time.Time) sql.NullTime {
	return sql.NullTime{Time: t, Valid: !t.IsZero()}
}
