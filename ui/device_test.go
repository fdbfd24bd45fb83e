package ui

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/users"
)

// The lockout cmd/sso hands to NewDevicePages must fit.
var _ FailureCounter = (*users.Lockout)(nil)

// deviceDecision records one DecideDevice.
type deviceDecision struct {
	code    string
	approve bool
	session *users.Session
}

// fakeDevices knows pending device sign-ins by normalized user code.
type fakeDevices struct {
	mu      sync.Mutex
	pending map[string]DeviceRequest
	decided []deviceDecision
}

func normalizeCode(typed string) string {
	return strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(typed))
}

func (f *fakeDevices) PendingDevice(_ context.Context, typed string) (DeviceRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.pending[normalizeCode(typed)]; ok {
		return r, nil
	}
	return DeviceRequest{}, fmt.Errorf("fake: %q: %w", typed, ErrUnknownUserCode)
}

func (f *fakeDevices) DecideDevice(_ context.Context, typed string, approve bool, s *users.Session, _, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	code := normalizeCode(typed)
	if _, ok := f.pending[code]; !ok {
		return fmt.Errorf("fake: %q: %w", typed, ErrUnknownUserCode)
	}
	delete(f.pending, code)
	f.decided = append(f.decided, deviceDecision{code, approve, s})
	return nil
}

func (f *fakeDevices) decisions() []deviceDecision {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]deviceDecision(nil), f.decided...)
}

const testUserCode = "BCDF-GHJK"

// deviceFixture is the device page on the usual fixture, with a real
// lockout (ten wrong codes, as cmd/sso configures it).
type deviceFixture struct {
	*fixture
	devices *fakeDevices
	session *users.Session
	cookie  *http.Cookie
}

func newDeviceFixture(t *testing.T) *deviceFixture {
	t.Helper()
	f := newFixture(t, true)
	devices := &fakeDevices{pending: map[string]DeviceRequest{
		normalizeCode(testUserCode): {UserCode: testUserCode, ClientName: testClientName, Scopes: []string{"openid", "profile"}},
	}}
	lockout := users.NewLockout(dbtest.Open(t, db.SQLite), users.LockoutPolicy{MaxFailures: 10, FreeFailures: 10})
	d, err := NewDevicePages(f.pages, devices, lockout)
	if err != nil {
		t.Fatal(err)
	}
	d.Register(f.mux)
	s, token := f.sessions.start(t, f.user.ID)
	return &deviceFixture{fixture: f, devices: devices, session: s, cookie: &http.Cookie{Name: sessionCookie, Value: token}}
}

func TestDeviceWithoutSessionGoesToLogin(t *testing.T) {
	f := newDeviceFixture(t)
	for name, do := range map[string]func() *http.Response{
		"GET": func() *http.Response {
			resp, _ := f.get("/device?user_code=" + testUserCode)
			return resp
		},
		"POST": func() *http.Response {
			resp, _ := f.post("/device", url.Values{"user_code": {testUserCode}, "decision": {"approve"}})
			return resp
		},
	} {
		t.Run(name, func(t *testing.T) {
			resp := do()
			loc, err := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusSeeOther || err != nil || loc.Path != "/login" {
				t.Fatalf("status %d, Location %q; want 303 to /login", resp.StatusCode, resp.Header.Get("Location"))
			}
			if back := loc.Query().Get("return_to"); back != "/device?user_code="+testUserCode {
				t.Errorf("return_to %q does not come back to the code", back)
			}
			if len(f.devices.decisions()) != 0 {
				t.Error("decided without a session")
			}
		})
	}
}

