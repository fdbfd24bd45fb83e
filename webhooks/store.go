package webhooks

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/govsso/sso/db"
)

// The SQL of webhooks: subscriptions, the outbox and the delivery log.

func (h *Hub) insertSubscription(ctx context.Context, s *Subscription, sealed []byte) error {
	_, err := h.d.Exec(ctx, `INSERT INTO webhook_subscriptions (id, client_id, url, secret_enc, event_types, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		s.ID, s.ClientID, s.URL, sealed, strings.Join(s.EventTypes, " "), s.CreatedAt)
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", s.ClientID, err)
	}
	return nil
}

// Subscriptions lists a client's subscriptions ("" for every client's).
func (h *Hub) Subscriptions(ctx context.Context, clientID string) ([]*Subscription, error) {
	return h.subscriptions(ctx, clientID)
}

// Get returns one subscription of a client.
func (h *Hub) Get(ctx context.Context, clientID, id string) (*Subscription, error) {
	list, err := h.subscriptions(ctx, clientID)
	if err != nil {
		return nil, err
	}
	for _, s := range list {
		if s.ID == id {
			return s, nil
		}
	}
	return nil, fmt.Errorf("subscription %s %w", id, db.ErrNotFound)
}

func (h *Hub) subscriptions(ctx context.Context, clientID string) ([]*Subscription, error) {
	q := `SELECT id, client_id, url, secret_enc, event_types, created_at FROM webhook_subscriptions`
	var args []any
	if clientID != "" {
		q += ` WHERE client_id = ?`
		args = append(args, clientID)
	}
	rows, err := h.d.Query(ctx, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Subscription
	for rows.Next() {
		s := &Subscription{}
		var sealed []byte
		var types string
		if err := rows.Scan(&s.ID, &s.ClientID, &s.URL, &sealed, &types, &s.CreatedAt); err != nil {
			return nil, h.d.Err(err)
		}
		s.CreatedAt = s.CreatedAt.UTC()
		s.EventTypes = strings.Fields(types)
		if s.secret, err = h.kek.Open(sealed, secretAAD); err != nil {
			return nil, fmt.Errorf("subscription %s secret: %w", s.ID, err)
		}
		out = append(out, s)
	}
	return out, h.d.Err(rows.Err())
}

// wanted lists every subscription's id and event types, without opening
// the secrets: what Emit needs, on every change.
func (h *Hub) wanted(ctx context.Context) ([]*Subscription, error) {
	rows, err := h.d.Query(ctx, `SELECT id, event_types FROM webhook_subscriptions ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Subscription
	for rows.Next() {
		s := &Subscription{}
		var types string
		if err := rows.Scan(&s.ID, &types); err != nil {
			return nil, h.d.Err(err)
		}
		s.EventTypes = strings.Fields(types)
		out = append(out, s)
	}
	return out, h.d.Err(rows.Err())
}

// Unsubscribe deletes a client's subscription, its outbox and its log.
func (h *Hub) Unsubscribe(ctx context.Context, clientID, id string) error {
	return h.d.ExecOne(ctx, `DELETE FROM webhook_subscriptions WHERE client_id = ? AND id = ?`, clientID, id)
}

// UnsubscribeClient deletes every subscription of a client being deleted,
// so that no more personal data goes to a system that is gone.
func (h *Hub) UnsubscribeClient(ctx context.Context, clientID string) error {
	_, err := h.d.Exec(ctx, `DELETE FROM webhook_subscriptions WHERE client_id = ?`, clientID)
	return err
}

// Attempts returns a subscription's delivery log, newest first, after the
// cursor before ("" for the newest).
func (h *Hub) Attempts(ctx context.Context, subscriptionID, before string, limit int) ([]Attempt, string, error) {
	q := `SELECT id, event_id, event_type, attempt, at, status_code, error FROM webhook_attempts WHERE subscription_id = ?`
	args := []any{subscriptionID}
	if before != "" {
		q += ` AND id < ?`
		args = append(args, before)
	}
	rows, err := h.d.Query(ctx, q+` ORDER BY id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	out := []Attempt{}
	last := ""
	for rows.Next() {
		var a Attempt
		if err := rows.Scan(&last, &a.EventID, &a.EventType, &a.Attempt, &a.At, &a.StatusCode, &a.Error); err != nil {
			return nil, "", h.d.Err(err)
		}
		a.At = a.At.UTC()
		out = append(out, a)
	}
	if len(out) < limit {
		last = ""
	}
	return out, last, h.d.Err(rows.Err())
}

// delivery is one event waiting for one subscription.
type delivery struct {
	ID, SubscriptionID, EventID, EventType, Payload string
	Attempts                                        int
	NextAttemptAt, CreatedAt                        time.Time
}

func (h *Hub) insertDeliveries(ctx context.Context, rows []delivery) error {
	const chunk = 500
	for start := 0; start < len(rows); start += chunk {
		part := rows[start:min(start+chunk, len(rows))]
		args := make([]any, 0, len(part)*7)
		for _, d := range part {
			args = append(args, d.ID, d.SubscriptionID, d.EventID, d.EventType, d.Payload, d.NextAttemptAt, d.CreatedAt)
		}
		one := "(?, ?, ?, ?, ?, ?, ?)"
		_, err := h.d.Exec(ctx, `INSERT INTO webhook_deliveries (id, subscription_id, event_id, event_type, payload, next_attempt_at, created_at) VALUES `+
			strings.TrimSuffix(strings.Repeat(one+", ", len(part)), ", "), args...)
		if err != nil {
			return fmt.Errorf("queue %d webhook deliveries: %w", len(part), err)
		}
	}
	return nil
}

// claim takes up to limit deliveries due at now, counts the attempt about
// to be made, and moves them lease into the future so that no other node
// takes them while this one sends. PostgreSQL skips rows another node is
// claiming; SQLite's immediate transaction serializes claims.
func (h *Hub) claim(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*delivery, error) {
	lock := ""
	if h.d.Dialect() == db.Postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	var out []*delivery
	err := h.d.InTx(ctx, func(ctx context.Context) error {
		out = nil
		rows, err := h.d.Query(ctx, `SELECT id, subscription_id, event_id, event_type, payload, attempts, next_attempt_at, created_at
			FROM webhook_deliveries WHERE delivered_at IS NULL AND gave_up_at IS NULL AND next_attempt_at <= ?
			ORDER BY next_attempt_at LIMIT ?`+lock, now, limit)
		if err != nil {
			return err
		}
		for rows.Next() {
			d := &delivery{}
			if err := rows.Scan(&d.ID, &d.SubscriptionID, &d.EventID, &d.EventType, &d.Payload, &d.Attempts, &d.NextAttemptAt, &d.CreatedAt); err != nil {
				rows.Close()
				return h.d.Err(err)
			}
			out = append(out, d)
		}
		rows.Close()
		if err := h.d.Err(rows.Err()); err != nil {
			return err
		}
		for _, d := range out {
			d.Attempts++
			if err := h.d.ExecOne(ctx, `UPDATE webhook_deliveries SET attempts = ?, next_attempt_at = ? WHERE id = ?`,
				d.Attempts, now.Add(lease), d.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim webhook deliveries: %w", err)
	}
	return out, nil
}

// settle records an attempt in the log and the delivery's new state:
// delivered, retried at next, or given up (next zero and gaveUp set).
func (h *Hub) settle(ctx context.Context, d *delivery, at time.Time, status int, sendErr error, next time.Time, gaveUp bool) error {
	msg := ""
	if sendErr != nil {
		msg = sendErr.Error()
	}
	return h.d.InTx(ctx, func(ctx context.Context) error {
		if _, err := h.d.Exec(ctx, `INSERT INTO webhook_attempts (id, subscription_id, event_id, event_type, attempt, at, status_code, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			uuid.Must(uuid.NewV7()).String(), d.SubscriptionID, d.EventID, d.EventType, d.Attempts, at, status, msg); err != nil {
			return err
		}
		switch {
		case sendErr == nil:
			return h.d.ExecOne(ctx, `UPDATE webhook_deliveries SET delivered_at = ?, last_error = '' WHERE id = ?`, at, d.ID)
		case gaveUp:
			return h.d.ExecOne(ctx, `UPDATE webhook_deliveries SET gave_up_at = ?, last_error = ? WHERE id = ?`, at, msg, d.ID)
		}
		return h.d.ExecOne(ctx, `UPDATE webhook_deliveries SET next_attempt_at = ?, last_error = ? WHERE id = ?`, next, msg, d.ID)
	})
}

