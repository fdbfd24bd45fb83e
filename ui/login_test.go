package ui

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/govsso/sso/users"
)

func TestLoginPageLanguage(t *testing.T) {
	f := newFixture(t, true)
	const zhLabel, enLabel = "用户名、手机号或身份证号", "Username, phone number or ID number"
	enReturn := url.QueryEscape("/oauth2/auth?client_id=x&ui_locales=en-GB")
	tests := []struct {
		name, target, acceptLang, cookie string
		wantLabel, wantHTMLLang          string
	}{
		{"default is Chinese", "/login", "", "", zhLabel, "zh-CN"},
		{"lang=en", "/login?lang=en", "", "", enLabel, "en"},
		{"lang=zh-CN over English browser", "/login?lang=zh-CN", "en", "", zhLabel, "zh-CN"},
		{"Accept-Language en", "/login", "en-US,en;q=0.9", "", enLabel, "en"},
		{"Accept-Language skips unknown", "/login", "fr-FR, en;q=0.5", "", enLabel, "en"},
		{"Accept-Language q=0 refused", "/login", "en;q=0, de", "", zhLabel, "zh-CN"},
		{"Accept-Language by quality", "/login", "en;q=0.4, zh-TW;q=0.8", "", zhLabel, "zh-CN"},
		{"ui_locales in return_to", "/login?return_to=" + enReturn, "zh-CN", "", enLabel, "en"},
		{"remembered choice", "/login", "zh-CN", "en", enLabel, "en"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newGet(tt.target)
			if tt.acceptLang != "" {
				r.Header.Set("Accept-Language", tt.acceptLang)
			}
			if tt.cookie != "" {
				r.AddCookie(&http.Cookie{Name: langCookie, Value: tt.cookie})
			}
			resp := f.do(r)
			body := readBody(t, resp)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if text := visibleText(body); !strings.Contains(text, tt.wantLabel) {
				t.Errorf("page text %q lacks %q", text, tt.wantLabel)
			}
			if !strings.Contains(body, `<html lang="`+tt.wantHTMLLang+`">`) {
				t.Errorf("html lang is not %s", tt.wantHTMLLang)
			}
		})
	}
}

func TestLanguageSwitchIsRemembered(t *testing.T) {
	f := newFixture(t, true)
	resp, body := f.get("/login?lang=en&return_to=%2Fhome")
	c := findCookie(resp, langCookie)
	if c == nil || c.Value != "en" {
		t.Fatalf("sso_lang cookie = %v, want en", c)
	}
	// The switch link leads back to Chinese and keeps return_to.
	if !strings.Contains(body, `href="/login?lang=zh-CN&amp;return_to=%2Fhome"`) {
		t.Errorf("no switch link to Chinese in %s", body)
	}
	if !strings.Contains(visibleText(body), "中文") {
		t.Error("switch link does not read 中文")
	}
	_, body = f.get("/login", c)
	if !strings.Contains(visibleText(body), "Sign in") {
		t.Error("remembered language not used")
	}
}

func TestLoginPageNamesClientAndPrefillsHint(t *testing.T) {
	f := newFixture(t, true)
	rt := "/oauth2/auth?client_id=" + testClientID + "&login_hint=bob.example&scope=openid"
	_, body := f.get("/login?lang=en&return_to=" + url.QueryEscape(rt))
	if text := visibleText(body); !strings.Contains(text, "Sign in to continue to "+testClientName) {
		t.Errorf("page text %q does not name the client", text)
	}
	if !strings.Contains(body, `name="identifier" type="text" value="bob.example"`) {
		t.Error("login_hint not pre-filled")
	}
}

func TestPostWithoutValidCSRFIsRefused(t *testing.T) {
	f := newFixture(t, true)
	cookie, token := f.csrf()
	other, _ := f.csrf()
	form := func(tok string) url.Values {
		return url.Values{"identifier": {f.ident}, "password": {f.password}, csrfField: {tok}, "return_to": {"/"}}
	}
	origin := func(o string) http.Header { return http.Header{"Origin": {o}} }
	tests := []struct {
		name    string
		form    url.Values
		header  http.Header
		cookies []*http.Cookie
	}{
		{"no cookie, no field", form(""), nil, nil},
		{"field without cookie", form(token), nil, nil},
		{"cookie without field", form(""), nil, []*http.Cookie{cookie}},
		{"field from another cookie", form(other.Value), nil, []*http.Cookie{cookie}},
		{"foreign Origin", form(token), origin("https://evil.example"), []*http.Cookie{cookie}},
		{"null Origin", form(token), origin("null"), []*http.Cookie{cookie}},
		{"http Origin on https site", form(token), origin("http://example.com"), []*http.Cookie{cookie}},
	}
	for _, path := range []string{"/login", "/logout", "/consent"} {
		for _, tt := range tests {
			t.Run(path+" "+tt.name, func(t *testing.T) {
				resp, body := f.postRaw(path, tt.form, tt.header, tt.cookies...)
				if resp.StatusCode != http.StatusForbidden {
					t.Errorf("status %d, want 403", resp.StatusCode)
				}
				if text := visibleText(body); !strings.Contains(text, "请重新加载页面") {
					t.Errorf("page text %q does not say to reload", text)
				}
				if n := f.auth.callCount(); n != 0 {
					t.Errorf("Auth called %d times", n)
				}
				if len(f.sessions.revoked)+len(f.consents.grants) != 0 {
					t.Error("a session was revoked or consent granted")
				}
			})
		}
	}
	t.Run("same Origin accepted", func(t *testing.T) {
		resp, _ := f.postRaw("/login", form(token), origin("https://example.com"), cookie)
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("status %d, want 303", resp.StatusCode)
		}
	})
}