func TestDeviceEntryForm(t *testing.T) {
	f := newDeviceFixture(t)
	resp, body := f.get("/device", f.cookie)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="user_code"`) || strings.Contains(body, `name="decision"`) {
		t.Fatalf("status %d: %.400s", resp.StatusCode, body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); csp != pageCSP || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers: CSP %q, Cache-Control %q", csp, resp.Header.Get("Cache-Control"))
	}
}

func TestDeviceConfirmShowsClientAndScopes(t *testing.T) {
	f := newDeviceFixture(t)
	for _, lang := range []string{langZH, langEN} {
		t.Run(lang, func(t *testing.T) {
			// Typed in lower case: the code is found all the same.
			resp, body := f.get("/device?lang="+lang+"&user_code="+strings.ToLower(testUserCode), f.cookie)
			text := visibleText(body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, text)
			}
			for _, want := range []string{
				msg(lang, "device.confirm_title"), testClientName, testUserCode,
				msg(lang, "consent.scope.openid"), msg(lang, "consent.scope.profile"),
				msg(lang, "device.approve"), msg(lang, "device.deny"),
			} {
				if !strings.Contains(text, want) {
					t.Errorf("page lacks %q", want)
				}
			}
			if !strings.Contains(body, `value="`+testUserCode+`"`) || !strings.Contains(body, `name="csrf_token"`) {
				t.Error("the form does not carry the code and a CSRF token")
			}
		})
	}
}

func TestDeviceDecision(t *testing.T) {
	for _, tc := range []struct {
		decision string
		approve  bool
		shows    string
	}{
		{"approve", true, "device.approved"},
		{"deny", false, "device.denied"},
	} {
		t.Run(tc.decision, func(t *testing.T) {
			f := newDeviceFixture(t)
			resp, body := f.post("/device", url.Values{"user_code": {testUserCode}, "decision": {tc.decision}}, f.cookie)
			if resp.StatusCode != http.StatusOK || !strings.Contains(visibleText(body), msg(langZH, tc.shows)) {
				t.Fatalf("status %d: %s", resp.StatusCode, visibleText(body))
			}
			got := f.devices.decisions()
			if len(got) != 1 || got[0].approve != tc.approve || got[0].session.ID != f.session.ID || got[0].code != normalizeCode(testUserCode) {
				t.Fatalf("decisions %+v", got)
			}
		})
	}
}

func TestDeviceDecisionNeedsCSRF(t *testing.T) {
	f := newDeviceFixture(t)
	resp, _ := f.postRaw("/device", url.Values{"user_code": {testUserCode}, "decision": {"approve"}}, nil, f.cookie)
	if resp.StatusCode != http.StatusForbidden || len(f.devices.decisions()) != 0 {
		t.Fatalf("status %d, decisions %v", resp.StatusCode, f.devices.decisions())
	}
}

func TestDeviceWrongCode(t *testing.T) {
	f := newDeviceFixture(t)
	for name, do := range map[string]func() (*http.Response, string){
		"GET": func() (*http.Response, string) { return f.get("/device?user_code=ZZZZ-ZZZZ", f.cookie) },
		"POST": func() (*http.Response, string) {
			return f.post("/device", url.Values{"user_code": {"ZZZZ-ZZZZ"}, "decision": {"approve"}}, f.cookie)
		},
	} {
		t.Run(name, func(t *testing.T) {
			resp, body := do()
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(visibleText(body), msg(langZH, "device.invalid")) {
				t.Fatalf("status %d: %s", resp.StatusCode, visibleText(body))
			}
			if !strings.Contains(body, `name="user_code"`) {
				t.Error("the page does not ask for the code again")
			}
		})
	}
}

func TestDeviceLockoutAfterTenWrongCodes(t *testing.T) {
	f := newDeviceFixture(t)
	for i := 1; i <= 10; i++ {
		resp, _ := f.get(fmt.Sprintf("/device?user_code=ZZZZ-ZZZ%c", "BCDFGHJKLM"[i-1]), f.cookie)
		want := http.StatusBadRequest
		if i == 10 {
			want = http.StatusTooManyRequests
		}
		if resp.StatusCode != want {
			t.Fatalf("wrong code %d: status %d, want %d", i, resp.StatusCode, want)
		}
	}
	// Now even the right code is refused, and the page says why.
	resp, body := f.get("/device?user_code="+testUserCode, f.cookie)
	lockedText := strings.SplitN(msg(langZH, "device.locked_until"), "%s", 2)[0]
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(visibleText(body), lockedText) {
		t.Fatalf("status %d, Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), visibleText(body))
	}
	resp, _ = f.post("/device", url.Values{"user_code": {testUserCode}, "decision": {"approve"}}, f.cookie)
	if resp.StatusCode != http.StatusTooManyRequests || len(f.devices.decisions()) != 0 {
		t.Fatalf("locked address could decide: status %d", resp.StatusCode)
	}
}

func TestNewDevicePagesNeedsItsServices(t *testing.T) {
	f := newFixture(t, true)
	if _, err := NewDevicePages(f.pages, nil, nil); err == nil {
		t.Error("NewDevicePages accepted no services")
	}
}
