package ui

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/kek"
	"github.com/govsso/sso/ratelimit"
	"github.com/govsso/sso/users"
)

// The store cmd/sso hands to the pages must fit.
var _ QRLogins = (*users.QRLogins)(nil)

const desktopUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"

// qrFixture is the pages with QR sign-in on a real store (SQLite), a
// level-3 account signed in on the phone, and room for five codes per
// address.
type qrFixture struct {
	*fixture
	d           *db.DB
	phone       *users.Session
	phoneCookie *http.Cookie
	account     *users.User
}

func newQRFixture(t *testing.T) *qrFixture {
	t.Helper()
	f := &fixture{
		t:        t,
		sessions: &fakeSessions{byToken: map[string]*users.Session{}},
		consents: &fakeConsents{},
		auth:     &fakeAuth{users: map[string]*users.User{}, password: map[string]string{}, refuse: map[string]error{}},
	}
	d := dbtest.Open(t, db.SQLite)
	key := make([]byte, kek.KeySize)
	rand.Read(key)
	k, err := kek.New(key)
	if err != nil {
		t.Fatal(err)
	}
	store := users.NewSQLStore(d, k)
	account := &users.User{Username: "qr-alice", Kind: users.KindCitizen, AssuranceLevel: users.LevelInPerson}
	if err := store.Create(context.Background(), account); err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{
		Auth: f.auth, Sessions: f.sessions, Consents: f.consents,
		Clients:   fakeClients{testClientID: {ID: testClientID, Name: testClientName}},
		QR:        users.NewQRLogins(d, store, audit.NewLog(d)),
		QRLimiter: qrLimiter(t, d),
		Issuer:    "https://sso.example.gov.cn/",
	})
	if err != nil {
		t.Fatal(err)
	}
	f.pages, f.mux = p, http.NewServeMux()
	p.Register(f.mux)
	phone, token := f.sessions.start(t, account.ID)
	phone.ACR = users.LevelInPerson
	return &qrFixture{fixture: f, d: d, phone: phone, phoneCookie: &http.Cookie{Name: sessionCookie, Value: token}, account: account}
}

// showCode loads the sign-in page's QR image as the desktop browser does
// and returns the token it encodes and the desktop's cookie.
func (f *qrFixture) showCode() (string, *http.Cookie) {
	f.t.Helper()
	r := newGet(qrImagePath)
	r.Header.Set("User-Agent", desktopUA)
	r.RemoteAddr = "203.0.113.5:4444"
	resp := f.do(r)
	body := readBody(f.t, resp)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/png" || !strings.HasPrefix(body, "\x89PNG") {
		f.t.Fatalf("image: status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	u, err := url.Parse(resp.Header.Get(qrURLHeader))
	if err != nil || u.Scheme != "https" || u.Host != "sso.example.gov.cn" || u.Path != "/qr" || u.Query().Get("t") == "" {
		f.t.Fatalf("the code points to %q", resp.Header.Get(qrURLHeader))
	}
	c := findCookie(resp, qrCookie)
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != qrCookiePath {
		f.t.Fatalf("desktop cookie %+v", c)
	}
	return u.Query().Get("t"), &http.Cookie{Name: qrCookie, Value: c.Value}
}

// status polls as the desktop's script does.
func (f *qrFixture) status(cookies ...*http.Cookie) (int, string) {
	f.t.Helper()
	resp, body := f.get(qrStatusPath, cookies...)
	var a qrStatusAnswer
	json.Unmarshal([]byte(body), &a)
	return resp.StatusCode, a.Status
}

// decide answers on the phone.
func (f *qrFixture) decide(token, decision string) (*http.Response, string) {
	return f.post(qrPhonePath, url.Values{"t": {token}, "decision": {decision}}, f.phoneCookie)
}

func TestQRLoginPageShowsTheCode(t *testing.T) {
	f := newQRFixture(t)
	resp, body := f.get("/login?lang=en")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, want := range []string{`src="` + qrImagePath + `"`, `action="` + qrCompletePath + `"`, `<script src="/static/qrlogin.js?v=`} {
		if !strings.Contains(body, want) {
			t.Errorf("sign-in page lacks %s", want)
		}
	}
	text := visibleText(body)
	if !strings.Contains(text, msg(langEN, "qr.title")) || !strings.Contains(text, msg(langEN, "qr.continue")) {
		t.Errorf("sign-in page text: %s", text)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); csp != qrPageCSP || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q", csp)
	}
	js, _ := f.get(strings.Split(f.pages.qrJS, "?")[0])
	if js.StatusCode != http.StatusOK {
		t.Errorf("qrlogin.js: status %d", js.StatusCode)
	}
}

