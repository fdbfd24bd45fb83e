package ui

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govsso/sso/users"
)

// fakeAccount serves the account centre from the fixture's sessions.
type fakeAccount struct {
	mu       sync.Mutex
	user     *users.User
	sessions *fakeSessions
	apps     []AuthorisedApp
	activity []Activity
	revoked  []string // client ids
}

func (a *fakeAccount) Profile(_ context.Context, userID string) (*users.User, error) {
	return a.user, nil
}

func (a *fakeAccount) ListSessions(_ context.Context, userID string) ([]*users.Session, error) {
	a.sessions.mu.Lock()
	defer a.sessions.mu.Unlock()
	var out []*users.Session
	for _, s := range a.sessions.byToken {
		if s.UserID == userID {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(x, y *users.Session) int { return x.AuthTime.Compare(y.AuthTime) })
	return out, nil
}

func (a *fakeAccount) AuthorisedApps(_ context.Context, userID string) ([]AuthorisedApp, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.apps), nil
}

func (a *fakeAccount) RevokeApp(_ context.Context, userID, clientID string, _ users.RequestMeta) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.revoked = append(a.revoked, clientID)
	a.apps = slices.DeleteFunc(a.apps, func(x AuthorisedApp) bool { return x.ClientID == clientID })
	return nil
}

func (a *fakeAccount) RecentActivity(_ context.Context, userID string, n int) ([]Activity, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.activity[:min(n, len(a.activity))], nil
}

// fakeEnder records the sessions it ends, as oauth's EndSession would
// after telling the department systems.
type fakeEnder struct {
	sessions *fakeSessions
	mu       sync.Mutex
	ended    []string
}

func (e *fakeEnder) EndSession(ctx context.Context, _ *http.Request, s *users.Session) ([]string, error) {
	e.mu.Lock()
	e.ended = append(e.ended, s.ID)
	e.mu.Unlock()
	return nil, e.sessions.Revoke(ctx, s.ID)
}

type centreFixture struct {
	*fixture
	account *fakeAccount
	ender   *fakeEnder
}

func newCentreFixture(t *testing.T, set ...func(*Config)) *centreFixture {
	t.Helper()
	f := newFixture(t, true)
	f.user.DisplayName = "Alice " + rand.Text()[:6]
	f.user.Phone = "138" + "0013" + "8000"
	f.user.Email = "alice@example.org"
	a := &centreFixture{fixture: f,
		account: &fakeAccount{user: f.user, sessions: f.sessions},
		ender:   &fakeEnder{sessions: f.sessions},
	}
	c := Config{
		Auth: f.auth, Sessions: f.sessions, Consents: f.consents, Logout: a.ender, Account: a.account,
		Clients:       fakeClients{testClientID: {ID: testClientID, Name: testClientName}},
		SecureCookies: true,
	}
	for _, fn := range set {
		fn(&c)
	}
	p, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	f.pages, f.mux = p, http.NewServeMux()
	p.Register(f.mux)
	return a
}

// startOn signs the user in with a browser's user agent.
func (a *centreFixture) startOn(userAgent, ip string) (*users.Session, *http.Cookie) {
	a.t.Helper()
	s, token := a.sessions.start(a.t, a.user.ID)
	a.sessions.mu.Lock()
	s.UserAgent, s.IP = userAgent, ip
	a.sessions.mu.Unlock()
	return s, &http.Cookie{Name: sessionCookie, Value: token}
}

const (
	uaWindowsChrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"
	uaIPhoneSafari  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)

func TestAccountPageShowsWhatAPersonSees(t *testing.T) {
	a := newCentreFixture(t)
	a.account.apps = []AuthorisedApp{{ClientID: testClientID, Name: testClientName, Scopes: []string{"openid", "phone"}, GrantedAt: time.Now()}}
	a.account.activity = []Activity{{At: time.Now(), Action: "auth.login", Result: "success", IP: "198.51.100.7"}, {At: time.Now(), Action: "custom.thing", Result: "success"}}
	_, _ = a.startOn(uaIPhoneSafari, "203.0.113.9")
	_, cookie := a.startOn(uaWindowsChrome, "192.0.2.44")

	resp, body := a.get("/account?lang=en", cookie)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	text := visibleText(body)
	for _, want := range []string{
		"My account", a.user.DisplayName, "alice", "138****8000", "alice@example.org", "Assurance level: 2",
		"Where you are signed in", "Chrome · Windows (this device)", "Safari · iOS", "203.0.113.9", "192.0.2.44",
		"Sign out all other devices", "Authorised applications", testClientName, msg(langEN, "consent.scope.phone"),
	} {
		if !strings.Contains(text, want) {
			t.Errorf("page does not show %q:\n%s", want, text)
		}
	}
	for _, want := range []string{"Recent activity", "Signed in", "198.51.100.7", "custom.thing"} {
		if !strings.Contains(text, want) {
			t.Errorf("activity does not show %q", want)
		}
	}
	if strings.Contains(text, "13800138000") {
		t.Error("page shows the full phone number")
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("CSP %q", csp)
	}
	for _, want := range []string{`<th scope="col">`, `<th scope="row">`, `name="csrf_token"`} {
		if !strings.Contains(body, want) {
			t.Errorf("markup lacks %s", want)
		}
	}
}

