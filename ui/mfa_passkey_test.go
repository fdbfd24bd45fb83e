package ui

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/govsso/sso/users"
)

// newPasskeyMFAFixture is the pages with TOTP and passkeys on; the user
// has TOTP and, when withPasskey, one passkey.
func newPasskeyMFAFixture(t *testing.T, withPasskey bool) (*mfaFixture, *fakePasskeys) {
	t.Helper()
	pk := &fakePasskeys{tokens: map[string]string{}, passkeys: map[string][]*users.Passkey{}}
	m := newMFAFixture(t, func(c *Config) { c.Passkeys = pk })
	m.enable()
	if withPasskey {
		pk.passkeys[m.user.ID] = []*users.Passkey{{ID: "pk-1", UserID: m.user.ID, Name: "Key"}}
	}
	pk.signIn = &users.PasskeySignIn{User: m.user, AMR: []string{"hwk", "user", "mfa"}, ACR: 3}
	return m, pk
}

func TestCodePageOffersPasskeysOnlyToAccountsWithThem(t *testing.T) {
	for _, with := range []bool{false, true} {
		m, _ := newPasskeyMFAFixture(t, with)
		pending := m.signInWithPassword("/home")
		resp, body := m.get(mfaPath+"?lang=en", pending)
		offered := strings.Contains(body, `id="passkey-mfa"`) && strings.Contains(body, "Verify with a passkey")
		if resp.StatusCode != http.StatusOK || offered != with {
			t.Errorf("with a passkey %v: status %d, offered %v", with, resp.StatusCode, offered)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); with != strings.Contains(csp, "script-src 'self'") {
			t.Errorf("with a passkey %v: CSP %q", with, csp)
		}
	}
}

func TestPasskeyAsSecondFactorStartsTheSession(t *testing.T) {
	m, pk := newPasskeyMFAFixture(t, true)
	rt := "/oauth2/auth?client_id=" + testClientID + "&state=x"
	pending := m.signInWithPassword(rt)
	resp, body := m.postJSON(mfaPasskeyBeginPath, `{}`, pending)
	ceremony := findCookie(resp, mfaPasskeyCookie)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "challenge") || ceremony == nil || ceremony.Path != mfaPath || !ceremony.HttpOnly {
		t.Fatalf("begin: %d %s, cookie %+v", resp.StatusCode, body, ceremony)
	}
	resp, body = m.postJSON(mfaPasskeyFinishPath, `{"credential":{"id":"pk-1"}}`, pending, ceremony)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"redirect"`) || !strings.Contains(body, testClientID) {
		t.Fatalf("finish: %d %s", resp.StatusCode, body)
	}
	if len(m.sessions.created) != 1 {
		t.Fatalf("%d sessions created, want 1", len(m.sessions.created))
	}
	got := m.sessions.created[0]
	if got.userID != m.user.ID || !slices.Equal(got.amr, []string{"pwd", "hwk", "user", "mfa"}) || got.acr != 3 {
		t.Errorf("Create(%+v), want amr [pwd hwk user mfa] and the passkey's level", got)
	}
	if m.challenges.count() != 0 {
		t.Error("the pending sign-in survives")
	}
	if !slices.Contains(pk.callList(), "finish-mfa "+m.user.ID) {
		t.Errorf("calls %v", pk.callList())
	}
}

func TestPasskeySecondFactorRefusals(t *testing.T) {
	t.Run("no pending sign-in", func(t *testing.T) {
		m, _ := newPasskeyMFAFixture(t, true)
		resp, body := m.postJSON(mfaPasskeyBeginPath+"?lang=en", `{}`)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "timed out") {
			t.Errorf("%d %s", resp.StatusCode, body)
		}
	})
	t.Run("account without passkeys", func(t *testing.T) {
		m, _ := newPasskeyMFAFixture(t, false)
		pending := m.signInWithPassword("/home")
		resp, body := m.postJSON(mfaPasskeyBeginPath+"?lang=en", `{}`, pending)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "no passkeys") {
			t.Errorf("%d %s", resp.StatusCode, body)
		}
	})
	t.Run("without the CSRF header", func(t *testing.T) {
		m, _ := newPasskeyMFAFixture(t, true)
		pending := m.signInWithPassword("/home")
		req, _ := http.NewRequest(http.MethodPost, mfaPasskeyBeginPath, strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		req.AddCookie(pending)
		if resp := m.do(req); resp.StatusCode != http.StatusForbidden {
			t.Errorf("status %d, want 403", resp.StatusCode)
		}
	})
	t.Run("rejected passkeys end the pending sign-in", func(t *testing.T) {
		m, pk := newPasskeyMFAFixture(t, true)
		pk.loginErr = users.ErrPasskeyRejected
		pending := m.signInWithPassword("/home")
		var status int
		for i := 0; i < users.MaxMFAAttempts; i++ {
			resp, _ := m.postJSON(mfaPasskeyBeginPath, `{}`, pending)
			ceremony := findCookie(resp, mfaPasskeyCookie)
			resp, _ = m.postJSON(mfaPasskeyFinishPath, `{"credential":{}}`, pending, ceremony)
			status = resp.StatusCode
			if i < users.MaxMFAAttempts-1 && status != http.StatusUnauthorized {
				t.Fatalf("rejection %d: status %d, want 401", i+1, status)
			}
		}
		if status != http.StatusTooManyRequests || m.challenges.count() != 0 || len(m.sessions.created) != 0 {
			t.Errorf("after %d rejections: status %d, %d pending, %d sessions", users.MaxMFAAttempts, status, m.challenges.count(), len(m.sessions.created))
		}
	})
}
