package ui

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govsso/sso/users"
)

// fakeAuth knows one account per identifier, each with a generated password.
type fakeAuth struct {
	mu       sync.Mutex
	users    map[string]*users.User // by identifier
	password map[string]string      // by identifier
	refuse   map[string]error       // identifier → error to return
	calls    []users.RequestMeta
}

func (a *fakeAuth) PasswordLogin(_ context.Context, identifier, password string, m users.RequestMeta) (*users.User, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, m)
	if err, ok := a.refuse[identifier]; ok {
		return nil, err
	}
	u, ok := a.users[identifier]
	if !ok {
		return nil, fmt.Errorf("no account %q: %w", identifier, users.ErrInvalidCredentials)
	}
	if a.password[identifier] != password {
		return nil, fmt.Errorf("password mismatch for %s: %w", u.ID, users.ErrInvalidCredentials)
	}
	return u, nil
}

func (a *fakeAuth) callCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.calls)
}

// createCall records one Sessions.Create.
type createCall struct {
	userID        string
	amr           []string
	acr           int
	ip, userAgent string
}

// fakeSessions keeps sessions in memory by token.
type fakeSessions struct {
	mu      sync.Mutex
	byToken map[string]*users.Session
	created []createCall
	revoked []string
	failRev error
}

func (s *fakeSessions) Create(_ context.Context, userID string, amr []string, acr int, ip, ua string) (*users.Session, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.created = append(s.created, createCall{userID, amr, acr, ip, ua})
	ss := &users.Session{ID: "s-" + rand.Text(), UserID: userID, AMR: amr, ACR: acr, AuthTime: time.Now().UTC()}
	token := rand.Text()
	s.byToken[token] = ss
	return ss, token, nil
}

func (s *fakeSessions) Lookup(_ context.Context, token string) (*users.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss, ok := s.byToken[token]; ok {
		return ss, nil
	}
	return nil, errors.New("fake: no such session")
}

func (s *fakeSessions) Revoke(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failRev != nil {
		return s.failRev
	}
	s.revoked = append(s.revoked, id)
	for t, ss := range s.byToken {
		if ss.ID == id {
			delete(s.byToken, t)
		}
	}
	return nil
}

// start makes a session for userID and returns its cookie token.
func (s *fakeSessions) start(t *testing.T, userID string) (*users.Session, string) {
	t.Helper()
	ss, token, err := s.Create(context.Background(), userID, []string{"pwd"}, 1, "192.0.2.1", "test")
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.created = nil
	s.mu.Unlock()
	return ss, token
}

// fakeClients knows clients by ID.
type fakeClients map[string]ClientInfo

func (c fakeClients) ClientInfo(_ context.Context, id string) (ClientInfo, error) {
	if ci, ok := c[id]; ok {
		return ci, nil
	}
	return ClientInfo{}, errors.New("fake: unknown client")
}

// grantCall records one GrantConsent.
type grantCall struct {
	userID, clientID string
	scopes           []string
	remember         bool
}

type fakeConsents struct {
	mu     sync.Mutex
	grants []grantCall
}

func (c *fakeConsents) GrantConsent(_ context.Context, userID, clientID string, scopes []string, remember bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.grants = append(c.grants, grantCall{userID, clientID, scopes, remember})
	return nil
}

// fixture is a set of pages wired to fakes.
type fixture struct {
	t        *testing.T
	mux      *http.ServeMux
	pages    *Pages
	auth     *fakeAuth
	sessions *fakeSessions
	consents *fakeConsents
	user     *users.User
	ident    string
	password string
}

const testClientID = "tax-office"
const testClientName = "Tax Office Online"

func newFixture(t *testing.T, secure bool) *fixture {
	t.Helper()
	f := &fixture{
		t:        t,
		user:     &users.User{ID: "u-" + rand.Text(), Username: "alice", AssuranceLevel: 2},
		ident:    "alice",
		password: rand.Text(),
		sessions: &fakeSessions{byToken: map[string]*users.Session{}},
		consents: &fakeConsents{},
	}
	f.auth = &fakeAuth{
		users:    map[string]*users.User{f.ident: f.user},
		password: map[string]string{f.ident: f.password},
		refuse:   map[string]error{},
	}
	p, err := New(Config{
		Auth: f.auth, Sessions: f.sessions, Consents: f.consents,
		Clients:       fakeClients{testClientID: {ID: testClientID, Name: testClientName}},
		SecureCookies: secure,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.pages = p
	f.mux = http.NewServeMux()
	p.Register(f.mux)
	return f
}

// do sends r through the pages.
func (f *fixture) do(r *http.Request) *http.Response {
	w := httptest.NewRecorder()
	f.mux.ServeHTTP(w, r)
	return w.Result()
}

// get fetches target with the given cookies.
func (f *fixture) get(target string, cookies ...*http.Cookie) (*http.Response, string) {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for _, c := range cookies {
		r.AddCookie(c)
	}
	resp := f.do(r)
	return resp, readBody(f.t, resp)
}

// csrf fetches a form page and returns its CSRF cookie and field value.
func (f *fixture) csrf() (*http.Cookie, string) {
	f.t.Helper()
	resp, body := f.get("/login")
	c := findCookie(resp, csrfCookie)
	if c == nil {
		f.t.Fatal("login page set no CSRF cookie")
	}
	m := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		f.t.Fatal("login page has no CSRF field")
	}
	return c, m[1]
}

// post submits a form with a valid CSRF token plus extra cookies.
func (f *fixture) post(path string, form url.Values, cookies ...*http.Cookie) (*http.Response, string) {
	f.t.Helper()
	c, token := f.csrf()
	form.Set(csrfField, token)
	return f.postRaw(path, form, nil, append(cookies, c)...)
}

// postRaw submits a form exactly as given.
func (f *fixture) postRaw(path string, form url.Values, header http.Header, cookies ...*http.Cookie) (*http.Response, string) {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		r.Header[k] = v
	}
	for _, c := range cookies {
		r.AddCookie(c)
	}
	resp := f.do(r)
	return resp, readBody(f.t, resp)
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func findCookie(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

var (
	tagPattern   = regexp.MustCompile(`(?s)<[^>]*>`)
	spacePattern = regexp.MustCompile(`\s+`)
)

// visibleText is roughly what a person reads on the page: the text without
// markup, entities decoded, whitespace collapsed.
func visibleText(body string) string {
	text := html.UnescapeString(tagPattern.ReplaceAllString(body, " "))
	return strings.TrimSpace(spacePattern.ReplaceAllString(text, " "))
}

// newGet is a GET request for target.
func newGet(target string) *http.Request {
	return httptest.NewRequest(http.MethodGet, target, nil)
}
