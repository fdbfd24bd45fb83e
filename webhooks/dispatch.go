package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Delivery tuning: a receiver has Timeout to answer; retries wait 1 s,
// 2 s, 4 s … up to MaxBackoff; after MaxAttempts the delivery is given up
// (the log keeps every attempt).
const (
	deliveryTimeout = 10 * time.Second
	deliveryLease   = 2 * deliveryTimeout
	deliveryBatch   = 50
	maxBackoff      = time.Hour
	maxAttempts     = 15 // about 9 hours of retries
	retention       = 7 * 24 * time.Hour
)

// Dispatcher sends the outbox. Every node may run one: a delivery is
// claimed by one node at a time.
type Dispatcher struct {
	Hub *Hub
	// Poll is how often the outbox is looked at (1 s if 0).
	Poll   time.Duration
	Logger *slog.Logger
	// Client sends the requests; nil uses one with a 10 s timeout that
	// follows no redirects.
	Client *http.Client
	// Now is the clock, replaceable in tests.
	Now func() time.Time
	// InScope says whether the client may hear of an event about s; nil
	// sends every event to every subscriber. It is asked when the event
	// is sent, after the change committed, so that an account created
	// together with its membership is judged by that membership.
	InScope func(ctx context.Context, clientID string, s Subject) (bool, error)
}

// Subject is whom an event is about: the account, and for a membership
// event the org unit.
type Subject struct {
	UserID, OrgUnitID string
}

// subjectOf reads the subject of an event from its payload.
func subjectOf(payload string) (Subject, error) {
	var e struct {
		Data struct {
			User       *struct{ ID string }
			Membership *MembershipData
		}
	}
	if err := json.Unmarshal([]byte(payload), &e); err != nil {
		return Subject{}, fmt.Errorf("event payload: %w", err)
	}
	switch {
	case e.Data.Membership != nil:
		return Subject{UserID: e.Data.Membership.UserID, OrgUnitID: e.Data.Membership.OrgUnitID}, nil
	case e.Data.User != nil:
		return Subject{UserID: e.Data.User.ID}, nil
	}
	return Subject{}, errors.New("event payload names no user or membership")
}

func (d *Dispatcher) now() time.Time {
	if d.Now != nil {
		return d.Now().UTC().Truncate(time.Microsecond)
	}
	return time.Now().UTC().Truncate(time.Microsecond)
}

func (d *Dispatcher) logger() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.Default()
}

func (d *Dispatcher) client() *http.Client {
	if d.Client != nil {
		return d.Client
	}
	return &http.Client{Timeout: deliveryTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Run delivers until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) {
	poll := d.Poll
	if poll <= 0 {
		poll = time.Second
	}
	log := d.logger()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	lastPurge := time.Time{}
	for {
		for ctx.Err() == nil {
			n, err := d.DeliverDue(ctx)
			if err != nil && ctx.Err() == nil {
				log.ErrorContext(ctx, "webhooks", "err", err)
			}
			if err != nil || n < deliveryBatch {
				break
			}
		}
		if now := d.now(); now.Sub(lastPurge) > time.Hour {
			lastPurge = now
			if err := d.Hub.purge(ctx, now.Add(-retention)); err != nil && ctx.Err() == nil {
				log.ErrorContext(ctx, "purge webhook deliveries", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// DeliverDue claims the deliveries due now and sends them in parallel; it
// returns how many it claimed.
func (d *Dispatcher) DeliverDue(ctx context.Context) (int, error) {
	due, err := d.Hub.claim(ctx, d.now(), deliveryLease, deliveryBatch)
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(due))
	c := d.client()
	for i, dl := range due {
		wg.Go(func() { errs[i] = d.deliver(ctx, c, dl) })
	}
	wg.Wait()
	return len(due), errors.Join(errs...)
}

func (d *Dispatcher) deliver(ctx context.Context, c *http.Client, dl *delivery) error {
	if d.InScope != nil {
		ok, err := d.inScope(ctx, dl)
		if err != nil {
			return err // the lease runs out and the delivery is tried again
		}
		if !ok {
			// Not sent, and not in the client's log either: that an event
			// about someone else happened is not the client's business.
			return d.Hub.skip(context.WithoutCancel(ctx), dl, d.now())
		}
	}
	status, sendErr := d.send(ctx, c, dl)
	now := d.now()
	gaveUp := sendErr != nil && dl.Attempts >= maxAttempts
	return d.Hub.settle(context.WithoutCancel(ctx), dl, now, status, sendErr, now.Add(backoff(dl.Attempts)), gaveUp)
}

// inScope asks InScope about the delivery's event and subscriber.
func (d *Dispatcher) inScope(ctx context.Context, dl *delivery) (bool, error) {
	clientID, err := d.Hub.clientOf(ctx, dl.SubscriptionID)
	if err != nil {
		return false, fmt.Errorf("subscription %s: %w", dl.SubscriptionID, err)
	}
	subject, err := subjectOf(dl.Payload)
	if err != nil {
		// Retrying cannot mend a payload: it is not sent, the way any
		// event whose subject cannot be placed in the client's scope.
		d.logger().WarnContext(ctx, "webhook event without a subject is not sent", "delivery", dl.ID, "event_type", dl.EventType, "err", err)
		return false, nil
	}
	return d.InScope(ctx, clientID, subject)
}

// backoff is the wait after the attempt-th failure: 1 s, 2 s, 4 s … up to maxBackoff.
func backoff(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	if attempt > 20 {
		return maxBackoff
	}
	return min(time.Second<<(attempt-1), maxBackoff)
}

// send POSTs the event, signed; only a 2xx answer counts.
func (d *Dispatcher) send(ctx context.Context, c *http.Client, dl *delivery) (int, error) {
	target, secret, err := d.Hub.target(ctx, dl.SubscriptionID)
	if err != nil {
		return 0, fmt.Errorf("subscription: %w", err)
	}
	ts := d.now().Unix()
	body := []byte(dl.Payload)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "sso-webhooks/1")
	req.Header.Set(HeaderEventID, dl.EventID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(string(secret), ts, body))
	resp, err := c.Do(req)
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		err = ue.Err // the URL is the subscribed one; the reason is what matters
	}
	if err != nil {
		return 0, fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("receiver answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}
