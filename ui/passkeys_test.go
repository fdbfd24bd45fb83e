package ui

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/users"
)

// fakePasskeys hands out one ceremony token per begin and answers finish
// with what the test set.
type fakePasskeys struct {
	mu        sync.Mutex
	tokens    map[string]string // token → "register:<user id>" or "login"
	signIn    *users.PasskeySignIn
	loginErr  error
	calls     []string
	passkeys  map[string][]*users.Passkey
	lastName  string
	lastToken string
}

func (f *fakePasskeys) begin(kind string) *users.PasskeyChallenge {
	token := rand.Text()
	f.tokens[token] = kind
	return &users.PasskeyChallenge{Token: token, Options: json.RawMessage(`{"publicKey":{"challenge":"` + token + `"}}`), ExpiresAt: time.Now().Add(5 * time.Minute)}
}

func (f *fakePasskeys) BeginRegistration(_ context.Context, userID string) (*users.PasskeyChallenge, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "begin-register "+userID)
	return f.begin("register:" + userID), nil
}

func (f *fakePasskeys) FinishRegistration(_ context.Context, userID, token string, response []byte, name string, _ users.RequestMeta) (*users.Passkey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "finish-register "+userID)
	f.lastName, f.lastToken = name, token
	if f.tokens[token] != "register:"+userID || !json.Valid(response) {
		return nil, users.ErrPasskeyCeremony
	}
	delete(f.tokens, token)
	return &users.Passkey{ID: "pk-1", UserID: userID, Name: name}, nil
}

func (f *fakePasskeys) BeginLogin(_ context.Context, conditional bool) (*users.PasskeyChallenge, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprint("begin-login ", conditional))
	return f.begin("login"), nil
}

func (f *fakePasskeys) FinishLogin(_ context.Context, token string, response []byte, _ users.RequestMeta) (*users.PasskeySignIn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "finish-login")
	f.lastToken = token
	if f.loginErr != nil {
		return nil, f.loginErr
	}
	if f.tokens[token] != "login" || !json.Valid(response) {
		return nil, users.ErrPasskeyCeremony
	}
	delete(f.tokens, token)
	return f.signIn, nil
}

func (f *fakePasskeys) BeginSecondFactor(_ context.Context, userID string) (*users.PasskeyChallenge, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "begin-mfa "+userID)
	if len(f.passkeys[userID]) == 0 {
		return nil, users.ErrNoPasskeys
	}
	return f.begin("mfa:" + userID), nil
}

func (f *fakePasskeys) FinishSecondFactor(_ context.Context, userID, token string, response []byte, _ users.RequestMeta) (*users.PasskeySignIn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "finish-mfa "+userID)
	kind, ok := f.tokens[token]
	delete(f.tokens, token)
	if !ok || kind != "mfa:"+userID || !json.Valid(response) {
		return nil, users.ErrPasskeyCeremony
	}
	if f.loginErr != nil {
		return nil, f.loginErr
	}
	return f.signIn, nil
}

func (f *fakePasskeys) List(_ context.Context, userID string) ([]*users.Passkey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.passkeys[userID], nil
}

func (f *fakePasskeys) change(userID, id, what string) error {
	f.calls = append(f.calls, what+" "+userID+" "+id)
	for _, p := range f.passkeys[userID] {
		if p.ID == id {
			return nil
		}
	}
	return db.ErrNotFound
}

func (f *fakePasskeys) Rename(_ context.Context, userID, id, name string, _ users.RequestMeta) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := users.NormalizePasskeyName(name); err != nil {
		return err
	}
	return f.change(userID, id, "rename")
}

func (f *fakePasskeys) Delete(_ context.Context, userID, id string, _ users.RequestMeta) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.change(userID, id, "delete")
}