func TestLoginSucceeds(t *testing.T) {
	for _, secure := range []bool{true, false} {
		t.Run(fmt.Sprint("secure=", secure), func(t *testing.T) {
			f := newFixture(t, secure)
			rt := "/oauth2/auth?client_id=" + testClientID + "&redirect_uri=https%3A%2F%2Frp.example%2Fcb&state=a%2Fb"
			resp, _ := f.post("/login", url.Values{"identifier": {" " + f.ident + " "}, "password": {f.password}, "return_to": {rt}})
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("status %d, want 303", resp.StatusCode)
			}
			if got := resp.Header.Get("Location"); got != rt {
				t.Errorf("Location %q, want %q unchanged", got, rt)
			}
			c := findCookie(resp, sessionCookie)
			if c == nil {
				t.Fatal("no session cookie")
			}
			if !c.HttpOnly || c.Secure != secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.MaxAge != 0 {
				t.Errorf("cookie %+v: want HttpOnly, Secure=%v, SameSite=Lax, Path=/, no Max-Age", c, secure)
			}
			if s, err := f.sessions.Lookup(t.Context(), c.Value); err != nil || s.UserID != f.user.ID {
				t.Errorf("cookie does not name a session of the user: %v", err)
			}
			if len(f.sessions.created) != 1 {
				t.Fatalf("%d sessions created", len(f.sessions.created))
			}
			got := f.sessions.created[0]
			if got.userID != f.user.ID || strings.Join(got.amr, " ") != "pwd" || got.acr != f.user.AssuranceLevel {
				t.Errorf("Create(%+v), want user %s, amr [pwd], acr %d", got, f.user.ID, f.user.AssuranceLevel)
			}
			meta := f.auth.calls[0]
			if meta.IP != "192.0.2.1" || meta.ClientID != testClientID {
				t.Errorf("RequestMeta %+v", meta)
			}
			if findCookie(resp, csrfCookie) == nil {
				t.Error("CSRF token not renewed after sign-in")
			}
		})
	}
}

func TestLoginStartsANewSession(t *testing.T) {
	f := newFixture(t, true)
	old, oldToken := f.sessions.start(t, "someone-else")
	resp, _ := f.post("/login", url.Values{"identifier": {f.ident}, "password": {f.password}},
		&http.Cookie{Name: sessionCookie, Value: oldToken})
	c := findCookie(resp, sessionCookie)
	if c == nil || c.Value == oldToken {
		t.Fatalf("session cookie %v: want a new token", c)
	}
	if len(f.sessions.revoked) != 1 || f.sessions.revoked[0] != old.ID {
		t.Errorf("revoked %v, want the previous session %s", f.sessions.revoked, old.ID)
	}
}

func TestOpenRedirectsEndAtRoot(t *testing.T) {
	for _, rt := range []string{
		"//evil.example", "https://evil.example", `/\evil`, "/\t/evil.example", "evil.example",
		"javascript:alert(1)", "///evil.example", "/" + strings.Repeat("a", maxReturnTo),
		"/ok\r\nSet-Cookie: x=y",
	} {
		t.Run(rt[:min(len(rt), 24)], func(t *testing.T) {
			f := newFixture(t, true)
			resp, _ := f.post("/login", url.Values{"identifier": {f.ident}, "password": {f.password}, "return_to": {rt}})
			if got := resp.Header.Get("Location"); got != "/" {
				t.Errorf("Location %q, want /", got)
			}
		})
	}
}

