package oauth

import (
	"context"
	"errors"
	"fmt"
	"time"
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

// housekeepingLockKey is the PostgreSQL advisory lock db.TryLock takes for
// housekeepingJob, per schema like the other locks; tests hold it to play
// another node.
const housekeepingLockKey = `hashtext('sso.housekeeping.' || current_schema())`

// Purged counts the rows one housekeeping pass deleted.
type Purged struct {
	Tokens, Assertions, Consents, Sessions, Lockouts int64
}

// housekeepingJob names the pass for db.TryLock and db.RunDue.
const housekeepingJob = "housekeeping"

// RunHousekeeping deletes expired rows every interval until ctx ends: codes,
// tokens and pushed requests, client assertion jtis, consents, and the
// browser sessions and lockout counters given in Dependencies. With many
// nodes on PostgreSQL a pass runs once per interval across the cluster
// (db.RunDue), never two at a time.
func (p *Provider) RunHousekeeping(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var n Purged
		ran, err := p.d.RunDue(ctx, housekeepingJob, every, func(ctx context.Context) error {
			var err error
			n, err = p.purge(ctx, time.Now(), purgeBatch)
			return err
		})
		switch {
		case err != nil && ctx.Err() == nil:
			p.log.ErrorContext(ctx, "housekeeping failed", "err", err)
		case ran && n != (Purged{}):
			p.log.InfoContext(ctx, "housekeeping", "tokens", n.Tokens, "assertions", n.Assertions,
				"consents", n.Consents, "sessions", n.Sessions, "lockouts", n.Lockouts)
		}
	}
}

// housekeep runs one pass at now unless another node is running one, in
// which case ran is false.
func (p *Provider) housekeep(ctx context.Context, now time.Time, batch int) (n Purged, ran bool, err error) {
	ran, err = p.d.TryLock(ctx, housekeepingJob, func(ctx context.Context) error {
		var err error
		n, err = p.purge(ctx, now, batch)
		return err
	})
	return n, ran, err
}

// purge runs one pass at now, deleting at most batch rows per statement.
// A failing step does not stop the others.
func (p *Provider) purge(ctx context.Context, now time.Time, batch int) (n Purged, err error) {
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
	return n, errors.Join(errs...)
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