func TestAccountPageLinksVerificationAtLevelOne(t *testing.T) {
	a := newCentreFixture(t)
	a.user.AssuranceLevel = 1
	_, cookie := a.startOn(uaWindowsChrome, "192.0.2.1")
	_, body := a.get("/account?lang=en", cookie)
	if !strings.Contains(visibleText(body), "Level 1") {
		t.Error("level 1 hint missing")
	}
	// Without verification configured there is nothing to link to.
	if strings.Contains(body, verifyPath) {
		t.Error("links the verification page although it is off")
	}
}

// linkFakes stand in for identity verification and acting-for, which the
// account centre only links to.
type linkFakes struct{ enterprises []*users.Enterprise }

func (linkFakes) VerifyIdentity(context.Context, string, string, string) (*users.User, error) {
	return nil, errors.New("fake: not used")
}

func (linkFakes) StepUp(context.Context, string, int, []string) (string, error) {
	return "", errors.New("fake: not used")
}

func (l linkFakes) ActingOptions(context.Context, string) ([]*users.Enterprise, error) {
	return l.enterprises, nil
}

func (linkFakes) SwitchActing(context.Context, *users.Session, string) error { return nil }

func TestAccountPageLinks(t *testing.T) {
	tests := []struct {
		name        string
		level       int
		enterprises []*users.Enterprise
		want, not   []string
	}{
		{"level 1, no enterprise", 1, nil, []string{verifyPath}, []string{actingPath}},
		{"level 2, an agent", 2, []*users.Enterprise{{ID: "e-1"}}, []string{actingPath}, []string{verifyPath}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fakes := linkFakes{tt.enterprises}
			a := newCentreFixture(t, func(c *Config) { c.Verify, c.StepUp, c.Acting = fakes, fakes, fakes })
			a.user.AssuranceLevel = tt.level
			_, cookie := a.startOn(uaWindowsChrome, "192.0.2.1")
			_, body := a.get("/account?lang=en", cookie)
			for _, w := range tt.want {
				if !strings.Contains(body, `href="`+w) {
					t.Errorf("no link to %s", w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(body, `href="`+n) {
					t.Errorf("links %s", n)
				}
			}
		})
	}
}

func TestAccountNeedsSignIn(t *testing.T) {
	a := newCentreFixture(t)
	resp, _ := a.get("/account")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?return_to=%2Faccount" {
		t.Errorf("status %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestHomeRedirects(t *testing.T) {
	a := newCentreFixture(t)
	_, cookie := a.startOn(uaWindowsChrome, "192.0.2.1")
	tests := []struct {
		name    string
		cookies []*http.Cookie
		want    string
	}{
		{"signed in", []*http.Cookie{cookie}, "/account"},
		{"signed out", nil, "/login?return_to=%2Faccount"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := a.get("/", tt.cookies...)
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != tt.want {
				t.Errorf("status %d Location %q, want %s", resp.StatusCode, resp.Header.Get("Location"), tt.want)
			}
		})
	}
	if resp, _ := a.get("/nothing-here"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("other paths answer %d, want 404", resp.StatusCode)
	}
}

func TestSignOutAnotherSessionEndsItThroughTheEnder(t *testing.T) {
	a := newCentreFixture(t)
	other, otherCookie := a.startOn(uaIPhoneSafari, "203.0.113.9")
	_, cookie := a.startOn(uaWindowsChrome, "192.0.2.44")
	resp, _ := a.post(signOutPath, url.Values{"session": {other.ID}}, cookie)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != accountPath {
		t.Fatalf("status %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if !slices.Equal(a.ender.ended, []string{other.ID}) {
		t.Errorf("ender ended %v, want %s", a.ender.ended, other.ID)
	}
	if resp, _ := a.get("/account", otherCookie); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the other browser still sees its account (status %d)", resp.StatusCode)
	}
	if resp, _ := a.get("/account", cookie); resp.StatusCode != http.StatusOK {
		t.Errorf("this browser was signed out too (status %d)", resp.StatusCode)
	}
}

func TestSignOutFallsBackToRevoke(t *testing.T) {
	a := newCentreFixture(t)
	a.pages.ender = nil
	other, _ := a.startOn(uaIPhoneSafari, "203.0.113.9")
	_, cookie := a.startOn(uaWindowsChrome, "192.0.2.44")
	a.post(signOutPath, url.Values{"session": {other.ID}}, cookie)
	if !slices.Equal(a.sessions.revoked, []string{other.ID}) {
		t.Errorf("revoked %v, want %s", a.sessions.revoked, other.ID)
	}
}

func TestCannotSignOutSomeoneElsesSession(t *testing.T) {
	a := newCentreFixture(t)
	victim, victimToken := a.sessions.start(t, "u-someone-else")
	_, cookie := a.startOn(uaWindowsChrome, "192.0.2.44")
	resp, body := a.post(signOutPath+"?lang=en", url.Values{"session": {victim.ID}}, cookie)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("status %d, want 403", resp.StatusCode)
	}
	if !strings.Contains(visibleText(body), "not one of yours") {
		t.Errorf("page does not say why: %q", visibleText(body))
	}
	if len(a.ender.ended) != 0 || len(a.sessions.revoked) != 0 {
		t.Errorf("ended %v, revoked %v", a.ender.ended, a.sessions.revoked)
	}
	if _, err := a.sessions.Lookup(t.Context(), victimToken); err != nil {
		t.Error("the other person's session was ended")
	}
}

