package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/pkce"
	"github.com/ory/fosite/storage"

	"github.com/govsso/sso/db"
)

// fositeStorage is every storage interface fosite's handlers need, on top of
// the client and token stores. Rows are keyed by a SHA-256 of the token's
// signature (never the token itself), so a leaked table holds no usable token.
type fositeStorage struct {
	d            *db.DB
	store        *SQLStore
	refreshGrace time.Duration // concurrent refreshes within it are not treated as reuse
	parLifespan  time.Duration
	clients      *clientCache
}

// clientTTL bounds how long a node acts on a client it read before another
// node (or the CLI) changed or disabled it, should the change's
// invalidation (db.Invalidate) not reach it. Every token request reads its
// client at least once, so the cache saves a query and a JSON decode each.
const clientTTL = 5 * time.Second

// clientCache keeps recently read clients for clientTTL.
type clientCache struct {
	mu      sync.Mutex
	entries map[string]cachedClient
}

type cachedClient struct {
	c       *Client
	fetched time.Time
}

func newClientCache() *clientCache { return &clientCache{entries: map[string]cachedClient{}} }

func (c *clientCache) get(id string) *Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	if !ok || time.Since(e.fetched) > clientTTL {
		return nil
	}
	return e.c
}

// follow drops a client from the cache whenever any node changes it.
func (c *clientCache) follow(inv db.Invalidator) { inv.OnInvalidate(ClientInvalidation, c.drop) }

// drop forgets the client id, or every client for db.AllEntries; the next
// read goes to the database.
func (c *clientCache) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id == db.AllEntries {
		clear(c.entries)
		return
	}
	delete(c.entries, id)
}

func (c *clientCache) put(cl *Client) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) > 10000 { // bounded: clients are few, ids from requests are not
		clear(c.entries)
	}
	c.entries[cl.ID] = cachedClient{c: cl, fetched: time.Now()}
}

var (
	_ fosite.ClientManager               = (*fositeStorage)(nil)
	_ oauth2.CoreStorage                 = (*fositeStorage)(nil)
	_ oauth2.TokenRevocationStorage      = (*fositeStorage)(nil)
	_ openid.OpenIDConnectRequestStorage = (*fositeStorage)(nil)
	_ pkce.PKCERequestStorage            = (*fositeStorage)(nil)
	_ fosite.PARStorage                  = (*fositeStorage)(nil)
	_ storage.Transactional              = (*fositeStorage)(nil)
)

// key turns a token signature (or a raw code) into the row key.
func key(signature string) string {
	sum := sha256.Sum256([]byte(signature))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// fositeErr maps store errors to the ones fosite's handlers act on.
func fositeErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, db.ErrNotFound):
		return fosite.ErrNotFound
	case errors.Is(err, db.ErrConflict), errors.Is(err, db.ErrSerialization):
		return fosite.ErrSerializationFailure.WithWrap(err)
	}
	return err
}

// GetClient returns an enabled client.
func (s *fositeStorage) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c := s.clients.get(id)
	if c == nil {
		var err error
		if c, err = s.store.GetClient(ctx, id); err != nil {
			return nil, fositeErr(err)
		}
		s.clients.put(c)
	}
	if c.Disabled {
		return nil, fosite.ErrNotFound
	}
	return fositeClient{c}, nil
}

// ClientAssertionJWTValid refuses a private_key_jwt assertion whose jti was seen.
func (s *fositeStorage) ClientAssertionJWTValid(ctx context.Context, jti string) error {
	var n int
	err := s.d.QueryRow(ctx, `SELECT count(*) FROM oauth_assertion_jtis WHERE jti = ? AND expires_at > ?`, key(jti), time.Now().UTC()).Scan(&n)
	if err != nil {
		return s.d.Err(err)
	}
	if n > 0 {
		return fosite.ErrJTIKnown
	}
	return nil
}