func (f *fakePasskeys) callList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// newPasskeyFixture is the page fixture with passkeys turned on.
func newPasskeyFixture(t *testing.T) (*fixture, *fakePasskeys) {
	t.Helper()
	f := newFixture(t, true)
	pk := &fakePasskeys{tokens: map[string]string{}, passkeys: map[string][]*users.Passkey{}}
	pk.signIn = &users.PasskeySignIn{User: f.user, AMR: []string{"swk", "user", "mfa"}, ACR: 3}
	p, err := New(Config{
		Auth: f.auth, Sessions: f.sessions, Consents: f.consents, Passkeys: pk,
		Clients: fakeClients{testClientID: {ID: testClientID, Name: testClientName}}, SecureCookies: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.pages, f.mux = p, http.NewServeMux()
	p.Register(f.mux)
	return f, pk
}

// postJSON sends body to path as passkeys.js does, with the CSRF header.
func (f *fixture) postJSON(path, body string, cookies ...*http.Cookie) (*http.Response, string) {
	f.t.Helper()
	c, token := f.csrf()
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set(csrfHeader, token)
	r.Header.Set("Origin", "https://example.com")
	r.AddCookie(c)
	for _, c := range cookies {
		r.AddCookie(c)
	}
	resp := f.do(r)
	return resp, readBody(f.t, resp)
}

func TestPasskeyScriptOnlyWhereItRuns(t *testing.T) {
	f, _ := newPasskeyFixture(t)
	resp, body := f.get("/login")
	if csp := resp.Header.Get("Content-Security-Policy"); csp != passkeyPageCSP || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("login CSP %q", csp)
	}
	for _, want := range []string{`<script src="` + f.pages.passkeyJS + `" defer>`, `autocomplete="username webauthn"`, `id="passkey-login"`} {
		if !strings.Contains(body, want) {
			t.Errorf("login page lacks %s", want)
		}
	}
	resp, _ = f.get("/logout")
	if csp := resp.Header.Get("Content-Security-Policy"); csp != pageCSP {
		t.Errorf("logout page CSP %q allows scripts", csp)
	}
	resp, js := f.get(f.pages.passkeyJS)
	if resp.StatusCode != http.StatusOK || !strings.Contains(js, "navigator.credentials") {
		t.Errorf("passkeys.js: status %d", resp.StatusCode)
	}

	off := newFixture(t, true)
	if _, body := off.get("/login"); strings.Contains(body, "<script") {
		t.Error("the login page loads a script with passkeys off")
	}
	if resp, _ := off.postJSON("/passkeys/login/begin", `{}`); resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("passkey endpoint with passkeys off: %d", resp.StatusCode)
	}
}

func TestPasskeyEndpointsRefuseCrossSiteRequests(t *testing.T) {
	f, pk := newPasskeyFixture(t)
	c, token := f.csrf()
	cases := []struct {
		name        string
		contentType string
		header      string
		origin      string
		cookie      bool
	}{
		{"no token header", "application/json", "", "", true},
		{"wrong token", "application/json", strings.Repeat("A", len(token)), "", true},
		{"no cookie", "application/json", token, "", false},
		{"form post", "application/x-www-form-urlencoded", token, "", true},
		{"other origin", "application/json", token, "https://evil.example", true},
	}
	for _, path := range []string{"/passkeys/login/begin", "/passkeys/login/finish", "/passkeys/register/begin", "/passkeys/register/finish"} {
		for _, tc := range cases {
			r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(`{}`))
			r.Header.Set("Content-Type", tc.contentType)
			if tc.header != "" {
				r.Header.Set(csrfHeader, tc.header)
			}
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			if tc.cookie {
				r.AddCookie(c)
			}
			resp := f.do(r)
			var e jsonError
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != http.StatusForbidden || e.Error != "invalid_request" || e.Description == "" {
				t.Errorf("%s %s: status %d, body %+v, %v", path, tc.name, resp.StatusCode, e, err)
			}
		}
	}
	if calls := pk.callList(); len(calls) != 0 {
		t.Fatalf("refused requests reached the service: %v", calls)
	}
}

