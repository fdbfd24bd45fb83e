package ui

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestLogoutAsksFirst(t *testing.T) {
	f := newFixture(t, true)
	_, token := f.sessions.start(t, f.user.ID)
	resp, body := f.get("/logout?lang=en", &http.Cookie{Name: sessionCookie, Value: token})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if text := visibleText(body); !strings.Contains(text, "Do you want to sign out?") {
		t.Errorf("page text %q does not ask", text)
	}
	if len(f.sessions.revoked) != 0 {
		t.Error("GET revoked the session")
	}
}

func TestLogoutRevokes(t *testing.T) {
	f := newFixture(t, true)
	s, token := f.sessions.start(t, f.user.ID)
	resp, body := f.post("/logout?lang=en", url.Values{"return_to": {"/portal"}}, &http.Cookie{Name: sessionCookie, Value: token})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if len(f.sessions.revoked) != 1 || f.sessions.revoked[0] != s.ID {
		t.Errorf("revoked %v, want %s", f.sessions.revoked, s.ID)
	}
	c := findCookie(resp, sessionCookie)
	if c == nil || c.MaxAge >= 0 || c.Value != "" {
		t.Errorf("session cookie %v not cleared", c)
	}
	if text := visibleText(body); !strings.Contains(text, "You are signed out") {
		t.Errorf("page text %q does not say signed out", text)
	}
	if !strings.Contains(body, `href="/portal"`) {
		t.Error("no link to return_to")
	}
	if _, err := f.pages.CurrentSession(newGet("/").WithContext(t.Context())); !errors.Is(err, ErrNoSession) {
		t.Errorf("CurrentSession without cookie: %v, want ErrNoSession", err)
	}
}

func TestLogoutKeepsCookieWhenRevokeFails(t *testing.T) {
	f := newFixture(t, true)
	_, token := f.sessions.start(t, f.user.ID)
	f.sessions.failRev = errors.New("db down")
	resp, body := f.post("/logout?lang=en", url.Values{}, &http.Cookie{Name: sessionCookie, Value: token})
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("status %d, want 500", resp.StatusCode)
	}
	if findCookie(resp, sessionCookie) != nil {
		t.Error("cookie cleared although the session lives on")
	}
	if text := visibleText(body); !strings.Contains(text, "Signing out did not finish") {
		t.Errorf("page text %q does not explain", text)
	}
}

func TestCurrentSession(t *testing.T) {
	f := newFixture(t, true)
	s, token := f.sessions.start(t, f.user.ID)
	tests := []struct {
		name    string
		cookie  *http.Cookie
		wantID  string
		wantErr bool
	}{
		{"no cookie", nil, "", true},
		{"unknown token", &http.Cookie{Name: sessionCookie, Value: "x"}, "", true},
		{"live session", &http.Cookie{Name: sessionCookie, Value: token}, s.ID, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newGet("/oauth2/auth")
			if tt.cookie != nil {
				r.AddCookie(tt.cookie)
			}
			got, err := f.pages.CurrentSession(r)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got != nil && got.ID != tt.wantID {
				t.Errorf("session %s, want %s", got.ID, tt.wantID)
			}
		})
	}
}