// SetClientAssertionJWT remembers a jti until the assertion expires.
func (s *fositeStorage) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	now := time.Now().UTC()
	if _, err := s.d.Exec(ctx, `DELETE FROM oauth_assertion_jtis WHERE expires_at < ?`, now); err != nil {
		return err
	}
	_, err := s.d.Exec(ctx, `INSERT INTO oauth_assertion_jtis (jti, expires_at) VALUES (?, ?)`, key(jti), exp.UTC())
	if errors.Is(err, db.ErrConflict) {
		return fosite.ErrJTIKnown
	}
	return err
}

// storedRequest is the serialized form of a fosite request.
type storedRequest struct {
	ID                  string          `json:"id"`
	RequestedAt         time.Time       `json:"requested_at"`
	ClientID            string          `json:"client_id"`
	RequestedScope      []string        `json:"requested_scope,omitempty"`
	GrantedScope        []string        `json:"granted_scope,omitempty"`
	RequestedAudience   []string        `json:"requested_audience,omitempty"`
	GrantedAudience     []string        `json:"granted_audience,omitempty"`
	Form                url.Values      `json:"form,omitempty"`
	Session             json.RawMessage `json:"session,omitempty"`
	ResponseTypes       []string        `json:"response_types,omitempty"`
	RedirectURI         string          `json:"redirect_uri,omitempty"`
	State               string          `json:"state,omitempty"`
	ResponseMode        string          `json:"response_mode,omitempty"`
	DefaultResponseMode string          `json:"default_response_mode,omitempty"`
}

func (s *fositeStorage) create(ctx context.Context, kind TokenKind, signature string, r fosite.Requester, tokenType fosite.TokenType, accessSignature string) error {
	sr := storedRequest{
		ID: r.GetID(), RequestedAt: r.GetRequestedAt(), ClientID: r.GetClient().GetID(),
		RequestedScope: r.GetRequestedScopes(), GrantedScope: r.GetGrantedScopes(),
		RequestedAudience: r.GetRequestedAudience(), GrantedAudience: r.GetGrantedAudience(),
		Form: r.GetRequestForm(),
	}
	t := &Token{Kind: kind, Signature: key(signature), RequestID: r.GetID(), ClientID: sr.ClientID, Active: true,
		RequestedAt: r.GetRequestedAt(), AccessSignature: accessSignature}
	if sess := r.GetSession(); sess != nil {
		b, err := json.Marshal(sess)
		if err != nil {
			return err
		}
		sr.Session = b
		t.Subject = sess.GetSubject()
		t.ExpiresAt = sess.GetExpiresAt(tokenType)
		if os, ok := sess.(*Session); ok {
			t.SessionID = os.BrowserSessionID
			if tokenType == fosite.RefreshToken && os.RefreshScopes != nil {
				sr.GrantedScope = os.RefreshScopes
			}
		}
	}
	if ar, ok := r.(fosite.AuthorizeRequester); ok {
		sr.ResponseTypes = ar.GetResponseTypes()
		if u := ar.GetRedirectURI(); u != nil {
			sr.RedirectURI = u.String()
		}
		sr.State = ar.GetState()
		sr.ResponseMode = string(ar.GetResponseMode())
		sr.DefaultResponseMode = string(ar.GetDefaultResponseMode())
	}
	if t.ExpiresAt.IsZero() {
		t.ExpiresAt = time.Now().Add(s.parLifespan)
	}
	if t.RequestedAt.IsZero() {
		t.RequestedAt = time.Now()
	}
	data, err := json.Marshal(sr)
	if err != nil {
		return err
	}
	t.Data = data
	if b := batchOf(ctx); b != nil {
		b.create(t)
		return nil
	}
	return fositeErr(s.store.CreateToken(ctx, t))
}