func TestPasskeyLoginStartsASession(t *testing.T) {
	f, pk := newPasskeyFixture(t)
	_, oldToken := f.sessions.start(t, "someone-else")
	resp, body := f.postJSON("/passkeys/login/begin", `{"conditional":true}`)
	cookie := findCookie(resp, passkeyLoginCookie)
	if resp.StatusCode != http.StatusOK || cookie == nil || !cookie.HttpOnly || !cookie.Secure ||
		cookie.SameSite != http.SameSiteStrictMode || cookie.Path != passkeyCookiePath || !strings.Contains(body, cookie.Value) {
		t.Fatalf("begin: %d %s, cookie %+v", resp.StatusCode, body, cookie)
	}
	if calls := pk.callList(); !slices.Equal(calls, []string{"begin-login true"}) {
		t.Fatalf("calls %v", calls)
	}
	finish := `{"credential":{"id":"x"},"return_to":` + jsonString(authRequest) + `}`
	resp, body = f.postJSON("/passkeys/login/finish", finish, cookie, &http.Cookie{Name: sessionCookie, Value: oldToken})
	var out struct{ Redirect string }
	if err := json.Unmarshal([]byte(body), &out); err != nil || resp.StatusCode != http.StatusOK || out.Redirect != authRequest {
		t.Fatalf("finish: %d %s", resp.StatusCode, body)
	}
	if findCookie(resp, sessionCookie) == nil || findCookie(resp, csrfCookie) == nil {
		t.Fatal("finish set no new session or CSRF cookie")
	}
	if c := findCookie(resp, passkeyLoginCookie); c == nil || c.MaxAge >= 0 {
		t.Fatal("the ceremony cookie was not cleared")
	}
	f.sessions.mu.Lock()
	created, revoked := f.sessions.created, f.sessions.revoked
	f.sessions.mu.Unlock()
	if len(created) != 1 || created[0].userID != f.user.ID || !slices.Equal(created[0].amr, []string{"swk", "user", "mfa"}) || created[0].acr != 3 {
		t.Fatalf("sessions created: %+v", created)
	}
	if len(revoked) != 1 {
		t.Fatalf("the previous session was not revoked: %v", revoked)
	}

	// The same response again: the ceremony is gone.
	resp, body = f.postJSON("/passkeys/login/finish", finish, cookie)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `"invalid_request"`) {
		t.Fatalf("replay: %d %s", resp.StatusCode, body)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestPasskeyLoginErrorsAreJSON(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("bad signature: %w", users.ErrPasskeyRejected), http.StatusUnauthorized, "access_denied"},
		{users.ErrPasskeyCeremony, http.StatusBadRequest, "invalid_request"},
		{&users.LockedError{Until: time.Now().Add(time.Minute)}, http.StatusTooManyRequests, "temporarily_unavailable"},
		{users.ErrAccountDisabled, http.StatusForbidden, "access_denied"},
		{errors.New("database down"), http.StatusInternalServerError, "server_error"},
	} {
		f, pk := newPasskeyFixture(t)
		pk.loginErr = tc.err
		resp, body := f.postJSON("/passkeys/login/finish", `{"credential":{}}`)
		var e jsonError
		if err := json.Unmarshal([]byte(body), &e); err != nil || resp.StatusCode != tc.status || e.Error != tc.code || e.Description == "" {
			t.Errorf("%v: %d %s", tc.err, resp.StatusCode, body)
		}
		if strings.Contains(body, "database down") || strings.Contains(body, "bad signature") {
			t.Errorf("%v: the answer shows the cause: %s", tc.err, body)
		}
		if findCookie(resp, sessionCookie) != nil {
			t.Errorf("%v: a session was started", tc.err)
		}
	}
}