func TestQRLoginApproveOnPhoneSignsTheDesktopIn(t *testing.T) {
	f := newQRFixture(t)
	token, desktop := f.showCode()
	if code, st := f.status(desktop); code != http.StatusOK || st != users.QRPending {
		t.Fatalf("before: %d %q", code, st)
	}

	resp, body := f.get(qrPhoneURL(token)+"&lang=en", f.phoneCookie)
	text := visibleText(body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Security-Policy") != pageCSP {
		t.Fatalf("phone page: status %d: %s", resp.StatusCode, text)
	}
	for _, want := range []string{"Chrome · Windows", "203.0.113.5", msg(langEN, "qr.approve"), msg(langEN, "qr.decline")} {
		if !strings.Contains(text, want) {
			t.Errorf("phone page lacks %q: %s", want, text)
		}
	}

	resp, body = f.decide(token, "approve")
	if resp.StatusCode != http.StatusOK || !strings.Contains(visibleText(body), msg(langZH, "qr.approved")) {
		t.Fatalf("approve: status %d: %s", resp.StatusCode, visibleText(body))
	}
	if code, st := f.status(desktop); code != http.StatusOK || st != users.QRApproved {
		t.Fatalf("after approval: %d %q", code, st)
	}

	returnTo := "/oauth2/auth?client_id=" + testClientID + "&state=abc"
	resp, _ = f.post(qrCompletePath, url.Values{"return_to": {returnTo}}, desktop)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != returnTo {
		t.Fatalf("complete: status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if c := findCookie(resp, sessionCookie); c == nil || c.Value == "" || c.Value == f.phoneCookie.Value {
		t.Fatalf("desktop session cookie %+v", c)
	}
	if c := findCookie(resp, qrCookie); c == nil || c.MaxAge >= 0 {
		t.Errorf("the desktop's QR cookie is not cleared: %+v", c)
	}
	created := f.sessions.created
	// A new session of its own: "qr", and level 3 on the phone capped at 2.
	if len(created) != 1 || created[0].userID != f.account.ID || !slices.Equal(created[0].amr, []string{"qr"}) || created[0].acr != users.LevelVerified {
		t.Fatalf("sessions created: %+v", created)
	}
	// The same cookie cannot sign a second browser in.
	resp, _ = f.post(qrCompletePath, url.Values{"return_to": {returnTo}}, desktop)
	if resp.StatusCode != http.StatusBadRequest || len(f.sessions.created) != 1 {
		t.Fatalf("second completion: status %d, %d sessions", resp.StatusCode, len(f.sessions.created))
	}
}

func TestQRLoginDecline(t *testing.T) {
	f := newQRFixture(t)
	token, desktop := f.showCode()
	resp, body := f.decide(token, "decline")
	if resp.StatusCode != http.StatusOK || !strings.Contains(visibleText(body), msg(langZH, "qr.declined_phone")) {
		t.Fatalf("decline: status %d: %s", resp.StatusCode, visibleText(body))
	}
	if _, st := f.status(desktop); st != users.QRDeclined {
		t.Fatalf("status %q", st)
	}
	resp, body = f.post(qrCompletePath, url.Values{}, desktop)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(visibleText(body), msg(langZH, "qr.declined")) || len(f.sessions.created) != 0 {
		t.Fatalf("complete after decline: status %d, %d sessions: %s", resp.StatusCode, len(f.sessions.created), visibleText(body))
	}
}

func TestQRLoginCompleteRefusals(t *testing.T) {
	for _, tc := range []struct {
		name      string
		approve   bool
		cookie    func(desktop *http.Cookie) []*http.Cookie
		noCSRF    bool
		status    int
		shows     string
		unchanged bool // the sign-in is still there to collect afterwards
	}{
		{"not approved yet", false, func(c *http.Cookie) []*http.Cookie { return []*http.Cookie{c} }, false, http.StatusConflict, "qr.not_yet", false},
		{"no browser cookie", true, func(*http.Cookie) []*http.Cookie { return nil }, false, http.StatusBadRequest, "qr.expired", true},
		{"another browser's cookie", true, func(*http.Cookie) []*http.Cookie {
			return []*http.Cookie{{Name: qrCookie, Value: strings.Repeat("A", 43)}}
		}, false, http.StatusBadRequest, "qr.expired", true},
		{"no CSRF token", true, func(c *http.Cookie) []*http.Cookie { return []*http.Cookie{c} }, true, http.StatusForbidden, "csrf.reload", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newQRFixture(t)
			token, desktop := f.showCode()
			if tc.approve {
				if resp, _ := f.decide(token, "approve"); resp.StatusCode != http.StatusOK {
					t.Fatalf("approve: %d", resp.StatusCode)
				}
			}
			var resp *http.Response
			var body string
			if tc.noCSRF {
				resp, body = f.postRaw(qrCompletePath, url.Values{}, nil, tc.cookie(desktop)...)
			} else {
				resp, body = f.post(qrCompletePath, url.Values{}, tc.cookie(desktop)...)
			}
			if resp.StatusCode != tc.status || !strings.Contains(visibleText(body), msg(langZH, tc.shows)) {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, visibleText(body))
			}
			if len(f.sessions.created) != 0 || findCookie(resp, sessionCookie) != nil {
				t.Fatal("a session was started")
			}
			if tc.unchanged {
				if _, st := f.status(desktop); st != users.QRApproved {
					t.Errorf("the refused attempt changed the sign-in: %q", st)
				}
			}
		})
	}
}

