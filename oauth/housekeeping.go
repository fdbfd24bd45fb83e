package oauth

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/govsso/sso/db"
)

// SessionPurger deletes browser sessions that are dead at now
// (users.Sessions satisfies it).
type SessionPurger interface {
	PurgeExpired(ctx context.Context, now time.Time) (int64, error)
}

// LockoutPurger deletes sign-in failure counters that no longer matter at
// now (users.Lockout satisfies it).
type LockoutPurger interface {
	Purge(ctx context.Context, now time.Time) (int64, error)
}

// purgeBatch is the most rows one DELETE removes, so that a pass never holds
// a long lock on a busy table; a pass repeats a DELETE until it takes fewer.
const purgeBatch = 1000

// housekeepingLockKey names the PostgreSQL advisory lock of a pass, per
// schema like the other locks, so that test schemas do not contend.
const housekeepingLockKey = `hashtext('sso.housekeeping.' || current_schema())`

// Purged counts the rows one housekeeping pass deleted.
type Purged struct {
	Tokens, Assertions, Consents, Sessions, Lockouts int64
}

// RunHousekeeping deletes expired rows every interval until ctx ends: codes,
// tokens and pushed requests, client assertion jtis, consents, and the
// browser sessions and lockout counters given in Dependencies. On PostgreSQL
// only one node runs a pass at a time; the others skip it.
func (p *Provider) RunHousekeeping(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n, ran, err := p.housekeep(ctx, time.Now(), purgeBatch)
		switch {
		case err != nil && ctx.Err() == nil:
			p.log.ErrorContext(ctx, "housekeeping failed", "err", err)
		case ran && n != (Purged{}):
			p.log.InfoContext(ctx, "housekeeping", "tokens", n.Tokens, "assertions", n.Assertions,
				"consents", n.Consents, "sessions", n.Sessions, "lockouts", n.Lockouts)
		}
	}
}

// housekeep runs one pass at now, deleting at most batch rows per statement.
// ran is false when another node holds the pass lock. A failing step does
// not stop the others.
func (p *Provider) housekeep(ctx context.Context, now time.Time, batch int) (n Purged, ran bool, err error) {
	release, ok, err := p.housekeepingLock(ctx)
	if err != nil || !ok {
		return n, false, err
	}
	defer release()
	now = now.UTC()
	var errs []error
	step := func(name string, count *int64, purge func() (int64, error)) {
		c, err := purge()
		*count += c
		if err != nil {
			errs = append(errs, fmt.Errorf("purge %s: %w", name, err))
		}
	}
	step("tokens", &n.Tokens, func() (int64, error) { return drain(ctx, batch, now, p.store.PurgeExpired) })
	step("client assertions", &n.Assertions, func() (int64, error) { return drain(ctx, batch, now, p.store.purgeExpiredAssertions) })
	step("consents", &n.Consents, func() (int64, error) { return drain(ctx, batch, now, p.store.purgeExpiredConsents) })
	if p.expiredSessions != nil {
		step("sessions", &n.Sessions, func() (int64, error) { return p.expiredSessions.PurgeExpired(ctx, now) })
	}
	if p.lockouts != nil {
		step("lockout counters", &n.Lockouts, func() (int64, error) { return p.lockouts.Purge(ctx, now) })
	}
	return n, true, errors.Join(errs...)
}

// drain repeats a bounded purge until a batch comes back short.
func drain(ctx context.Context, batch int, before time.Time, purge func(context.Context, time.Time, int) (int64, error)) (int64, error) {
	var total int64
	for {
		n, err := purge(ctx, before, batch)
		total += n
		if err != nil || n < int64(batch) {
			return total, err
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}

// housekeepingLock takes the pass lock. On PostgreSQL it is a session
// advisory lock held by a connection of its own while the deletes run on
// others; SQLite serves one node, so there is nothing to share.
func (p *Provider) housekeepingLock(ctx context.Context) (release func(), ok bool, err error) {
	if p.d.Dialect() != db.Postgres {
		return func() {}, true, nil
	}
	conn, err := p.d.SQL().Conn(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("housekeeping lock: %w", err)
	}
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(`+housekeepingLockKey+`)`).Scan(&ok); err != nil || !ok {
		conn.Close()
		if err != nil {
			return nil, false, fmt.Errorf("housekeeping lock: %w", err)
		}
		return nil, false, nil
	}
	return func() {
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(`+housekeepingLockKey+`)`); err != nil {
			// A pooled connection must not keep the lock: drop it instead.
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		conn.Close()
	}, true, nil
}

// purgeExpiredAssertions deletes at most limit client assertion jtis that
// expired before before; a replay of them would fail on exp anyway.
func (s *SQLStore) purgeExpiredAssertions(ctx context.Context, before time.Time, limit int) (int64, error) {
	return s.execCount(ctx, `DELETE FROM oauth_assertion_jtis WHERE jti IN
		(SELECT jti FROM oauth_assertion_jtis WHERE expires_at < ? LIMIT ?)`, dbTime(before), limit)
}

// purgeExpiredConsents deletes at most limit consents that expired before
// before; UseConsent already ignores them.
func (s *SQLStore) purgeExpiredConsents(ctx context.Context, before time.Time, limit int) (int64, error) {
	return s.execCount(ctx, `DELETE FROM oauth_consents WHERE (user_id, client_id) IN
		(SELECT user_id, client_id FROM oauth_consents WHERE expires_at < ? LIMIT ?)`, dbTime(before), limit)
}
