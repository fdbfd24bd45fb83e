package ui

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// authRequest is an authorization request as the OAuth handler would send
// it to the consent page.
const authRequest = "/oauth2/auth?client_id=" + testClientID +
	"&redirect_uri=https%3A%2F%2Frp.example%2Fcb&scope=openid+profile+tax.read+profile&state=s1"

func TestConsentWithoutSessionGoesToLogin(t *testing.T) {
	f := newFixture(t, true)
	for _, tc := range []struct {
		name string
		do   func() *http.Response
	}{
		{"GET", func() *http.Response {
			resp, _ := f.get("/consent?return_to=" + url.QueryEscape(authRequest))
			return resp
		}},
		{"POST", func() *http.Response {
			resp, _ := f.post("/consent", url.Values{"return_to": {authRequest}, "decision": {"allow"}})
			return resp
		}},
		{"GET with a dead session", func() *http.Response {
			resp, _ := f.get("/consent?return_to="+url.QueryEscape(authRequest), &http.Cookie{Name: sessionCookie, Value: "expired"})
			return resp
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := tc.do()
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("status %d, want 303", resp.StatusCode)
			}
			loc, err := url.Parse(resp.Header.Get("Location"))
			if err != nil || loc.Path != "/login" {
				t.Fatalf("Location %q, want /login", resp.Header.Get("Location"))
			}
			back, err := url.Parse(loc.Query().Get("return_to"))
			if err != nil || back.Path != "/consent" || back.Query().Get("return_to") != authRequest {
				t.Errorf("login return_to %q does not lead back to the consent page", loc.Query().Get("return_to"))
			}
			if len(f.consents.grants) != 0 {
				t.Error("consent granted without a session")
			}
		})
	}
}

func TestConsentPageShowsClientAndScopes(t *testing.T) {
	f := newFixture(t, true)
	_, token := f.sessions.start(t, f.user.ID)
	session := &http.Cookie{Name: sessionCookie, Value: token}
	tests := []struct {
		lang string
		want []string
	}{
		{"zh-CN", []string{"“" + testClientName + "”请求获得以下权限", "确认你的身份", "姓名和用户名", "tax.read", "记住我的选择", "允许", "拒绝"}},
		{"en", []string{testClientName + " is asking for the following access", "Confirm who you are", "Your name and username", "tax.read", "Remember my choice", "Allow", "Deny"}},
	}
	for _, tt := range tests {
		t.Run(tt.lang, func(t *testing.T) {
			resp, body := f.get("/consent?lang="+tt.lang+"&return_to="+url.QueryEscape(authRequest), session)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			text := visibleText(body)
			for _, w := range tt.want {
				if !strings.Contains(text, w) {
					t.Errorf("page text %q lacks %q", text, w)
				}
			}
			if n := strings.Count(body, "<li>"); n != 3 {
				t.Errorf("%d scopes listed, want 3 (duplicates folded)", n)
			}
		})
	}
}

func TestConsentPageWithUnknownClient(t *testing.T) {
	f := newFixture(t, true)
	_, token := f.sessions.start(t, f.user.ID)
	resp, body := f.get("/consent?lang=en&return_to="+url.QueryEscape("/oauth2/auth?client_id=nope&scope=openid"),
		&http.Cookie{Name: sessionCookie, Value: token})
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status %d, want 400", resp.StatusCode)
	}
	if text := visibleText(body); !strings.Contains(text, "not registered") {
		t.Errorf("page text %q does not explain", text)
	}
}

func TestConsentAllow(t *testing.T) {
	for _, remember := range []bool{true, false} {
		f := newFixture(t, true)
		_, token := f.sessions.start(t, f.user.ID)
		form := url.Values{"return_to": {authRequest}, "decision": {"allow"}}
		if remember {
			form.Set("remember", "on")
		}
		resp, _ := f.post("/consent", form, &http.Cookie{Name: sessionCookie, Value: token})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != authRequest {
			t.Errorf("status %d Location %q, want 303 to %q", resp.StatusCode, resp.Header.Get("Location"), authRequest)
		}
		if len(f.consents.grants) != 1 {
			t.Fatalf("%d grants, want 1", len(f.consents.grants))
		}
		g := f.consents.grants[0]
		want := []string{"openid", "profile", "tax.read"}
		if g.userID != f.user.ID || g.clientID != testClientID || !slices.Equal(g.scopes, want) || g.remember != remember {
			t.Errorf("GrantConsent(%+v), want user %s client %s scopes %v remember %v", g, f.user.ID, testClientID, want, remember)
		}
	}
}

func TestConsentDeny(t *testing.T) {
	tests := []struct{ returnTo, want string }{
		{authRequest, authRequest + "&consent=denied"},
		{"/oauth2/auth?client_id=" + testClientID, "/oauth2/auth?client_id=" + testClientID + "&consent=denied"},
	}
	for _, tt := range tests {
		f := newFixture(t, true)
		_, token := f.sessions.start(t, f.user.ID)
		resp, _ := f.post("/consent", url.Values{"return_to": {tt.returnTo}, "decision": {"deny"}, "remember": {"on"}},
			&http.Cookie{Name: sessionCookie, Value: token})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != tt.want {
			t.Errorf("status %d Location %q, want 303 to %q", resp.StatusCode, resp.Header.Get("Location"), tt.want)
		}
		if len(f.consents.grants) != 0 {
			t.Error("deny granted consent")
		}
	}
}

// The consent and sign-in pages show the client's logo and department;
// a logo that is not a PNG or JPEG data URI is never put in the page.
func TestClientLogoAndDepartment(t *testing.T) {
	const png = "data:image/png;base64,iVBORw0KGgo="
	tests := []struct {
		logo, wantImg string
	}{
		{png, `src="` + png + `"`},
		{"javascript:alert(1)", ""},
		{"https://cdn.example.org/logo.png", ""},
	}
	for _, tc := range tests {
		f := newFixture(t, true)
		p, err := New(Config{
			Auth: f.auth, Sessions: f.sessions, Consents: f.consents, SecureCookies: true,
			Clients: fakeClients{testClientID: {ID: testClientID, Name: testClientName, Logo: tc.logo, Department: "Tax Bureau"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		f.pages, f.mux = p, http.NewServeMux()
		p.Register(f.mux)
		_, token := f.sessions.start(t, f.user.ID)
		session := &http.Cookie{Name: sessionCookie, Value: token}
		for _, page := range []string{"/consent?lang=en&return_to=" + url.QueryEscape(authRequest), "/login?lang=en&return_to=" + url.QueryEscape(authRequest)} {
			_, body := f.get(page, session)
			if !strings.Contains(visibleText(body), "Department: Tax Bureau") {
				t.Errorf("%s: no department in %q", page, visibleText(body))
			}
			if hasImg := strings.Contains(body, `<img src="data:image/png`); hasImg != (tc.wantImg != "") ||
				(tc.wantImg != "" && !strings.Contains(body, tc.wantImg)) || strings.Contains(body, "javascript:") || strings.Contains(body, "cdn.example.org") {
				t.Errorf("%s with logo %q: wrong image in the page", page, tc.logo)
			}
		}
	}
}