// skip settles a delivery as done without sending it or logging an
// attempt: its event is outside what the subscriber may hear of.
func (h *Hub) skip(ctx context.Context, d *delivery, at time.Time) error {
	return h.d.ExecOne(ctx, `UPDATE webhook_deliveries SET delivered_at = ?, last_error = 'not sent: outside the client''s org units' WHERE id = ?`, at, d.ID)
}

// clientOf returns the client a subscription belongs to.
func (h *Hub) clientOf(ctx context.Context, subscriptionID string) (string, error) {
	var clientID string
	err := h.d.QueryRow(ctx, `SELECT client_id FROM webhook_subscriptions WHERE id = ?`, subscriptionID).Scan(&clientID)
	return clientID, h.d.Err(err)
}

// target reads a subscription's secret and URL for sending.
func (h *Hub) target(ctx context.Context, subscriptionID string) (url string, secret []byte, err error) {
	var sealed []byte
	err = h.d.QueryRow(ctx, `SELECT url, secret_enc FROM webhook_subscriptions WHERE id = ?`, subscriptionID).Scan(&url, &sealed)
	if err != nil {
		return "", nil, h.d.Err(err)
	}
	secret, err = h.kek.Open(sealed, secretAAD)
	return url, secret, err
}

// purge deletes the deliveries settled before before (the log stays).
func (h *Hub) purge(ctx context.Context, before time.Time) error {
	_, err := h.d.Exec(ctx, `DELETE FROM webhook_deliveries WHERE delivered_at < ? OR gave_up_at < ?`, before, before)
	return err
}