// readToken reads a row, from the request's batch when it knows it.
func (s *fositeStorage) readToken(ctx context.Context, kind TokenKind, signature string) (*Token, error) {
	if b := batchOf(ctx); b != nil {
		if t, ok, err := b.lookup(TokenRef{kind, key(signature)}); ok {
			return t, err
		}
	}
	return s.store.GetToken(ctx, kind, key(signature))
}

// deleteToken removes a row, at the end of the request when it has a batch.
func (s *fositeStorage) deleteToken(ctx context.Context, kind TokenKind, signature string) error {
	if b := batchOf(ctx); b != nil {
		b.remove(TokenRef{kind, key(signature)})
		return nil
	}
	return fositeErr(s.store.DeleteToken(ctx, kind, key(signature)))
}

// get loads a request; the returned token says whether it is still active.
func (s *fositeStorage) get(ctx context.Context, kind TokenKind, signature string, session fosite.Session) (*fosite.AuthorizeRequest, *Token, error) {
	t, err := s.readToken(ctx, kind, signature)
	if err != nil {
		return nil, nil, fositeErr(err)
	}
	var sr storedRequest
	if err := json.Unmarshal(t.Data, &sr); err != nil {
		return nil, nil, fmt.Errorf("stored %s: %w", kind, err)
	}
	client, err := s.GetClient(ctx, sr.ClientID)
	if err != nil {
		return nil, nil, err
	}
	if session != nil && len(sr.Session) > 0 {
		if err := json.Unmarshal(sr.Session, session); err != nil {
			return nil, nil, fmt.Errorf("stored %s session: %w", kind, err)
		}
	}
	req := &fosite.AuthorizeRequest{
		Request: fosite.Request{
			ID: sr.ID, RequestedAt: sr.RequestedAt, Client: client,
			RequestedScope: sr.RequestedScope, GrantedScope: sr.GrantedScope,
			RequestedAudience: sr.RequestedAudience, GrantedAudience: sr.GrantedAudience,
			Form: sr.Form, Session: session,
		},
		ResponseTypes:        sr.ResponseTypes,
		State:                sr.State,
		ResponseMode:         fosite.ResponseModeType(sr.ResponseMode),
		DefaultResponseMode:  fosite.ResponseModeType(sr.DefaultResponseMode),
		HandledResponseTypes: fosite.Arguments{},
	}
	if req.Form == nil {
		req.Form = url.Values{}
	}
	if sr.RedirectURI != "" {
		if u, err := url.Parse(sr.RedirectURI); err == nil {
			req.RedirectURI = u
		}
	}
	return req, t, nil
}

// CreateAuthorizeCodeSession stores an authorization code.
func (s *fositeStorage) CreateAuthorizeCodeSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.create(ctx, KindAuthorizeCode, signature, r, fosite.AuthorizeCode, "")
}

// GetAuthorizeCodeSession returns the code's request; a used code comes back
// with ErrInvalidatedAuthorizeCode, which makes fosite revoke what it issued.
func (s *fositeStorage) GetAuthorizeCodeSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, t, err := s.get(ctx, KindAuthorizeCode, signature, session)
	if err != nil {
		return nil, err
	}
	if !t.Active {
		return req, fosite.ErrInvalidatedAuthorizeCode
	}
	return req, nil
}

// errCodeRedeemed is a code that another request redeemed between this
// request's read of it and its redemption.
var errCodeRedeemed = errors.New("authorization code already redeemed")

// InvalidateAuthorizeCodeSession marks a code used; it is kept to detect
// replay. Only one of concurrent redemptions gets past the update.
func (s *fositeStorage) InvalidateAuthorizeCodeSession(ctx context.Context, signature string) error {
	if b := batchOf(ctx); b != nil {
		b.forget(TokenRef{KindAuthorizeCode, key(signature)})
	}
	err := s.store.DeactivateToken(ctx, KindAuthorizeCode, key(signature))
	if errors.Is(err, db.ErrNotFound) {
		return errCodeRedeemed
	}
	return fositeErr(err)
}

