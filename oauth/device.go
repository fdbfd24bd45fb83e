package oauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/server"
	"github.com/govsso/sso/users"
)

// The device authorization grant (RFC 8628) lets a kiosk in a service hall
// sign a person in without a keyboard: the kiosk shows a short user code,
// the person enters it on /device with their phone, where they are signed
// in, and approves; the kiosk, polling the token endpoint, then gets tokens.
// fosite v0.49.0 does not ship this grant, so this file runs it and hands
// the tokens to fosite's own strategies and storage, which makes them
// ordinary tokens: introspectable, revocable and refreshable.

// Settings of the device grant.
const (
	deviceCodeLifetime = 10 * time.Minute
	devicePollInterval = 5 * time.Second
	// deviceSlowDownStep is added to the interval at every slow_down (RFC 8628 §3.5).
	deviceSlowDownStep = 5 * time.Second
	// deviceCodeBytes is the device code's entropy: 256 bits.
	deviceCodeBytes = 32
	// deviceRetention keeps expired rows a while, so that a late poll hears
	// expired_token rather than invalid_grant.
	deviceRetention = time.Hour
)

// User codes are typed by people, often older people at a kiosk, so they
// are short and drawn from consonants that are hard to confuse: no vowels
// (no words, no 0/O or 1/I), no digits. Eight of twenty letters give about
// 34 bits; the /device page locks an address out after a few wrong codes,
// and a code lives ten minutes.
const (
	userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"
	userCodeLength   = 8
)

// ErrUnknownUserCode means a user code names no pending device sign-in: it
// was mistyped, has expired or was already decided.
var ErrUnknownUserCode = errors.New("unknown, expired or already used user code")

// GenerateUserCode returns a random user code in normalized form.
func GenerateUserCode() (string, error) {
	// 256 is not a multiple of 20; bytes from 240 up are drawn again so that
	// every letter is equally likely.
	const limit = 256 - 256%len(userCodeAlphabet)
	code := make([]byte, 0, userCodeLength)
	buf := make([]byte, 2*userCodeLength)
	for len(code) < userCodeLength {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("user code: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(code) < userCodeLength {
				code = append(code, userCodeAlphabet[int(b)%len(userCodeAlphabet)])
			}
		}
	}
	return string(code), nil
}

// NormalizeUserCode turns what a person typed into the stored form: upper
// case, without dashes and spaces. ok is false when the result cannot be a
// user code.
func NormalizeUserCode(typed string) (code string, ok bool) {
	if len(typed) > 4*userCodeLength {
		return "", false
	}
	var b strings.Builder
	for _, r := range strings.ToUpper(typed) {
		switch {
		case r == '-' || r == ' ':
		case strings.ContainsRune(userCodeAlphabet, r):
			b.WriteRune(r)
		default:
			return "", false
		}
	}
	if b.Len() != userCodeLength {
		return "", false
	}
	return b.String(), true
}

// FormatUserCode shows a normalized user code as people read it: XXXX-XXXX.
func FormatUserCode(code string) string {
	if len(code) != userCodeLength {
		return code
	}
	return code[:userCodeLength/2] + "-" + code[userCodeLength/2:]
}

// RFC 8628 §3.5 errors of the token endpoint. All are 400: RFC 6749 §5.2.
var (
	errAuthorizationPending = &fosite.RFC6749Error{ErrorField: "authorization_pending", CodeField: http.StatusBadRequest,
		DescriptionField: "The person has not yet entered the user code and decided."}
	errSlowDown = &fosite.RFC6749Error{ErrorField: "slow_down", CodeField: http.StatusBadRequest,
		DescriptionField: "The device polls too often; wait 5 seconds longer between polls from now on."}
	errDeviceAccessDenied = &fosite.RFC6749Error{ErrorField: "access_denied", CodeField: http.StatusBadRequest,
		DescriptionField: "The person denied the request."}
	errExpiredToken = &fosite.RFC6749Error{ErrorField: "expired_token", CodeField: http.StatusBadRequest,
		DescriptionField: "The device code has expired; start a new device authorization."}
	errUnknownDeviceCode = &fosite.RFC6749Error{ErrorField: "invalid_grant", CodeField: http.StatusBadRequest,
		DescriptionField: "The device code is unknown, was issued to another client, or was already used."}
)