func TestSignOutNeedsCSRF(t *testing.T) {
	a := newCentreFixture(t)
	other, _ := a.startOn(uaIPhoneSafari, "203.0.113.9")
	_, cookie := a.startOn(uaWindowsChrome, "192.0.2.44")
	resp, _ := a.postRaw(signOutPath, url.Values{"session": {other.ID}}, nil, cookie)
	if resp.StatusCode != http.StatusForbidden || len(a.ender.ended) != 0 {
		t.Errorf("status %d, ended %v", resp.StatusCode, a.ender.ended)
	}
}

func TestSignOutThisDeviceSignsOut(t *testing.T) {
	a := newCentreFixture(t)
	s, cookie := a.startOn(uaWindowsChrome, "192.0.2.44")
	resp, _ := a.post(signOutPath, url.Values{"session": {s.ID}}, cookie)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Errorf("status %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if c := findCookie(resp, sessionCookie); c == nil || c.MaxAge >= 0 {
		t.Error("session cookie not cleared")
	}
}

func TestSignOutAllOtherDevices(t *testing.T) {
	a := newCentreFixture(t)
	one, _ := a.startOn(uaIPhoneSafari, "203.0.113.9")
	two, _ := a.startOn(uaIPhoneSafari, "203.0.113.10")
	mine, cookie := a.startOn(uaWindowsChrome, "192.0.2.44")
	stranger, _ := a.sessions.start(t, "u-someone-else")
	resp, _ := a.post(signOutOthersPath, url.Values{}, cookie)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := slices.Sorted(slices.Values(a.ender.ended))
	want := slices.Sorted(slices.Values([]string{one.ID, two.ID}))
	if !slices.Equal(got, want) {
		t.Errorf("ended %v, want %v (not %s nor %s)", got, want, mine.ID, stranger.ID)
	}
}

func TestRevokeAppRemovesItFromTheList(t *testing.T) {
	a := newCentreFixture(t)
	a.account.apps = []AuthorisedApp{{ClientID: testClientID, Name: testClientName, Scopes: []string{"openid"}, GrantedAt: time.Now()}}
	_, cookie := a.startOn(uaWindowsChrome, "192.0.2.44")
	if _, body := a.get("/account?lang=en", cookie); !strings.Contains(visibleText(body), testClientName) {
		t.Fatal("app not listed before revocation")
	}
	resp, _ := a.post(revokeAppPath, url.Values{"client": {testClientID}}, cookie)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if !slices.Equal(a.account.revoked, []string{testClientID}) {
		t.Errorf("revoked %v", a.account.revoked)
	}
	_, body := a.get("/account?lang=en", cookie)
	text := visibleText(body)
	if strings.Contains(text, testClientName) || !strings.Contains(text, msg(langEN, "centre.no_apps")) {
		t.Errorf("app still listed: %q", text)
	}
}

func TestDeviceName(t *testing.T) {
	tests := []struct{ ua, want string }{
		{uaWindowsChrome, "Chrome · Windows"},
		{uaIPhoneSafari, "Safari · iOS"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36 Edg/130.0", "Edge · Windows"},
		{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Mobile Safari/537.36 MicroMessenger/8.0", "WeChat · Android"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 14.0; rv:131.0) Gecko/20100101 Firefox/131.0", "Firefox · macOS"},
		{"curl/8.5.0", ""},
	}
	for _, tt := range tests {
		if got := deviceName(tt.ua); got != tt.want {
			t.Errorf("deviceName(%q) = %q, want %q", tt.ua, got, tt.want)
		}
	}
}

func TestActivityWords(t *testing.T) {
	tests := []struct{ action, result, want string }{
		{"auth.login", "success", "Signed in"},
		{"auth.login", "failure", "Failed sign-in"},
		{"passkey.register", "success", "Added a passkey"},
		{"something.new", "success", "something.new"},
	}
	for _, tt := range tests {
		if got := activityWords(langEN, tt.action, tt.result); got != tt.want {
			t.Errorf("activityWords(%s, %s) = %q, want %q", tt.action, tt.result, got, tt.want)
		}
	}
}