func TestQRLoginStatusNeedsTheBrowserCookie(t *testing.T) {
	f := newQRFixture(t)
	token, _ := f.showCode()
	for name, cookies := range map[string][]*http.Cookie{
		"none":         nil,
		"another":      {{Name: qrCookie, Value: strings.Repeat("B", 43)}},
		"the QR token": {{Name: qrCookie, Value: token}},
	} {
		t.Run(name, func(t *testing.T) {
			if code, st := f.status(cookies...); code != http.StatusNotFound || st != "" {
				t.Fatalf("status %d %q", code, st)
			}
		})
	}
}

func TestQRLoginPhoneRefusals(t *testing.T) {
	for _, tc := range []struct {
		name  string
		token func(f *qrFixture) string
	}{
		{"unknown token", func(*qrFixture) string { return strings.Repeat("C", 43) }},
		{"malformed token", func(*qrFixture) string { return "<script>" }},
		{"expired token", func(f *qrFixture) string {
			token, _ := f.showCode()
			if _, err := f.d.Exec(context.Background(), `UPDATE qr_logins SET expires_at = ?`, time.Now().UTC().Add(-time.Second)); err != nil {
				f.t.Fatal(err)
			}
			return token
		}},
		{"used token", func(f *qrFixture) string {
			token, _ := f.showCode()
			if resp, _ := f.decide(token, "approve"); resp.StatusCode != http.StatusOK {
				f.t.Fatal("first approval refused")
			}
			return token
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newQRFixture(t)
			token := tc.token(f)
			for step, do := range map[string]func() (*http.Response, string){
				"show":    func() (*http.Response, string) { return f.get(qrPhoneURL(token), f.phoneCookie) },
				"approve": func() (*http.Response, string) { return f.decide(token, "approve") },
			} {
				resp, body := do()
				if resp.StatusCode != http.StatusNotFound || !strings.Contains(visibleText(body), msg(langZH, "qr.invalid")) {
					t.Fatalf("%s: status %d: %s", step, resp.StatusCode, visibleText(body))
				}
				if strings.Contains(body, "<script>") || strings.Contains(body, `name="decision"`) {
					t.Fatalf("%s: the page echoes the token or still offers a decision", step)
				}
			}
		})
	}
}

func TestQRLoginPageForThePhoneShowsNoCode(t *testing.T) {
	f := newQRFixture(t)
	_, body := f.get(loginURL(qrPhoneURL(strings.Repeat("D", 43))))
	if strings.Contains(body, qrImagePath) || !strings.Contains(body, `name="password"`) {
		t.Error("the sign-in page on the way to approving a code shows a code of its own, or no form")
	}
}

func TestQRLoginPhoneNeedsSessionAndCSRF(t *testing.T) {
	f := newQRFixture(t)
	token, desktop := f.showCode()

	resp, _ := f.get(qrPhoneURL(token))
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || err != nil || loc.Path != "/login" || loc.Query().Get("return_to") != qrPhoneURL(token) {
		t.Fatalf("without a session: status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = f.post(qrPhonePath, url.Values{"t": {token}, "decision": {"approve"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST without a session: status %d", resp.StatusCode)
	}
	resp, _ = f.postRaw(qrPhonePath, url.Values{"t": {token}, "decision": {"approve"}}, nil, f.phoneCookie)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("POST without CSRF: status %d", resp.StatusCode)
	}
	resp, _ = f.decide(token, "maybe")
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unknown decision: status %d", resp.StatusCode)
	}
	if _, st := f.status(desktop); st != users.QRPending {
		t.Fatalf("a refused request decided the sign-in: %q", st)
	}
}

func TestQRLoginCodesPerAddressAreLimited(t *testing.T) {
	f := newQRFixture(t)
	for range 4 {
		f.showCode()
	}
	r := newGet(qrImagePath)
	r.RemoteAddr = "203.0.113.5:4444"
	resp := f.do(r)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || findCookie(resp, qrCookie) != nil {
		t.Fatalf("fifth code: status %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Another address is not held up.
	r = newGet(qrImagePath)
	r.RemoteAddr = "198.51.100.9:1"
	if resp := f.do(r); resp.StatusCode != http.StatusOK {
		t.Fatalf("another address: status %d", resp.StatusCode)
	}
}

func TestQRLoginOffByDefault(t *testing.T) {
	f := newFixture(t, true)
	_, body := f.get("/login")
	if strings.Contains(body, qrImagePath) || strings.Contains(body, "qrlogin.js") {
		t.Error("the sign-in page shows a QR code with QR sign-in off")
	}
	if resp, _ := f.get(qrImagePath); resp.StatusCode != http.StatusNotFound {
		t.Errorf("image without QR sign-in: status %d", resp.StatusCode)
	}
	if _, err := New(Config{Auth: f.auth, Sessions: f.sessions, Consents: f.consents, Clients: fakeClients{}, QR: &users.QRLogins{}}); err == nil {
		t.Error("QR without a limiter was accepted")
	}
}

// qrLimiter lets an address make four codes in a quarter of an hour.
func qrLimiter(t *testing.T, d *db.DB) RateLimiter {
	t.Helper()
	l, err := ratelimit.NewDatabase(d, ratelimit.Policy{Limit: 4, Window: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return l
}