// CreateAccessTokenSession stores an access token.
func (s *fositeStorage) CreateAccessTokenSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.create(ctx, KindAccessToken, signature, r, fosite.AccessToken, "")
}

// GetAccessTokenSession returns an access token's request.
func (s *fositeStorage) GetAccessTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, t, err := s.get(ctx, KindAccessToken, signature, session)
	if err != nil {
		return nil, err
	}
	if !t.Active {
		return nil, fosite.ErrNotFound
	}
	return req, nil
}

// DeleteAccessTokenSession forgets an access token.
func (s *fositeStorage) DeleteAccessTokenSession(ctx context.Context, signature string) error {
	return fositeErr(s.store.DeleteToken(ctx, KindAccessToken, key(signature)))
}

// CreateRefreshTokenSession stores a refresh token and the access token issued with it.
func (s *fositeStorage) CreateRefreshTokenSession(ctx context.Context, signature, accessSignature string, r fosite.Requester) error {
	return s.create(ctx, KindRefreshToken, signature, r, fosite.RefreshToken, key(accessSignature))
}

// GetRefreshTokenSession returns a refresh token's request. A rotated token
// comes back with ErrInactiveToken — fosite then revokes the whole grant
// (RFC 9700 reuse detection) — unless it was rotated within the grace period.
func (s *fositeStorage) GetRefreshTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, t, err := s.get(ctx, KindRefreshToken, signature, session)
	if err != nil {
		return nil, err
	}
	if !t.Active && (t.FirstUsedAt.IsZero() || time.Since(t.FirstUsedAt) >= s.refreshGrace) {
		return req, fosite.ErrInactiveToken
	}
	return req, nil
}

// DeleteRefreshTokenSession forgets a refresh token. Gone already is
// fine: fosite deletes the reused token before revoking its grant, and
// when two requests reuse it at once the second must still revoke and
// answer invalid_grant, not "try again".
func (s *fositeStorage) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	if err := s.store.DeleteToken(ctx, KindRefreshToken, key(signature)); err != nil && !errors.Is(err, db.ErrNotFound) {
		return fositeErr(err)
	}
	return nil
}

// errRefreshReused is a refresh token that another request rotated
// between this request's read of it and its rotation, past the grace
// period: reuse, answered like the reuse fosite detects on reading.
var errRefreshReused = errors.New("refresh token already rotated")

// RotateRefreshToken retires the used refresh token and its access token.
func (s *fositeStorage) RotateRefreshToken(ctx context.Context, requestID, signature string) error {
	access, err := s.store.MarkTokenUsed(ctx, KindRefreshToken, key(signature), time.Now(), s.refreshGrace)
	if errors.Is(err, db.ErrNotFound) {
		return errRefreshReused
	}
	if err != nil {
		return fositeErr(err)
	}
	if access != "" {
		if err := s.store.DeleteToken(ctx, KindAccessToken, access); err != nil && !errors.Is(err, db.ErrNotFound) {
			return fositeErr(err)
		}
	}
	return nil
}

// RevokeRefreshToken deactivates every refresh token of a grant.
func (s *fositeStorage) RevokeRefreshToken(ctx context.Context, requestID string) error {
	_, err := s.store.DeactivateByRequestID(ctx, KindRefreshToken, requestID)
	return fositeErr(err)
}

// RevokeAccessToken deletes every access token of a grant.
func (s *fositeStorage) RevokeAccessToken(ctx context.Context, requestID string) error {
	_, err := s.store.DeleteByRequestID(ctx, KindAccessToken, requestID)
	return fositeErr(err)
}

// CreateOpenIDConnectSession stores the ID-token request, keyed by the raw code (hashed).
func (s *fositeStorage) CreateOpenIDConnectSession(ctx context.Context, authorizeCode string, r fosite.Requester) error {
	return s.create(ctx, KindOpenIDSession, authorizeCode, r, fosite.AuthorizeCode, "")
}

