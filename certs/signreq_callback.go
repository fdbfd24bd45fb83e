package certs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/govsso/sso/audit"
)

// How the callback outbox is worked off; the same shape as back-channel
// logout's, whose notifications go out the same way.
const (
	callbackPollInterval = time.Second
	callbackTimeout      = 5 * time.Second
	callbackLease        = 30 * time.Second
	callbackBatch        = 20
	callbackMaxAttempts  = 10
	callbackMaxBackoff   = 10 * time.Minute
	// callbackTokenLifetime is how long a client may accept a notification.
	callbackTokenLifetime = 5 * time.Minute
	// expireEvery is how often the worker settles requests whose time ran out.
	expireEvery = 15 * time.Second
	// callbackRetention is how long settled callbacks stay for inquiries.
	callbackRetention = 7 * 24 * time.Hour
)

// SignCallbackBody is what a callback POSTs: one compact JWS (typ
// sign-request+jwt, signed with the server's keys published at
// /.well-known/jwks.json) whose claims are iss, aud (the client id), iat,
// exp, jti, sign_request_id, status, sub and decided_at.
type SignCallbackBody struct {
	SignedNotification string `json:"signed_notification"`
}

// RunWorker settles expired requests and sends the callbacks on this node
// until ctx ends. Every node may run it: a callback is claimed by one node
// at a time.
func (s *SignRequests) RunWorker(ctx context.Context) {
	tick := time.NewTicker(callbackPollInterval)
	defer tick.Stop()
	var lastExpire, lastPurge time.Time
	for {
		if now := time.Now(); now.Sub(lastExpire) >= expireEvery {
			lastExpire = now
			if _, err := s.ExpireDue(ctx, 100); err != nil && ctx.Err() == nil {
				s.ca.cfg.Logger.ErrorContext(ctx, "certs: expire sign requests", "err", err)
			}
		}
		if now := time.Now(); now.Sub(lastPurge) >= time.Hour {
			lastPurge = now
			if _, err := s.PurgeCallbacks(ctx); err != nil && ctx.Err() == nil {
				s.ca.cfg.Logger.ErrorContext(ctx, "certs: purge sign request callbacks", "err", err)
			}
		}
		if _, err := s.DeliverCallbacks(ctx); err != nil && ctx.Err() == nil {
			s.ca.cfg.Logger.ErrorContext(ctx, "certs: sign request callbacks", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// DeliverCallbacks makes one attempt at every callback due now, in
// parallel, and returns how many it attempted.
func (s *SignRequests) DeliverCallbacks(ctx context.Context) (int, error) {
	due, err := s.store.claimCallbacks(ctx, s.ca.now(), callbackLease, callbackBatch)
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(due))
	for i, c := range due {
		wg.Go(func() { errs[i] = s.deliver(ctx, c) })
	}
	wg.Wait()
	return len(due), errors.Join(errs...)
}

// deliver makes one attempt and records its outcome in the outbox and the
// audit log together.
func (s *SignRequests) deliver(ctx context.Context, c *signCallback) error {
	sendErr := s.send(ctx, c)
	now := s.ca.now()
	e := audit.Event{Actor: "system", ClientID: c.ClientID, Action: "certs.sign_request.callback", Result: audit.ResultSuccess,
		Details: map[string]string{"sign_request_id": c.RequestID, "attempt": fmt.Sprint(c.Attempts)}}
	return s.store.db.InTx(ctx, func(ctx context.Context) error {
		var err error
		switch {
		case sendErr == nil:
			err = s.store.finishCallback(ctx, c.ID, &now, nil, now, "")
		case c.Attempts >= callbackMaxAttempts:
			e.Result, e.Reason = audit.ResultFailure, fmt.Sprintf("gave up after %d attempts: %v", c.Attempts, sendErr)
			err = s.store.finishCallback(ctx, c.ID, nil, &now, now, sendErr.Error())
		default:
			e.Result, e.Reason = audit.ResultFailure, sendErr.Error()
			err = s.store.finishCallback(ctx, c.ID, nil, nil, now.Add(callbackBackoff(c.Attempts)), sendErr.Error())
		}
		if err != nil || s.ca.cfg.Audit == nil {
			return err
		}
		_, err = s.ca.cfg.Audit.Append(ctx, e)
		return err
	})
}

// callbackBackoff is the wait after the attempt-th failure: 1 s, 2 s, 4 s …
// up to callbackMaxBackoff.
func callbackBackoff(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	if attempt > 20 {
		return callbackMaxBackoff
	}
	return min(time.Second<<(attempt-1), callbackMaxBackoff)
}

// send mints the signed notification and POSTs it; only a 2xx answer counts.
func (s *SignRequests) send(ctx context.Context, c *signCallback) error {
	if s.cfg.SignJWT == nil {
		return errors.New("no signing keys configured for callbacks")
	}
	r, err := s.store.byID(ctx, c.RequestID)
	if err != nil {
		return fmt.Errorf("load sign request: %w", err)
	}
	now := s.ca.now()
	claims := map[string]any{"iat": now.Unix(), "exp": now.Add(callbackTokenLifetime).Unix(), "jti": rand.Text(),
		"sign_request_id": r.ID, "status": string(r.Status), "sub": r.Subject}
	if r.DecidedAt != nil {
		claims["decided_at"] = r.DecidedAt.Unix()
	}
	token, err := s.cfg.SignJWT(ctx, c.ClientID, claims)
	if err != nil {
		return fmt.Errorf("sign notification: %w", err)
	}
	body, _ := json.Marshal(SignCallbackBody{SignedNotification: token})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URI, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("callback request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.cfg.HTTPClient.Do(req)
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		err = ue.Err // the URL is the client's own; the reason is what matters
	}
	if err != nil {
		return fmt.Errorf("post to client: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("client answered %s", resp.Status)
	}
	return nil
}

// PurgeCallbacks deletes the callbacks settled more than a week ago and
// returns how many.
func (s *SignRequests) PurgeCallbacks(ctx context.Context) (int64, error) {
	return s.store.purgeCallbacks(ctx, s.ca.now().Add(-callbackRetention))
}