func TestPasskeyRegistrationNeedsARecentSignIn(t *testing.T) {
	f, pk := newPasskeyFixture(t)
	if resp, body := f.postJSON("/passkeys/register/begin", `{}`); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "login_required") {
		t.Fatalf("without a session: %d %s", resp.StatusCode, body)
	}
	ss, stale := f.sessions.start(t, f.user.ID)
	ss.AuthTime = time.Now().Add(-time.Hour)
	if resp, body := f.postJSON("/passkeys/register/begin", `{}`, &http.Cookie{Name: sessionCookie, Value: stale}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("an hour after sign-in: %d %s", resp.StatusCode, body)
	}
	_, token := f.sessions.start(t, f.user.ID)
	session := &http.Cookie{Name: sessionCookie, Value: token}
	resp, _ := f.postJSON("/passkeys/register/begin", `{}`, session)
	cookie := findCookie(resp, passkeyRegisterCookie)
	if resp.StatusCode != http.StatusOK || cookie == nil {
		t.Fatalf("fresh session: %d", resp.StatusCode)
	}
	resp, body := f.postJSON("/passkeys/register/finish", `{"name":"","credential":{"id":"x"}}`, session, cookie)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"redirect":"/account/passkeys"`) {
		t.Fatalf("finish: %d %s", resp.StatusCode, body)
	}
	if pk.lastToken != cookie.Value || !strings.HasPrefix(pk.lastName, "通行密钥 ") {
		t.Fatalf("finish got token %q name %q", pk.lastToken, pk.lastName)
	}
}

func TestPasskeyAccountPage(t *testing.T) {
	f, pk := newPasskeyFixture(t)
	if resp, _ := f.get(passkeysPath); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login?") {
		t.Fatalf("without a session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, token := f.sessions.start(t, f.user.ID)
	session := &http.Cookie{Name: sessionCookie, Value: token}
	pk.passkeys[f.user.ID] = []*users.Passkey{{ID: "pk-a", Name: "Office key <1>", CreatedAt: time.Now()}}
	resp, body := f.get(passkeysPath+"?lang=en", session)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Office key &lt;1&gt;") || !strings.Contains(body, "not yet") ||
		resp.Header.Get("Content-Security-Policy") != passkeyPageCSP {
		t.Fatalf("page: %d %s", resp.StatusCode, body)
	}
	// The add button works only with the script that drives it.
	if !strings.Contains(body, `id="passkey-register"`) || !strings.Contains(body, `<script src="`+f.pages.passkeyJS+`" defer>`) {
		t.Errorf("the page offers to add a passkey without loading passkeys.js:\n%s", body)
	}
	for _, tc := range []struct {
		path   string
		form   url.Values
		status int
	}{
		{passkeysPath + "/rename", url.Values{"id": {"pk-a"}, "name": {"Desk"}}, http.StatusSeeOther},
		{passkeysPath + "/rename", url.Values{"id": {"pk-a"}, "name": {" "}}, http.StatusBadRequest},
		{passkeysPath + "/delete", url.Values{"id": {"not-mine"}}, http.StatusNotFound},
		{passkeysPath + "/delete", url.Values{"id": {"pk-a"}}, http.StatusSeeOther},
	} {
		if resp, body := f.post(tc.path, tc.form, session); resp.StatusCode != tc.status {
			t.Errorf("%s %v: %d %s", tc.path, tc.form, resp.StatusCode, body)
		}
	}
	if resp, _ := f.postRaw(passkeysPath+"/delete", url.Values{"id": {"pk-a"}}, nil, session); resp.StatusCode != http.StatusForbidden {
		t.Errorf("delete without CSRF token: %d", resp.StatusCode)
	}
	want := []string{"rename " + f.user.ID + " pk-a", "delete " + f.user.ID + " not-mine", "delete " + f.user.ID + " pk-a"}
	if calls := pk.callList(); !slices.Equal(calls, want) {
		t.Fatalf("calls %v, want %v", calls, want)
	}
}
