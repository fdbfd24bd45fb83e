package oauth

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/go-jose/go-jose/v3/jwt"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/kek"
	"github.com/govsso/sso/oauth/signing"
	"github.com/govsso/sso/users"
)

// logoutEnv is a provider on a real database with browser sessions, for
// the logout tests.
type logoutEnv struct {
	t        *testing.T
	d        *db.DB
	p        *Provider
	store    *SQLStore
	sessions *users.Sessions
	audit    *audit.Log
	mux      *http.ServeMux
}

const (
	testIssuer        = "http://127.0.0.1:8080"
	testSessionCookie = "test_session"
)

func logoutRandomBytes(t testing.TB) []byte {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func newLogoutEnv(t *testing.T, d *db.DB) *logoutEnv {
	t.Helper()
	ctx := context.Background()
	k, err := kek.New(logoutRandomBytes(t))
	if err != nil {
		t.Fatal(err)
	}
	keys := signing.NewManager(d, k)
	if _, err := keys.EnsureKeys(ctx); err != nil {
		t.Fatal(err)
	}
	e := &logoutEnv{t: t, d: d, store: NewSQLStore(d, k), sessions: users.NewSessions(d, users.SessionOptions{}), audit: audit.NewLog(d)}
	e.p = NewProvider(Config{
		Issuer: testIssuer, AccessTokenLifetime: time.Hour, RefreshTokenLifetime: time.Hour, IDTokenLifetime: time.Hour,
		AuthCodeLifetime: time.Minute, HMACKey: logoutRandomBytes(t), PairwiseKey: logoutRandomBytes(t),
	}, Dependencies{
		DB: d, Store: e.store, Keys: keys, Users: users.NewSQLStore(d, k), Audit: e.audit,
		Logger: slog.New(slog.DiscardHandler), Secrets: NewSecretHasher(logoutRandomBytes(t)), Revoker: e.sessions,
		Sessions: func(r *http.Request) (*users.Session, error) {
			c, err := r.Cookie(testSessionCookie)
			if err != nil {
				return nil, err
			}
			return e.sessions.Lookup(r.Context(), c.Value)
		},
	})
	e.mux = http.NewServeMux()
	e.p.Register(e.mux)
	return e
}

// client registers a client; fn sets its logout metadata.
func (e *logoutEnv) client(id string, fn func(c *Client)) *Client {
	e.t.Helper()
	c := &Client{ID: id, Name: "Client " + id, Public: true, RedirectURIs: []string{"https://" + id + ".example.gov/cb"}}
	c.ApplyDefaults()
	if fn != nil {
		fn(c)
	}
	if err := e.store.CreateClient(context.Background(), c); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// signIn starts a browser session for a new user id and returns it with
// its cookie token.
func (e *logoutEnv) signIn() (*users.Session, string) {
	e.t.Helper()
	s, token, err := e.sessions.Create(context.Background(), "user-"+rand.Text(), []string{"pwd"}, 1, "127.0.0.1", "test")
	if err != nil {
		e.t.Fatal(err)
	}
	return s, token
}

// grant stores a token of kind that client received from session sid.
func (e *logoutEnv) grant(kind TokenKind, clientID, sid string) *Token {
	e.t.Helper()
	now := time.Now()
	tok := &Token{Kind: kind, Signature: rand.Text(), RequestID: rand.Text(), ClientID: clientID, Subject: "sub", SessionID: sid,
		Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Hour), Data: []byte("{}")}
	if err := e.store.CreateToken(context.Background(), tok); err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// idToken signs claims with the provider's active key of alg, as an ID token would be.
func (e *logoutEnv) idToken(alg string, claims map[string]any) string {
	e.t.Helper()
	key, err := e.p.signingKey(withIDTokenAlg(context.Background(), alg))
	if err != nil {
		e.t.Fatal(err)
	}
	return signClaims(e.t, jose.SignatureAlgorithm(alg), key, claims)
}

func signClaims(t *testing.T, alg jose.SignatureAlgorithm, key *jose.JSONWebKey, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(signer).Claims(claims).CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// hintClaims are the claims of an ID token for client from session sid.
func hintClaims(clientID, sid string) map[string]any {
	now := time.Now()
	return map[string]any{"iss": testIssuer, "sub": "sub", "aud": []string{clientID}, "azp": clientID, "sid": sid,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}

// do sends a request from a browser holding cookie (none when "").
func (e *logoutEnv) do(req *http.Request, cookie string) *httptest.ResponseRecorder {
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: testSessionCookie, Value: cookie})
	}
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, req)
	return rec
}

// alive reports whether a session cookie still signs the browser in.
func (e *logoutEnv) alive(cookie string) bool {
	_, err := e.sessions.Lookup(context.Background(), cookie)
	return err == nil
}

// deliveries returns what the outbox holds for session sid.
func (e *logoutEnv) deliveries(sid string) []*logoutDelivery {
	e.t.Helper()
	list, err := e.store.logoutDeliveriesOfSession(context.Background(), sid)
	if err != nil {
		e.t.Fatal(err)
	}
	return list
}
