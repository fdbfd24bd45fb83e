package ui

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govsso/sso/users"
)

// fakePasswords keeps one account's password in the clear, as far as a
// page test needs, and applies the real policy.
type fakePasswords struct {
	mu      sync.Mutex
	current string // "" when the account has none
	refuse  error  // answered instead, when set
	changed int
}

func (f *fakePasswords) ChangePassword(_ context.Context, userID, current, next string, _ users.RequestMeta) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse != nil {
		return f.refuse
	}
	if err := users.CheckPasswordPolicy(next, "alice", ""); err != nil {
		return err
	}
	if f.current != "" && current != f.current {
		return users.ErrInvalidCredentials
	}
	f.current = next
	f.changed++
	return nil
}

func newPasswordFixture(t *testing.T, current string) (*centreFixture, *fakePasswords) {
	t.Helper()
	pw := &fakePasswords{current: current}
	a := newCentreFixture(t, func(c *Config) { c.Passwords = pw })
	a.user.PasswordHash = ""
	if current != "" {
		a.user.PasswordHash = "$argon2id$placeholder"
	}
	return a, pw
}

func TestChangePasswordPage(t *testing.T) {
	const current, next = "the current one 1", "a brand new one 2"
	tests := []struct {
		name       string
		form       url.Values
		refuse     error
		wantStatus int
		wantText   string
		wantChange bool
	}{
		{"changed", url.Values{"current_password": {current}, "new_password": {next}, "confirm_password": {next}},
			nil, http.StatusOK, "Your password was changed. 1 other devices were signed out.", true},
		{"wrong current", url.Values{"current_password": {"nope nope nope"}, "new_password": {next}, "confirm_password": {next}},
			nil, http.StatusUnauthorized, "The current password is wrong.", false},
		{"confirmation differs", url.Values{"current_password": {current}, "new_password": {next}, "confirm_password": {next + "x"}},
			nil, http.StatusBadRequest, "The two new passwords differ.", false},
		{"too short", url.Values{"current_password": {current}, "new_password": {"short"}, "confirm_password": {"short"}},
			nil, http.StatusBadRequest, "at least 8 characters", false},
		{"missing current", url.Values{"new_password": {next}, "confirm_password": {next}},
			nil, http.StatusBadRequest, "Please fill in every password field.", false},
		{"over-long", url.Values{"current_password": {strings.Repeat("x", maxPassword+1)}, "new_password": {next}, "confirm_password": {next}},
			nil, http.StatusBadRequest, "", false},
		{"waiting after failures", url.Values{"current_password": {current}, "new_password": {next}, "confirm_password": {next}},
			&users.LockedError{Until: time.Now().Add(4 * time.Second), Delay: true}, http.StatusTooManyRequests, "Too many attempts. Try again after", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, pw := newPasswordFixture(t, current)
			pw.refuse = tc.refuse
			other, _ := a.startOn(uaIPhoneSafari, "203.0.113.9")
			mine, cookie := a.startOn(uaWindowsChrome, "192.0.2.44")
			resp, body := a.post(passwordPath+"?lang=en", tc.form, cookie)
			if resp.StatusCode != tc.wantStatus || !strings.Contains(visibleText(body), tc.wantText) {
				t.Fatalf("status %d, want %d with %q:\n%s", resp.StatusCode, tc.wantStatus, tc.wantText, visibleText(body))
			}
			if strings.Contains(body, current) || strings.Contains(body, next) {
				t.Error("a password was echoed back")
			}
			if changed := pw.changed == 1; changed != tc.wantChange {
				t.Fatalf("changed %d times, want change=%v", pw.changed, tc.wantChange)
			}
			wantEnded := 0
			if tc.wantChange {
				wantEnded = 1
				if len(a.ender.ended) != 1 || a.ender.ended[0] != other.ID {
					t.Errorf("ended %v, want only the other session %s (not %s)", a.ender.ended, other.ID, mine.ID)
				}
			}
			if len(a.ender.ended) != wantEnded {
				t.Errorf("ended %d sessions, want %d", len(a.ender.ended), wantEnded)
			}
		})
	}
}

func TestChangePasswordPageGuards(t *testing.T) {
	a, pw := newPasswordFixture(t, "the current one 1")
	resp, _ := a.get(passwordPath)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Errorf("without a session: %d to %q, want the sign-in page", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, cookie := a.startOn(uaWindowsChrome, "192.0.2.44")
	form := url.Values{"current_password": {"the current one 1"}, "new_password": {"a brand new one 2"}, "confirm_password": {"a brand new one 2"}}
	if resp, _ := a.postRaw(passwordPath, form, nil, cookie); resp.StatusCode != http.StatusForbidden || pw.changed != 0 {
		t.Errorf("without the CSRF token: %d, changed %d", resp.StatusCode, pw.changed)
	}
	resp, body := a.get(passwordPath+"?lang=en", cookie)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="current_password"`) || !strings.Contains(body, `autocomplete="new-password"`) {
		t.Errorf("form: %d\n%s", resp.StatusCode, body)
	}
	if _, body := a.get(accountPath+"?lang=en", cookie); !strings.Contains(body, `href="/account/password"`) {
		t.Error("the account centre does not link the page")
	}
}

// An account registered with a passkey sets its first password without
// giving one, but only soon after signing in.
func TestFirstPasswordNeedsARecentSignIn(t *testing.T) {
	a, pw := newPasswordFixture(t, "")
	s, cookie := a.startOn(uaWindowsChrome, "192.0.2.44")
	resp, body := a.get(passwordPath+"?lang=en", cookie)
	if resp.StatusCode != http.StatusOK || strings.Contains(body, `id="current_password"`) || !strings.Contains(visibleText(body), "has no password yet") {
		t.Fatalf("fresh session: %d\n%s", resp.StatusCode, visibleText(body))
	}
	a.sessions.mu.Lock()
	s.AuthTime = time.Now().Add(-passwordReauthAfter - time.Minute)
	a.sessions.mu.Unlock()
	form := url.Values{"new_password": {"a brand new one 2"}, "confirm_password": {"a brand new one 2"}}
	resp, body = a.post(passwordPath+"?lang=en", form, cookie)
	if resp.StatusCode != http.StatusForbidden || pw.changed != 0 || !strings.Contains(visibleText(body), "sign in again") {
		t.Fatalf("old session: %d, changed %d\n%s", resp.StatusCode, pw.changed, visibleText(body))
	}
	a.sessions.mu.Lock()
	s.AuthTime = time.Now()
	a.sessions.mu.Unlock()
	if resp, body := a.post(passwordPath+"?lang=en", form, cookie); resp.StatusCode != http.StatusOK || pw.changed != 1 {
		t.Fatalf("fresh session: %d, changed %d\n%s", resp.StatusCode, pw.changed, visibleText(body))
	}
}
