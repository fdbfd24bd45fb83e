// Package webhooks delivers change events (user created, updated, disabled,
// deleted; org membership added, role changed, removed) to the department
// systems that subscribed to them, as signed HTTP POSTs. Events are written
// to an outbox table in the transaction of the change they describe, and a
// worker on any node sends them, with retries and a delivery log.
package webhooks

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/kek"
)

// The event types.
const (
	UserCreated       = "user.created"
	UserUpdated       = "user.updated"
	UserDisabled      = "user.disabled"
	UserDeleted       = "user.deleted"
	MembershipAdded   = "membership.added"
	MembershipRemoved = "membership.removed"
	// MembershipUpdated is a change of the role a person holds in a unit:
	// one event, so that a receiver never sees the person briefly out of
	// the unit, whatever order retried deliveries arrive in.
	MembershipUpdated = "membership.updated"
)

// Types lists every event type a subscription may ask for.
var Types = []string{UserCreated, UserUpdated, UserDisabled, UserDeleted, MembershipAdded, MembershipUpdated, MembershipRemoved}

// The headers of a delivery.
const (
	HeaderEventID   = "X-SSO-Event-ID"
	HeaderTimestamp = "X-SSO-Timestamp"
	HeaderSignature = "X-SSO-Signature"
)

// Event is one change. Data is what the receiver needs to update its copy;
// it never holds passwords, phone or ID numbers.
type Event struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	OccurredAt time.Time `json:"occurred_at"`
	Data       any       `json:"data"`
}

// Subscription is a client's request to be told of events of some types.
type Subscription struct {
	ID         string    `json:"id"`
	ClientID   string    `json:"client_id"`
	URL        string    `json:"url"`
	EventTypes []string  `json:"event_types"`
	CreatedAt  time.Time `json:"created_at"`
	// Secret signs the deliveries; it is filled only in the answer to
	// Subscribe, the one time it is shown.
	Secret string `json:"secret,omitempty"`
	secret []byte
}

// Attempt is one entry of a subscription's delivery log.
type Attempt struct {
	EventID    string    `json:"event_id"`
	EventType  string    `json:"event_type"`
	Attempt    int       `json:"attempt"`
	At         time.Time `json:"at"`
	StatusCode int       `json:"status_code"` // 0 when no answer came
	Error      string    `json:"error,omitempty"`
}

// FieldError names one invalid field of a subscription.
type FieldError struct{ Field, Reason string }

// ValidationError lists the invalid fields of a subscription.
type ValidationError struct{ Fields []FieldError }

func (v *ValidationError) Error() string {
	parts := make([]string, len(v.Fields))
	for i, f := range v.Fields {
		parts[i] = f.Field + ": " + f.Reason
	}
	return "invalid subscription: " + strings.Join(parts, "; ")
}

// Hub keeps subscriptions and writes events to the outbox.
type Hub struct {
	d   *db.DB
	kek *kek.KEK
}

// NewHub returns the hub over d; secrets are sealed with k.
func NewHub(d *db.DB, k *kek.KEK) *Hub { return &Hub{d: d, kek: k} }

var secretAAD = []byte("webhook_subscriptions.secret")

// CheckURL accepts an https URL, or http to a loopback host for development.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return errors.New("must be an absolute https URL without user info or fragment")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
	}
	return errors.New("must be https (http only to localhost, for development)")
}

// Subscribe registers url for the client and event types and returns the
// subscription with its new secret, shown this once.
func (h *Hub) Subscribe(ctx context.Context, clientID, rawURL string, types []string) (*Subscription, error) {
	v := &ValidationError{}
	if err := CheckURL(rawURL); err != nil {
		v.Fields = append(v.Fields, FieldError{"url", err.Error()})
	}
	if len(types) == 0 {
		v.Fields = append(v.Fields, FieldError{"event_types", "must name at least one of " + strings.Join(Types, ", ")})
	}
	for _, t := range types {
		if !slices.Contains(Types, t) {
			v.Fields = append(v.Fields, FieldError{"event_types", fmt.Sprintf("%q is not one of %s", t, strings.Join(Types, ", "))})
		}
	}
	if len(v.Fields) > 0 {
		return nil, v
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	secret := "whsec_" + base64.RawURLEncoding.EncodeToString(raw)
	sealed, err := h.kek.Seal([]byte(secret), secretAAD)
	if err != nil {
		return nil, err
	}
	s := &Subscription{ID: uuid.Must(uuid.NewV7()).String(), ClientID: clientID, URL: rawURL, EventTypes: slices.Compact(slices.Sorted(slices.Values(types))),
		CreatedAt: time.Now().UTC().Truncate(time.Microsecond), Secret: secret}
	if err := h.insertSubscription(ctx, s, sealed); err != nil {
		return nil, err
	}
	return s, nil
}

// Emit writes events to the outbox of every subscription that wants them,
// in the context's transaction: callers emit in the transaction of the
// change, so an event exists exactly when its change does.
func (h *Hub) Emit(ctx context.Context, events ...Event) error {
	if len(events) == 0 {
		return nil
	}
	subs, err := h.wanted(ctx)
	if err != nil {
		return err
	}
	if len(subs) == 0 {
		return nil
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	var rows []delivery
	for _, e := range events {
		if e.ID == "" {
			e.ID = uuid.Must(uuid.NewV7()).String()
		}
		if e.OccurredAt.IsZero() {
			e.OccurredAt = now
		}
		var payload []byte
		for _, s := range subs {
			if !slices.Contains(s.EventTypes, e.Type) {
				continue
			}
			if payload == nil {
				if payload, err = json.Marshal(e); err != nil {
					return fmt.Errorf("event %s: %w", e.Type, err)
				}
			}
			rows = append(rows, delivery{ID: uuid.Must(uuid.NewV7()).String(), SubscriptionID: s.ID, EventID: e.ID, EventType: e.Type,
				Payload: string(payload), NextAttemptAt: now, CreatedAt: now})
		}
	}
	return h.insertDeliveries(ctx, rows)
}

// Sign is the X-SSO-Signature value of a body sent at timestamp:
// "sha256=" and the hex HMAC-SHA-256 of timestamp + "." + body.
func Sign(secret string, timestamp int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(timestamp, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a delivery's signature in constant time, and that its
// timestamp is within tolerance of now: what a receiver should do.
func Verify(secret, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) bool {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return false
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return false
	}
	return hmac.Equal([]byte(Sign(secret, ts, body)), []byte(signature))
}