func TestWrongPasswordAndUnknownAccountLookTheSame(t *testing.T) {
	f := newFixture(t, true)
	// Same identifier text in both, so the pages may differ only in what
	// the server says about them.
	f.auth.refuse["nobody"] = fmt.Errorf("no account: %w", users.ErrInvalidCredentials)
	wrongPassword := "not-" + f.password
	respWrong, wrong := f.post("/login?lang=en", url.Values{"identifier": {f.ident}, "password": {wrongPassword}})
	respUnknown, unknown := f.post("/login?lang=en", url.Values{"identifier": {"nobody"}, "password": {wrongPassword}})

	for _, resp := range []*http.Response{respWrong, respUnknown} {
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", resp.StatusCode)
		}
	}
	wrongText := strings.ReplaceAll(visibleText(wrong), f.ident, "X")
	unknownText := strings.ReplaceAll(visibleText(unknown), "nobody", "X")
	if wrongText != unknownText {
		t.Errorf("pages differ:\n%s\n%s", wrongText, unknownText)
	}
	if !strings.Contains(wrongText, "Wrong account or password") {
		t.Errorf("page text %q lacks the message", wrongText)
	}
	if !strings.Contains(wrong, `value="`+f.ident+`"`) {
		t.Error("typed identifier not kept")
	}
	if strings.Contains(wrong, wrongPassword) {
		t.Error("password echoed back")
	}
}

func TestLoginRefusals(t *testing.T) {
	until := time.Now().Add(10 * time.Minute)
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantText   string
	}{
		{"locked with time", fmt.Errorf("lock: %w", &users.LockedError{Until: until}), http.StatusTooManyRequests,
			"请在 " + unlockTime(until, time.Now()) + " 之后重试，或联系服务中心"},
		{"growing delay", &users.LockedError{Until: until.Add(-9*time.Minute - 50*time.Second), Delay: true}, http.StatusTooManyRequests,
			"尝试次数过多，请在 " + unlockTime(until.Add(-9*time.Minute-50*time.Second), time.Now()) + " 之后再试"},
		{"locked without time", users.ErrLocked, http.StatusTooManyRequests, "请稍后重试，或联系服务中心"},
		{"disabled", fmt.Errorf("x: %w", users.ErrAccountDisabled), http.StatusForbidden, "该账号已停用，请联系服务中心"},
		{"store down", fmt.Errorf("db: connection refused"), http.StatusInternalServerError, "服务暂时不可用"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, true)
			f.auth.refuse[f.ident] = tt.err
			resp, body := f.post("/login", url.Values{"identifier": {f.ident}, "password": {f.password}})
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if text := visibleText(body); !strings.Contains(text, tt.wantText) {
				t.Errorf("page text %q lacks %q", text, tt.wantText)
			}
			if strings.Contains(body, "connection refused") {
				t.Error("internal error shown to the person")
			}
			if findCookie(resp, sessionCookie) != nil {
				t.Error("session cookie set on refusal")
			}
		})
	}
}

func TestLockedSaysWhenInEnglish(t *testing.T) {
	f := newFixture(t, true)
	until := time.Now().Add(5 * time.Minute)
	f.auth.refuse[f.ident] = &users.LockedError{Until: until}
	resp, body := f.post("/login?lang=en", url.Values{"identifier": {f.ident}, "password": {f.password}})
	want := "Try again after " + unlockTime(until, time.Now()) + " or ask the service centre"
	if text := visibleText(body); !strings.Contains(text, want) {
		t.Errorf("page text %q lacks %q", text, want)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
}

func TestLoginInputRejectedBeforeAuth(t *testing.T) {
	tests := []struct {
		name, identifier, password, wantText string
	}{
		{"identifier too long", strings.Repeat("a", maxIdentifier+1), "pw", "What you entered is too long"},
		{"password too long", "alice", strings.Repeat("p", maxPassword+1), "What you entered is too long"},
		{"identifier not UTF-8", "ali\xffce", "pw", "characters that cannot be read"},
		{"password not UTF-8", "alice", "pw\xc3", "characters that cannot be read"},
		{"empty password", "alice", "", "Enter your account and password"},
		{"blank identifier", "   ", "pw", "Enter your account and password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, true)
			resp, body := f.post("/login?lang=en", url.Values{"identifier": {tt.identifier}, "password": {tt.password}})
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d, want 400", resp.StatusCode)
			}
			if text := visibleText(body); !strings.Contains(text, tt.wantText) {
				t.Errorf("page text %q lacks %q", text, tt.wantText)
			}
			if n := f.auth.callCount(); n != 0 {
				t.Errorf("Auth called %d times", n)
			}
		})
	}
}

func TestUnlockTime(t *testing.T) {
	now := time.Date(2025, 3, 1, 1, 0, 0, 0, time.UTC) // 09:00 in China
	tests := []struct {
		until time.Time
		want  string
	}{
		{now.Add(8 * time.Second), "09:00:08"},
		{now.Add(15 * time.Minute), "09:15"},
		{now.Add(15 * time.Hour), "2025-03-02 00:00"},
	}
	for _, tt := range tests {
		if got := unlockTime(tt.until, now); got != tt.want {
			t.Errorf("unlockTime(%v) = %q, want %q", tt.until, got, tt.want)
		}
	}
}
