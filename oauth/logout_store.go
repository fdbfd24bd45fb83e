package oauth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/govsso/sso/db"
)

// The SQL of logout: which clients a browser session reached, ending their
// grants, and the outbox of back-channel notifications.

// sessionClientIDs lists, once each, the clients that received a code or a
// token from browser session sid.
func (s *SQLStore) sessionClientIDs(ctx context.Context, sid string) ([]string, error) {
	if sid == "" {
		return nil, errors.New("clients of session: session id is required")
	}
	rows, err := s.db.Query(ctx, `SELECT DISTINCT client_id FROM oauth_tokens WHERE session_id = ? ORDER BY client_id`, sid)
	if err != nil {
		return nil, fmt.Errorf("clients of session: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("clients of session: %w", s.db.Err(err))
		}
		ids = append(ids, id)
	}
	return ids, s.db.Err(rows.Err())
}

// revokeSessionGrants deactivates the refresh tokens and unused codes issued
// from browser session sid, so that no client can renew what the person
// signed out of. Access tokens are left to expire: they are short-lived.
func (s *SQLStore) revokeSessionGrants(ctx context.Context, sid string) (int64, error) {
	if sid == "" {
		return 0, errors.New("revoke grants of session: session id is required")
	}
	n, err := s.execCount(ctx, `UPDATE oauth_tokens SET active = FALSE
		WHERE session_id = ? AND kind IN (?, ?) AND active = TRUE`, sid, string(KindRefreshToken), string(KindAuthorizeCode))
	if err != nil {
		return 0, fmt.Errorf("revoke grants of session: %w", err)
	}
	return n, nil
}

// logoutDelivery is one back-channel logout notification in the outbox.
type logoutDelivery struct {
	ID            string
	ClientID      string
	URI           string
	Subject       string // the sub the client knows the person by
	SessionID     string
	Attempts      int
	NextAttemptAt time.Time
	LastError     string
	DeliveredAt   time.Time // zero until the client accepted it
	GaveUpAt      time.Time // zero unless every attempt failed
	CreatedAt     time.Time
}

const deliveryColumns = `id, client_id, uri, subject, session_id, attempts, next_attempt_at, last_error, delivered_at, gave_up_at, created_at`

// enqueueLogoutDelivery adds a notification, due at once, to the outbox.
func (s *SQLStore) enqueueLogoutDelivery(ctx context.Context, d *logoutDelivery, at time.Time) error {
	d.ID = uuid.Must(uuid.NewV7()).String()
	d.CreatedAt, d.NextAttemptAt = dbTime(at), dbTime(at)
	_, err := s.db.Exec(ctx, `INSERT INTO oauth_logout_deliveries (`+deliveryColumns+`) VALUES (?, ?, ?, ?, ?, 0, ?, '', NULL, NULL, ?)`,
		d.ID, d.ClientID, d.URI, d.Subject, d.SessionID, d.NextAttemptAt, d.CreatedAt)
	if err != nil {
		return fmt.Errorf("queue logout notification for %s: %w", d.ClientID, err)
	}
	return nil
}

// claimLogoutDeliveries takes up to limit notifications due at now, counts
// the attempt about to be made, and moves them lease into the future so that
// no other node takes them while this one sends. PostgreSQL skips rows
// another node is claiming; SQLite's immediate transaction serializes claims.
func (s *SQLStore) claimLogoutDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*logoutDelivery, error) {
	lock := ""
	if s.db.Dialect() == db.Postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	now = dbTime(now)
	var out []*logoutDelivery
	err := s.db.InTx(ctx, func(ctx context.Context) error {
		var err error
		out, err = s.queryDeliveries(ctx, `SELECT `+deliveryColumns+` FROM oauth_logout_deliveries
			WHERE delivered_at IS NULL AND gave_up_at IS NULL AND next_attempt_at <= ?
			ORDER BY next_attempt_at LIMIT ?`+lock, now, limit)
		if err != nil {
			return err
		}
		for _, d := range out {
			d.Attempts++
			d.NextAttemptAt = now.Add(lease)
			if err := s.db.ExecOne(ctx, `UPDATE oauth_logout_deliveries SET attempts = ?, next_attempt_at = ? WHERE id = ?`,
				d.Attempts, d.NextAttemptAt, d.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim logout notifications: %w", err)
	}
	return out, nil
}

// markLogoutDelivered records that the client accepted the notification.
func (s *SQLStore) markLogoutDelivered(ctx context.Context, id string, at time.Time) error {
	if err := s.db.ExecOne(ctx, `UPDATE oauth_logout_deliveries SET delivered_at = ?, last_error = '' WHERE id = ?`, dbTime(at), id); err != nil {
		return fmt.Errorf("mark logout notification delivered: %w", err)
	}
	return nil
}

// retryLogoutDelivery records a failed attempt and when to try again.
func (s *SQLStore) retryLogoutDelivery(ctx context.Context, id string, next time.Time, reason string) error {
	if err := s.db.ExecOne(ctx, `UPDATE oauth_logout_deliveries SET next_attempt_at = ?, last_error = ? WHERE id = ?`, dbTime(next), reason, id); err != nil {
		return fmt.Errorf("reschedule logout notification: %w", err)
	}
	return nil
}

// abandonLogoutDelivery records the last failed attempt; the notification is
// not sent again.
func (s *SQLStore) abandonLogoutDelivery(ctx context.Context, id string, at time.Time, reason string) error {
	if err := s.db.ExecOne(ctx, `UPDATE oauth_logout_deliveries SET gave_up_at = ?, last_error = ? WHERE id = ?`, dbTime(at), reason, id); err != nil {
		return fmt.Errorf("abandon logout notification: %w", err)
	}
	return nil
}

// logoutDeliveriesOfSession returns the notifications queued for a browser
// session, oldest first.
func (s *SQLStore) logoutDeliveriesOfSession(ctx context.Context, sid string) ([]*logoutDelivery, error) {
	return s.queryDeliveries(ctx, `SELECT `+deliveryColumns+` FROM oauth_logout_deliveries WHERE session_id = ? ORDER BY created_at, id`, sid)
}

// purgeLogoutDeliveries deletes the notifications settled (delivered or
// abandoned) before before; they only matter while someone may ask why a
// client was not told.
func (s *SQLStore) purgeLogoutDeliveries(ctx context.Context, before time.Time) (int64, error) {
	n, err := s.execCount(ctx, `DELETE FROM oauth_logout_deliveries WHERE delivered_at < ? OR gave_up_at < ?`, dbTime(before), dbTime(before))
	if err != nil {
		return 0, fmt.Errorf("purge logout notifications: %w", err)
	}
	return n, nil
}

func (s *SQLStore) queryDeliveries(ctx context.Context, query string, args ...any) ([]*logoutDelivery, error) {
	rows, err := s.db.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*logoutDelivery
	for rows.Next() {
		var d logoutDelivery
		var delivered, gaveUp sql.NullTime
		if err := rows.Scan(&d.ID, &d.ClientID, &d.URI, &d.Subject, &d.SessionID, &d.Attempts, &d.NextAttemptAt,
			&d.LastError, &delivered, &gaveUp, &d.CreatedAt); err != nil {
			return nil, s.db.Err(err)
		}
		d.NextAttemptAt, d.CreatedAt = d.NextAttemptAt.UTC(), d.CreatedAt.UTC()
		if delivered.Valid {
			d.DeliveredAt = delivered.Time.UTC()
		}
		if gaveUp.Valid {
			d.GaveUpAt = gaveUp.Time.UTC()
		}
		out = append(out, &d)
	}
	return out, s.db.Err(rows.Err())
}
