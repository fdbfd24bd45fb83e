package oauth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/go-jose/go-jose/v3/jwt"

	"github.com/govsso/sso/audit"
)

// OpenID Connect Back-Channel Logout 1.0.
const (
	// backchannelLogoutEvent is the event a logout token carries.
	backchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"
	// logoutTokenLifetime is how long a relying party may accept a token.
	logoutTokenLifetime = 2 * time.Minute
	// actionBackchannelLogout is the audit action of every delivery attempt's outcome.
	actionBackchannelLogout = "oauth.backchannel_logout"
)

// How the outbox is worked off.
const (
	deliveryPollInterval = time.Second
	deliveryTimeout      = 5 * time.Second
	// deliveryLease keeps a claimed notification from other nodes; it is
	// well past deliveryTimeout, so it only lapses when a node died sending.
	deliveryLease       = 30 * time.Second
	deliveryBatch       = 20
	deliveryMaxAttempts = 10
	deliveryMaxBackoff  = 10 * time.Minute
	// deliveryRetention is how long settled notifications stay for inquiries.
	deliveryRetention = 7 * 24 * time.Hour
)

// logoutClaims are the claims of a logout token. It has no nonce, so that it
// can never pass for an ID token.
type logoutClaims struct {
	Issuer    string              `json:"iss"`
	Audience  string              `json:"aud"`
	IssuedAt  int64               `json:"iat"`
	Expiry    int64               `json:"exp"`
	ID        string              `json:"jti"`
	Subject   string              `json:"sub,omitempty"`
	SessionID string              `json:"sid,omitempty"`
	Events    map[string]struct{} `json:"events"`
}

// logoutToken signs a logout token (RS256, typ logout+jwt) telling clientID
// that the person it knows as subject left browser session sid.
func (p *Provider) logoutToken(ctx context.Context, clientID, subject, sid string, now time.Time) (string, error) {
	key, err := p.signingKey(withIDTokenAlg(ctx, AlgRS256))
	if err != nil {
		return "", fmt.Errorf("logout token: %w", err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("logout+jwt"))
	if err != nil {
		return "", fmt.Errorf("logout token: %w", err)
	}
	claims := logoutClaims{
		Issuer: p.cfg.Issuer, Audience: clientID, IssuedAt: now.Unix(), Expiry: now.Add(logoutTokenLifetime).Unix(),
		ID: rand.Text(), Subject: subject, SessionID: sid,
		Events: map[string]struct{}{backchannelLogoutEvent: {}},
	}
	raw, err := jwt.Signed(signer).Claims(claims).CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("logout token: %w", err)
	}
	return raw, nil
}

// RunLogoutDeliveries sends the back-channel logout notifications that
// logouts queued, on this node, until ctx ends. Every node may run it: a
// notification is claimed by one node at a time.
func (p *Provider) RunLogoutDeliveries(ctx context.Context) {
	s := p.newLogoutSender()
	tick := time.NewTicker(deliveryPollInterval)
	defer tick.Stop()
	lastPurge := time.Time{}
	for {
		if err := s.drain(ctx); err != nil && ctx.Err() == nil {
			p.log.ErrorContext(ctx, "back-channel logout", "err", err)
		}
		if now := s.now(); now.Sub(lastPurge) > time.Hour {
			lastPurge = now
			// Once an hour across the cluster, whichever node comes first.
			_, err := p.d.RunDue(ctx, "logout.purge", time.Hour, func(ctx context.Context) error {
				_, err := p.store.purgeLogoutDeliveries(ctx, now.Add(-deliveryRetention))
				return err
			})
			if err != nil && ctx.Err() == nil {
				p.log.ErrorContext(ctx, "purge logout notifications", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// logoutSender delivers queued logout tokens. Its clock is replaceable so
// that tests can step through the backoff.
type logoutSender struct {
	p      *Provider
	client *http.Client
	now    func() time.Time
}

func (p *Provider) newLogoutSender() *logoutSender {
	return &logoutSender{p: p, now: time.Now, client: &http.Client{
		Timeout: deliveryTimeout,
		// A redirect is a failure: the token goes only to the registered URI.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// drain delivers batch after batch while full ones come back: a backlog
// is worked off without waiting for the next tick.
func (s *logoutSender) drain(ctx context.Context) error {
	for ctx.Err() == nil {
		n, err := s.deliverDue(ctx)
		if err != nil || n < deliveryBatch {
			return err
		}
	}
	return nil
}

// deliverDue claims the notifications due now and sends them in parallel,
// so one slow client does not hold up the others. It returns how many it
// claimed.
func (s *logoutSender) deliverDue(ctx context.Context) (int, error) {
	due, err := s.p.store.claimLogoutDeliveries(ctx, s.now(), deliveryLease, deliveryBatch)
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(due))
	for i, d := range due {
		wg.Go(func() { errs[i] = s.deliver(ctx, d) })
	}
	wg.Wait()
	return len(due), errors.Join(errs...)
}

// deliver makes one attempt and records its outcome, in the outbox and in
// the audit log together.
func (s *logoutSender) deliver(ctx context.Context, d *logoutDelivery) error {
	sendErr := s.send(ctx, d)
	now := s.now()
	e := audit.Event{Actor: "system", ClientID: d.ClientID, Action: actionBackchannelLogout, Result: audit.ResultSuccess,
		Details: map[string]string{"sid": d.SessionID, "attempt": fmt.Sprint(d.Attempts)}}
	return s.p.d.InTx(ctx, func(ctx context.Context) error {
		var err error
		switch {
		case sendErr == nil:
			err = s.p.store.markLogoutDelivered(ctx, d.ID, now)
		case d.Attempts >= deliveryMaxAttempts:
			e.Result, e.Reason = audit.ResultFailure, "gave up after "+fmt.Sprint(d.Attempts)+" attempts: "+sendErr.Error()
			err = s.p.store.abandonLogoutDelivery(ctx, d.ID, now, sendErr.Error())
		default:
			e.Result, e.Reason = audit.ResultFailure, sendErr.Error()
			err = s.p.store.retryLogoutDelivery(ctx, d.ID, now.Add(deliveryBackoff(d.Attempts)), sendErr.Error())
		}
		if err != nil {
			return err
		}
		_, err = s.p.audit.Append(ctx, e)
		return err
	})
}

// deliveryBackoff is the wait after the attempt-th failure: 1 s, 2 s, 4 s …
// up to deliveryMaxBackoff.
func deliveryBackoff(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	if attempt > 20 {
		return deliveryMaxBackoff
	}
	return min(time.Second<<(attempt-1), deliveryMaxBackoff)
}

// send mints a fresh logout token and POSTs it; only a 2xx answer counts.
func (s *logoutSender) send(ctx context.Context, d *logoutDelivery) error {
	token, err := s.p.logoutToken(ctx, d.ClientID, d.Subject, d.SessionID, s.now())
	if err != nil {
		return err
	}
	body := url.Values{"logout_token": {token}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URI, strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("logout request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.client.Do(req)
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		err = ue.Err // the URI is the registered one; the reason is what matters
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