// GetOpenIDConnectSession returns the ID-token request of a code.
func (s *fositeStorage) GetOpenIDConnectSession(ctx context.Context, authorizeCode string, r fosite.Requester) (fosite.Requester, error) {
	req, _, err := s.get(ctx, KindOpenIDSession, authorizeCode, r.GetSession())
	if errors.Is(err, fosite.ErrNotFound) {
		return nil, openid.ErrNoSessionFound
	}
	return req, err
}

// DeleteOpenIDConnectSession forgets the ID-token request of a code.
func (s *fositeStorage) DeleteOpenIDConnectSession(ctx context.Context, authorizeCode string) error {
	return s.deleteToken(ctx, KindOpenIDSession, authorizeCode)
}

// CreatePKCERequestSession stores the PKCE challenge of a code.
func (s *fositeStorage) CreatePKCERequestSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.create(ctx, KindPKCE, signature, r, fosite.AuthorizeCode, "")
}

// GetPKCERequestSession returns the PKCE challenge of a code.
func (s *fositeStorage) GetPKCERequestSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, _, err := s.get(ctx, KindPKCE, signature, session)
	return req, err
}

// DeletePKCERequestSession forgets the PKCE challenge of a code.
func (s *fositeStorage) DeletePKCERequestSession(ctx context.Context, signature string) error {
	return s.deleteToken(ctx, KindPKCE, signature)
}

// CreatePARSession stores a pushed authorization request.
func (s *fositeStorage) CreatePARSession(ctx context.Context, requestURI string, ar fosite.AuthorizeRequester) error {
	return s.create(ctx, KindPAR, requestURI, ar, fosite.PushedAuthorizeRequestContext, "")
}

// GetPARSession returns a pushed authorization request.
func (s *fositeStorage) GetPARSession(ctx context.Context, requestURI string) (fosite.AuthorizeRequester, error) {
	req, t, err := s.get(ctx, KindPAR, requestURI, newSession())
	if err != nil {
		return nil, err
	}
	if time.Now().After(t.ExpiresAt) {
		return nil, fosite.ErrNotFound
	}
	return req, nil
}

// DeletePARSession forgets a pushed authorization request.
func (s *fositeStorage) DeletePARSession(ctx context.Context, requestURI string) error {
	return fositeErr(s.store.DeleteToken(ctx, KindPAR, key(requestURI)))
}

// joinedTx marks a context whose transaction the handler opened: fosite's
// Commit and Rollback leave it to the handler.
type joinedTx struct{}

// BeginTX starts the transaction fosite wraps a code exchange or refresh in,
// or joins the handler's.
func (s *fositeStorage) BeginTX(ctx context.Context) (context.Context, error) {
	if db.InTransaction(ctx) {
		return context.WithValue(ctx, joinedTx{}, true), nil
	}
	return s.d.Begin(ctx)
}

// Commit commits the transaction in ctx, with the token request's audit
// record when it carries one: no tokens without their record.
func (s *fositeStorage) Commit(ctx context.Context) error {
	if b := batchOf(ctx); b != nil {
		if err := b.flushCreates(ctx, s.store); err != nil {
			return fositeErr(err)
		}
	}
	if ctx.Value(joinedTx{}) != nil {
		return nil
	}
	if a, ok := ctx.Value(auditOnCommitKey{}).(*auditOnCommit); ok && !a.done {
		a.done = true
		if err := a.append(ctx); err != nil {
			s.d.Rollback(ctx)
			return fmt.Errorf("record the tokens: %w", err)
		}
	}
	return fositeErr(s.d.Commit(ctx))
}

// Rollback abandons the transaction in ctx; a joined one fails with the
// handler's error instead.
func (s *fositeStorage) Rollback(ctx context.Context) error {
	if b := batchOf(ctx); b != nil {
		b.discardCreates()
	}
	if ctx.Value(joinedTx{}) != nil {
		return nil
	}
	return s.d.Rollback(ctx)
}