// deviceAuthorizationResponse is the answer of RFC 8628 §3.2.
type deviceAuthorizationResponse struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int    `json:"expires_in"`
	Interval                int    `json:"interval"`
}

// deviceAuthorize answers device authorization requests (RFC 8628 §3.1).
func (p *Provider) deviceAuthorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	client, err := p.authenticateDeviceClient(ctx, r)
	if err != nil {
		p.oauth.WriteAccessError(ctx, w, nil, err)
		return
	}
	scopes, err := p.deviceScopes(ctx, client, r.PostForm.Get("scope"))
	if err != nil {
		p.oauth.WriteAccessError(ctx, w, nil, err)
		return
	}
	deviceCode, a, err := p.newDeviceAuthorization(ctx, client.ID, scopes)
	if err != nil {
		p.log.ErrorContext(ctx, "device authorization", "client_id", client.ID, "err", err)
		p.oauth.WriteAccessError(ctx, w, nil, fosite.ErrServerError)
		return
	}
	p.record(ctx, r, audit.Event{Actor: client.ID, ClientID: client.ID, Action: "oauth.device_authorize", Result: audit.ResultSuccess,
		Details: map[string]string{"scope": strings.Join(scopes, " ")}})
	verify := p.cfg.Issuer + "/device"
	server.WriteJSON(w, http.StatusOK, deviceAuthorizationResponse{
		DeviceCode:              deviceCode,
		UserCode:                FormatUserCode(a.UserCode),
		VerificationURI:         verify,
		VerificationURIComplete: verify + "?" + url.Values{"user_code": {FormatUserCode(a.UserCode)}}.Encode(),
		ExpiresIn:               int(deviceCodeLifetime / time.Second),
		Interval:                int(a.Interval / time.Second),
	})
}

// clientAuthenticator is the part of *fosite.Fosite that authenticates a
// client the way the token endpoint does.
type clientAuthenticator interface {
	AuthenticateClient(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error)
}

// authenticateDeviceClient parses the form and authenticates the client as
// the token endpoint would (public clients by client_id alone), then checks
// it may use the device grant.
func (p *Provider) authenticateDeviceClient(ctx context.Context, r *http.Request) (*Client, error) {
	if err := r.ParseForm(); err != nil {
		return nil, fosite.ErrInvalidRequest.WithHint("The request body could not be parsed.")
	}
	auth, ok := p.oauth.(clientAuthenticator)
	if !ok {
		return nil, fosite.ErrServerError.WithDebug("fosite provider cannot authenticate clients")
	}
	fc, err := auth.AuthenticateClient(ctx, r, r.PostForm)
	if err != nil {
		return nil, err
	}
	client := fc.(fositeClient).Client
	if !slices.Contains(client.GrantTypes, GrantDeviceCode) {
		return nil, fosite.ErrUnauthorizedClient.WithHint("The client is not allowed to use the device authorization grant.")
	}
	return client, nil
}

// deviceScopes checks the requested scopes against the client's.
func (p *Provider) deviceScopes(ctx context.Context, client *Client, raw string) ([]string, error) {
	var scopes []string
	for _, s := range strings.Fields(raw) {
		if !p.fcfg.GetScopeStrategy(ctx)(client.Scopes, s) {
			return nil, fosite.ErrInvalidScope.WithHintf("The client is not allowed to request scope '%s'.", s)
		}
		if !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	return scopes, nil
}

// newDeviceAuthorization stores a pending authorization and returns the
// device code, which only the device ever sees.
func (p *Provider) newDeviceAuthorization(ctx context.Context, clientID string, scopes []string) (string, *DeviceAuthorization, error) {
	now := time.Now().UTC()
	if _, err := p.store.PurgeDeviceAuthorizations(ctx, now.Add(-deviceRetention)); err != nil {
		return "", nil, err
	}
	raw := make([]byte, deviceCodeBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", nil, err
	}
	deviceCode := base64.RawURLEncoding.EncodeToString(raw)
	a := &DeviceAuthorization{DeviceCodeHash: key(deviceCode), ClientID: clientID, Scopes: scopes, Status: DevicePending,
		Interval: devicePollInterval, CreatedAt: now, ExpiresAt: now.Add(deviceCodeLifetime)}
	// A clash of user codes is rare (34 bits) but possible; draw again.
	for range 5 {
		code, err := GenerateUserCode()
		if err != nil {
			return "", nil, err
		}
		a.UserCode = code
		err = p.store.CreateDeviceAuthorization(ctx, a)
		if err == nil {
			return deviceCode, a, nil
		}
		if !errors.Is(err, db.ErrConflict) {
			return "", nil, err
		}
	}
	return "", nil, errors.New("device authorization: no free user code after 5 tries")
}

// PendingDevice returns the pending, unexpired device authorization a typed
// user code names and the client it is for, or an error wrapping
// ErrUnknownUserCode.
func (p *Provider) PendingDevice(ctx context.Context, typed string) (*DeviceAuthorization, *Client, error) {
	code, ok := NormalizeUserCode(typed)
	if !ok {
		return nil, nil, ErrUnknownUserCode
	}
	a, err := p.store.DeviceAuthorizationByUserCode(ctx, code)
	if errors.Is(err, db.ErrNotFound) || (err == nil && (a.Status != DevicePending || !time.Now().Before(a.ExpiresAt))) {
		return nil, nil, ErrUnknownUserCode
	}
	if err != nil {
		return nil, nil, err
	}
	c, err := p.store.GetClient(ctx, a.ClientID)
	if errors.Is(err, db.ErrNotFound) || (err == nil && c.Disabled) {
		return nil, nil, ErrUnknownUserCode
	}
	if err != nil {
		return nil, nil, err
	}
	return a, c, nil
}

// DecideDevice records a signed-in person's answer to a pending user code.
// Approving hands the device their sign-in (user, sid, acr, amr, auth_time)
// at its next poll. A code that is no longer pending is ErrUnknownUserCode.
func (p *Provider) DecideDevice(ctx context.Context, typed string, approve bool, s *users.Session, ip, userAgent string) error {
	a, _, err := p.PendingDevice(ctx, typed)
	if err != nil {
		return err
	}
	who := &DeviceAuthorization{UserID: s.UserID, BrowserSessionID: s.ID, ACR: s.ACR, AMR: s.AMR, AuthTime: s.AuthTime, ActingFor: s.ActingFor}
	err = p.store.DecideDeviceAuthorization(ctx, a.UserCode, approve, who, time.Now().UTC())
	if errors.Is(err, db.ErrNotFound) {
		return ErrUnknownUserCode // decided or expired since it was read
	}
	if err != nil {
		return err
	}
	action := "oauth.device_deny"
	if approve {
		action = "oauth.device_approve"
	}
	e := audit.Event{Actor: s.UserID, Subject: s.UserID, ClientID: a.ClientID, IP: ip, UserAgent: userAgent,
		Action: action, Result: audit.ResultSuccess, Details: map[string]string{"scope": strings.Join(a.Scopes, " "), "sid": s.ID}}
	if _, err := p.audit.Append(ctx, e); err != nil {
		p.log.ErrorContext(ctx, "audit write failed", "action", action, "err", err)
	}
	return nil
}

// pollOutcome is what one poll of a device code comes to.
type pollOutcome int

const (
	pollPending pollOutcome = iota
	pollSlowDown
	pollApproved
	pollDenied
	pollExpired
	pollConsumed
)

// outcomeOf decides a poll at now. slow_down is a kind of
// authorization_pending (RFC 8628 §3.5), so only a pending code is
// rate-limited; an approved one gives its tokens at once.
func outcomeOf(a *DeviceAuthorization, now time.Time) pollOutcome {
	switch {
	case a.Status == DeviceConsumed:
		return pollConsumed
	case a.Status == DeviceDenied:
		return pollDenied
	case !now.Before(a.ExpiresAt):
		return pollExpired
	case a.Status == DeviceApproved:
		return pollApproved
	case !a.LastPolledAt.IsZero() && now.Sub(a.LastPolledAt) < a.Interval:
		return pollSlowDown
	}
	return pollPending
}

// devicePoll is the answer to one poll: tokens, or the refusal to send.
type devicePoll struct {
	request  fosite.AccessRequester
	response fosite.AccessResponder
	refusal  error
}

// deviceToken answers a device's poll at the token endpoint (RFC 8628
// §3.4). The poll runs in one transaction holding the row, so that two
// polls of one code take turns and only one can consume it.
func (p *Provider) deviceToken(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	client, err := p.authenticateDeviceClient(ctx, r)
	if err != nil {
		p.oauth.WriteAccessError(ctx, w, nil, err)
		return
	}
	deviceCode := r.PostForm.Get("device_code")
	if deviceCode == "" {
		p.oauth.WriteAccessError(ctx, w, nil, fosite.ErrInvalidRequest.WithHint("The device_code parameter is missing."))
		return
	}
	var poll devicePoll
	err = p.d.InTx(ctx, func(ctx context.Context) error {
		var err error
		poll, err = p.pollDevice(ctx, client, key(deviceCode))
		return err
	})
	if err != nil {
		p.log.ErrorContext(ctx, "device token", "client_id", client.ID, "err", err)
		p.oauth.WriteAccessError(ctx, w, nil, fosite.ErrServerError)
		return
	}
	if poll.refusal != nil {
		p.oauth.WriteAccessError(ctx, w, nil, poll.refusal)
		return
	}
	session := poll.request.GetSession().(*Session)
	p.record(ctx, r, audit.Event{Actor: client.ID, Subject: session.Username, ClientID: client.ID, Action: "oauth.token", Result: audit.ResultSuccess,
		Details: map[string]string{"grant_type": GrantDeviceCode, "scope": strings.Join(poll.request.GetGrantedScopes(), " ")}})
	p.oauth.WriteAccessResponse(ctx, w, poll.request, poll.response)
}

// pollDevice locks the device authorization, records the poll and, once
// approved, consumes it and issues the tokens. It runs in ctx's transaction.
func (p *Provider) pollDevice(ctx context.Context, client *Client, hash string) (devicePoll, error) {
	a, err := p.store.LockDeviceAuthorization(ctx, hash)
	if errors.Is(err, db.ErrNotFound) {
		return devicePoll{refusal: errUnknownDeviceCode}, nil
	}
	if err != nil {
		return devicePoll{}, err
	}
	if a.ClientID != client.ID {
		return devicePoll{refusal: errUnknownDeviceCode}, nil
	}
	now := time.Now().UTC()
	switch outcomeOf(a, now) {
	case pollPending:
		return devicePoll{refusal: errAuthorizationPending}, p.store.RecordDevicePoll(ctx, hash, now, a.Interval)
	case pollSlowDown:
		return devicePoll{refusal: errSlowDown}, p.store.RecordDevicePoll(ctx, hash, now, a.Interval+deviceSlowDownStep)
	case pollDenied:
		return devicePoll{refusal: errDeviceAccessDenied}, nil
	case pollExpired:
		return devicePoll{refusal: errExpiredToken}, nil
	case pollConsumed:
		return devicePoll{refusal: errUnknownDeviceCode}, nil
	}
	err = p.store.ConsumeDeviceAuthorization(ctx, hash, now)
	if errors.Is(err, db.ErrNotFound) {
		return devicePoll{refusal: errUnknownDeviceCode}, nil // another poll won
	}
	if err != nil {
		return devicePoll{}, err
	}
	return p.issueDeviceTokens(ctx, client, a)
}

// issueDeviceTokens mints the tokens of an approved device authorization
// with fosite's strategies and storage, as the authorization code flow
// would: an access token, a refresh token when offline_access was granted
// and the client may refresh, and an ID token when openid was granted.
func (p *Provider) issueDeviceTokens(ctx context.Context, client *Client, a *DeviceAuthorization) (devicePoll, error) {
	u, err := p.users.Get(ctx, a.UserID)
	if errors.Is(err, db.ErrNotFound) || (err == nil && u.Status != users.StatusActive) {
		return devicePoll{refusal: fosite.ErrInvalidGrant.WithHint("The account that approved the request is no longer active.")}, nil
	}
	if err != nil {
		return devicePoll{}, err
	}
	ar := p.deviceAccessRequest(client, a)
	session := ar.GetSession().(*Session)
	ctx = withIDTokenAlg(ctx, client.IDTokenSignedResponseAlg)
	now := time.Now().UTC()
	atLife := p.fcfg.GetAccessTokenLifespan(ctx)
	session.SetExpiresAt(fosite.AccessToken, now.Add(atLife).Round(time.Second))
	refresh := ar.GetGrantedScopes().HasOneOf(p.fcfg.GetRefreshTokenScopes(ctx)...) && slices.Contains(client.GrantTypes, GrantRefreshToken)
	if rtLife := p.fcfg.GetRefreshTokenLifespan(ctx); refresh && rtLife > -1 {
		session.SetExpiresAt(fosite.RefreshToken, now.Add(rtLife).Round(time.Second))
	}

	// The provider's strategy, so that JWT clients get JWT access tokens here too.
	tokens := p.tokens
	resp := fosite.NewAccessResponse()
	access, accessSig, err := tokens.GenerateAccessToken(ctx, ar)
	if err != nil {
		return devicePoll{}, err
	}
	if err := p.storage.CreateAccessTokenSession(ctx, accessSig, ar.Sanitize(nil)); err != nil {
		return devicePoll{}, err
	}
	resp.SetAccessToken(access)
	resp.SetTokenType("bearer")
	resp.SetExpiresIn(atLife)
	resp.SetScopes(ar.GetGrantedScopes())
	if refresh {
		token, sig, err := tokens.GenerateRefreshToken(ctx, ar)
		if err != nil {
			return devicePoll{}, err
		}
		if err := p.storage.CreateRefreshTokenSession(ctx, sig, accessSig, ar.Sanitize(nil)); err != nil {
			return devicePoll{}, err
		}
		resp.SetExtra("refresh_token", token)
	}
	if ar.GetGrantedScopes().Has("openid") {
		idToken, err := p.deviceIDToken(ctx, ar, session, access)
		if err != nil {
			return devicePoll{}, err
		}
		resp.SetExtra("id_token", idToken)
	}
	return devicePoll{request: ar, response: resp}, nil
}

// deviceAccessRequest is the fosite request the tokens are stored under. Its
// form holds only the grant type: the device code must not be stored.
func (p *Provider) deviceAccessRequest(client *Client, a *DeviceAuthorization) *fosite.AccessRequest {
	bs := &users.Session{ID: a.BrowserSessionID, ACR: a.ACR, AMR: a.AMR, AuthTime: a.AuthTime, ActingFor: a.ActingFor}
	session := newIDSession(p.subjectFor(client, a.UserID), a.UserID, bs, client.ID, p.cfg.Issuer)
	ar := fosite.NewAccessRequest(session)
	ar.Client = fositeClient{client}
	ar.GrantTypes = fosite.Arguments{GrantDeviceCode}
	ar.Form = url.Values{"grant_type": {GrantDeviceCode}}
	ar.SetRequestedScopes(a.Scopes)
	for _, s := range a.Scopes {
		ar.GrantScope(s)
	}
	return ar
}

// deviceIDToken signs the ID token with the client's algorithm, bound to
// the access token by at_hash.
func (p *Provider) deviceIDToken(ctx context.Context, ar fosite.AccessRequester, session *Session, accessToken string) (string, error) {
	if kid, err := p.signingKey(ctx); err == nil {
		session.DefaultSession.Headers.Add("kid", kid.KeyID)
	}
	hash, err := (&openid.IDTokenHandleHelper{}).ComputeHash(ctx, session, accessToken)
	if err != nil {
		return "", err
	}
	session.Claims.AccessTokenHash = hash
	return p.idTokens.GenerateIDToken(ctx, p.fcfg.GetIDTokenLifespan(ctx), ar)
}
