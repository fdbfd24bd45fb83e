package oauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v3"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

func logoutURL(params url.Values) string { return "/oauth2/logout?" + params.Encode() }

func TestLogoutWithMatchingHintEndsSessionAndNotifiesClients(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		e := newLogoutEnv(t, d)
		ctx := context.Background()
		e.client("tax", func(c *Client) {
			c.BackchannelLogoutURI = "https://tax.example.gov/bc"
			c.PostLogoutRedirectURIs = []string{"https://tax.example.gov/bye"}
		})
		portal := e.client("portal", func(c *Client) {
			c.BackchannelLogoutURI = "https://portal.example.gov/bc"
			c.SubjectType = SubjectPairwise
		})
		e.client("quiet", nil) // no logout URI: nothing to send
		e.client("elsewhere", func(c *Client) { c.BackchannelLogoutURI = "https://elsewhere.example.gov/bc" })

		s, cookie := e.signIn()
		other, otherCookie := e.signIn()
		taxRefresh := e.grant(KindRefreshToken, "tax", s.ID)
		taxAccess := e.grant(KindAccessToken, "tax", s.ID)
		portalCode := e.grant(KindAuthorizeCode, "portal", s.ID)
		e.grant(KindAccessToken, "quiet", s.ID)
		otherRefresh := e.grant(KindRefreshToken, "elsewhere", other.ID)

		rec := e.do(httptest.NewRequest("GET", logoutURL(url.Values{
			"id_token_hint":            {e.idToken(AlgRS256, hintClaims("tax", s.ID))},
			"post_logout_redirect_uri": {"https://tax.example.gov/bye"},
			"state":                    {"st-123"},
		}), nil), cookie)

		if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "https://tax.example.gov/bye?state=st-123" {
			t.Fatalf("got %d to %q, want 303 to the registered URI with state", rec.Code, rec.Header().Get("Location"))
		}
		if e.alive(cookie) {
			t.Error("the browser session survived logout")
		}
		if !e.alive(otherCookie) {
			t.Error("another browser's session ended")
		}
		got := map[string]string{}
		for _, dl := range e.deliveries(s.ID) {
			got[dl.ClientID] = dl.Subject
		}
		want := map[string]string{"tax": s.UserID, "portal": e.p.subjectFor(portal, s.UserID)}
		if len(got) != len(want) || got["tax"] != want["tax"] || got["portal"] != want["portal"] || want["portal"] == s.UserID {
			t.Errorf("queued notifications (client → sub) = %v, want %v", got, want)
		}
		if n := len(e.deliveries(other.ID)); n != 0 {
			t.Errorf("%d notifications queued for the session that stayed", n)
		}
		for _, c := range []struct {
			tok    *Token
			active bool
		}{{taxRefresh, false}, {portalCode, false}, {taxAccess, true}, {otherRefresh, true}} {
			got, err := e.store.GetToken(ctx, c.tok.Kind, c.tok.Signature)
			if err != nil {
				t.Fatal(err)
			}
			if got.Active != c.active {
				t.Errorf("%s of %s: active = %v, want %v", c.tok.Kind, c.tok.ClientID, got.Active, c.active)
			}
		}
		events, err := e.audit.List(ctx, audit.Filter{Action: actionLogout, Subject: s.UserID})
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != 1 || events[0].ClientID != "tax" || events[0].Result != audit.ResultSuccess {
			t.Errorf("audit events: %+v", events)
		}
	})
}

func TestLogoutNeverRedirectsToAnUnregisteredURI(t *testing.T) {
	e := newLogoutEnv(t, dbtest.Open(t, db.SQLite))
	e.client("tax", func(c *Client) { c.PostLogoutRedirectURIs = []string{"https://tax.example.gov/bye"} })
	e.client("portal", func(c *Client) { c.PostLogoutRedirectURIs = []string{"https://portal.example.gov/bye"} })
	hint := func() string { return e.idToken(AlgRS256, hintClaims("tax", "no-such-session")) }
	cases := []struct {
		name   string
		params url.Values
		want   string // "" means no redirect
	}{
		{"registered, client from client_id", url.Values{"client_id": {"tax"}, "post_logout_redirect_uri": {"https://tax.example.gov/bye"}}, "https://tax.example.gov/bye"},
		{"registered, client from id_token_hint", url.Values{"id_token_hint": {hint()}, "post_logout_redirect_uri": {"https://tax.example.gov/bye"}}, "https://tax.example.gov/bye"},
		{"unregistered", url.Values{"client_id": {"tax"}, "post_logout_redirect_uri": {"https://evil.example/bye"}}, ""},
		{"unregistered, with hint", url.Values{"id_token_hint": {hint()}, "post_logout_redirect_uri": {"https://evil.example/bye"}}, ""},
		{"another client's URI", url.Values{"client_id": {"tax"}, "post_logout_redirect_uri": {"https://portal.example.gov/bye"}}, ""},
		{"no client named", url.Values{"post_logout_redirect_uri": {"https://tax.example.gov/bye"}}, ""},
		{"unknown client", url.Values{"client_id": {"nobody"}, "post_logout_redirect_uri": {"https://tax.example.gov/bye"}}, ""},
		{"prefix of a registered URI", url.Values{"client_id": {"tax"}, "post_logout_redirect_uri": {"https://tax.example.gov/bye/../../evil"}}, ""},
		{"extra query", url.Values{"client_id": {"tax"}, "post_logout_redirect_uri": {"https://tax.example.gov/bye?next=https://evil.example"}}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := e.do(httptest.NewRequest("GET", logoutURL(c.params), nil), "")
			loc := rec.Header().Get("Location")
			if c.want != "" {
				if rec.Code != http.StatusSeeOther || loc != c.want {
					t.Fatalf("got %d to %q, want a redirect to %s", rec.Code, loc, c.want)
				}
				return
			}
			if loc != "" || rec.Code != http.StatusOK {
				t.Fatalf("got %d to %q, want the signed-out page", rec.Code, loc)
			}
			page := rec.Body.String()
			if uri := c.params.Get("post_logout_redirect_uri"); strings.Contains(page, html.EscapeString(uri)) || strings.Contains(page, "refresh") {
				t.Fatalf("the page leads to the refused URI: %s", page)
			}
		})
	}
}

func TestLogoutRefusesBadIDTokenHints(t *testing.T) {
	e := newLogoutEnv(t, dbtest.Open(t, db.SQLite))
	e.client("tax", func(c *Client) { c.PostLogoutRedirectURIs = []string{"https://tax.example.gov/bye"} })
	e.client("portal", nil)
	s, cookie := e.signIn()
	ours, err := e.p.signingKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	impostor := &jose.JSONWebKey{Key: foreign, KeyID: ours.KeyID, Algorithm: AlgRS256} // same kid, other key
	with := func(k string, v any) map[string]any {
		c := hintClaims("tax", s.ID)
		c[k] = v
		return c
	}
	cases := []struct {
		name    string
		hint    string
		client  string
		wantErr string
	}{
		{"signed by another key", signClaims(t, jose.RS256, impostor, hintClaims("tax", s.ID)), "", "signature"},
		{"another issuer", e.idToken(AlgRS256, with("iss", "https://evil.example")), "", "issued by someone else"},
		{"client_id not in aud", e.idToken(AlgRS256, hintClaims("tax", s.ID)), "portal", "audience"},
		{"issued to an unknown client", e.idToken(AlgRS256, with("azp", "nobody")), "", "known client"},
		{"not a JWT", "not.a.jwt", "", "signed JWT"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			params := url.Values{"id_token_hint": {c.hint}, "post_logout_redirect_uri": {"https://tax.example.gov/bye"}}
			if c.client != "" {
				params.Set("client_id", c.client)
			}
			rec := e.do(httptest.NewRequest("GET", logoutURL(params), nil), cookie)
			if rec.Code != http.StatusBadRequest || rec.Header().Get("Location") != "" || !strings.Contains(rec.Body.String(), c.wantErr) {
				t.Fatalf("got %d to %q: %s", rec.Code, rec.Header().Get("Location"), rec.Body.String())
			}
			if !e.alive(cookie) {
				t.Fatal("a refused request ended the session")
			}
		})
	}

	t.Run("expired but genuine hint is accepted", func(t *testing.T) {
		expired := with("exp", time.Now().Add(-24*time.Hour).Unix())
		expired["iat"] = time.Now().Add(-25 * time.Hour).Unix()
		params := url.Values{"id_token_hint": {e.idToken(AlgES256, expired)}, "post_logout_redirect_uri": {"https://tax.example.gov/bye"}}
		rec := e.do(httptest.NewRequest("GET", logoutURL(params), nil), cookie)
		if rec.Code != http.StatusSeeOther || e.alive(cookie) {
			t.Fatalf("got %d, session alive %v", rec.Code, e.alive(cookie))
		}
	})
}

var hiddenInputRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// formOf reads the hidden fields of a page's form.
func formOf(page string) url.Values {
	form := url.Values{}
	for _, m := range hiddenInputRE.FindAllStringSubmatch(page, -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	return form
}

func postForm(form url.Values, origin string) *http.Request {
	req := httptest.NewRequest("POST", "/oauth2/logout", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	return req
}

func TestLogoutAsksForConfirmation(t *testing.T) {
	e := newLogoutEnv(t, dbtest.Open(t, db.SQLite))
	e.client("tax", func(c *Client) { c.PostLogoutRedirectURIs = []string{"https://tax.example.gov/bye"} })
	s, cookie := e.signIn()
	_, otherCookie := e.signIn()
	params := url.Values{"client_id": {"tax"}, "post_logout_redirect_uri": {"https://tax.example.gov/bye"}, "state": {"st-9"}, "ui_locales": {"en"}}

	ask := func(t *testing.T, rec *httptest.ResponseRecorder) url.Values {
		t.Helper()
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `action="/oauth2/logout"`) {
			t.Fatalf("want the confirmation page, got %d: %s", rec.Code, rec.Body.String())
		}
		if !e.alive(cookie) {
			t.Fatal("the session ended before the person confirmed")
		}
		return formOf(rec.Body.String())
	}
	cases := []struct {
		name string
		req  func() *http.Request
	}{
		{"no id_token_hint", func() *http.Request { return httptest.NewRequest("GET", logoutURL(params), nil) }},
		{"hint of another session", func() *http.Request {
			p := url.Values{"id_token_hint": {e.idToken(AlgRS256, hintClaims("tax", "an-older-session"))}}
			return httptest.NewRequest("GET", logoutURL(p), nil)
		}},
		{"relying party's own POST", func() *http.Request { return postForm(params, "https://tax.example.gov") }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { ask(t, e.do(c.req(), cookie)) })
	}

	form := ask(t, e.do(httptest.NewRequest("GET", logoutURL(params), nil), cookie))
	t.Run("form carries the request on", func(t *testing.T) {
		for k := range params {
			if form.Get(k) != params.Get(k) {
				t.Errorf("%s = %q, want %q", k, form.Get(k), params.Get(k))
			}
		}
	})
	forged := func(k, v string) url.Values {
		f := url.Values{}
		for key, vals := range form {
			f[key] = vals
		}
		f.Set(k, v)
		return f
	}
	refused := []struct {
		name   string
		form   url.Values
		origin string
		cookie string
	}{
		{"wrong CSRF token", forged("csrf_token", "x"), testIssuer, cookie},
		{"no CSRF token", forged("csrf_token", ""), testIssuer, cookie},
		{"posted from another site", form, "https://evil.example", cookie},
		{"token of another session", form, testIssuer, otherCookie},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			rec := e.do(postForm(c.form, c.origin), c.cookie)
			if rec.Code != http.StatusOK || rec.Header().Get("Location") != "" || !e.alive(cookie) || !e.alive(otherCookie) {
				t.Fatalf("a forged confirmation was accepted: %d %q", rec.Code, rec.Header().Get("Location"))
			}
		})
	}
	t.Run("confirmed", func(t *testing.T) {
		rec := e.do(postForm(form, testIssuer), cookie)
		if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "https://tax.example.gov/bye?state=st-9" {
			t.Fatalf("got %d to %q", rec.Code, rec.Header().Get("Location"))
		}
		if e.alive(cookie) {
			t.Fatalf("session %s survived the confirmed logout", s.ID)
		}
	})
}

func TestLogoutConfirmationAllowsTheRedirectAfterTheForm(t *testing.T) {
	e := newLogoutEnv(t, dbtest.Open(t, db.SQLite))
	e.client("tax", func(c *Client) { c.PostLogoutRedirectURIs = []string{"https://tax.example.gov/bye"} })
	_, cookie := e.signIn()
	rec := e.do(httptest.NewRequest("GET", logoutURL(url.Values{"client_id": {"tax"}, "post_logout_redirect_uri": {"https://tax.example.gov/bye"}}), nil), cookie)
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' https://tax.example.gov;") {
		t.Fatalf("CSP %q does not let the confirmed form continue to the client", csp)
	}
}

func TestLogoutLoadsFrontChannelFrames(t *testing.T) {
	e := newLogoutEnv(t, dbtest.Open(t, db.SQLite))
	e.client("tax", func(c *Client) { c.PostLogoutRedirectURIs = []string{"https://tax.example.gov/bye"} })
	e.client("news", func(c *Client) { c.FrontchannelLogoutURI = "https://news.example.gov/fc?app=1" })
	s, cookie := e.signIn()
	e.grant(KindAccessToken, "tax", s.ID)
	e.grant(KindAccessToken, "news", s.ID)

	rec := e.do(httptest.NewRequest("GET", logoutURL(url.Values{
		"id_token_hint": {e.idToken(AlgRS256, hintClaims("tax", s.ID))}, "post_logout_redirect_uri": {"https://tax.example.gov/bye"}, "state": {"s1"},
	}), nil), cookie)
	page := rec.Body.String()
	frame := html.EscapeString("https://news.example.gov/fc?" + url.Values{"app": {"1"}, "iss": {testIssuer}, "sid": {s.ID}}.Encode())
	if rec.Code != http.StatusOK || !strings.Contains(page, `<iframe src="`+frame+`"`) {
		t.Fatalf("got %d without the front-channel frame %s: %s", rec.Code, frame, page)
	}
	if !strings.Contains(page, html.EscapeString("url=https://tax.example.gov/bye?state=s1")) {
		t.Errorf("the page does not move on to the client: %s", page)
	}
	csp := rec.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "frame-src https://news.example.gov") || strings.Contains(csp, "tax.example.gov") {
		t.Errorf("CSP %q, want frame-src of the front-channel origin only", csp)
	}
	if e.alive(cookie) {
		t.Error("session survived")
	}
}

func TestLogoutWithoutSessionOrConfirmationShowsSignedOut(t *testing.T) {
	e := newLogoutEnv(t, dbtest.Open(t, db.SQLite))
	rec := e.do(httptest.NewRequest("GET", "/oauth2/logout?ui_locales=en", nil), "")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), logoutTexts["en"].DoneTitle) {
		t.Fatalf("got %d: %s", rec.Code, rec.Body.String())
	}
}

func TestDiscoveryAdvertisesLogout(t *testing.T) {
	e := newLogoutEnv(t, dbtest.Open(t, db.SQLite))
	rec := e.do(httptest.NewRequest("GET", "/.well-known/openid-configuration", nil), "")
	var doc map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["end_session_endpoint"] != testIssuer+"/oauth2/logout" {
		t.Errorf("end_session_endpoint = %v", doc["end_session_endpoint"])
	}
	for _, k := range []string{"backchannel_logout_supported", "backchannel_logout_session_supported", "frontchannel_logout_supported", "frontchannel_logout_session_supported"} {
		if doc[k] != true {
			t.Errorf("%s = %v", k, doc[k])
		}
	}
}

func TestLogoutLang(t *testing.T) {
	for in, want := range map[string]string{"": "zh-CN", "en": "en", "en-GB zh-CN": "en", "fr zh-TW en": "zh-CN", "fr": "zh-CN", "EN-us": "en"} {
		if got := logoutLang(in); got != want {
			t.Errorf("logoutLang(%q) = %q, want %q", in, got, want)
		}
	}
	for _, lang := range []string{"zh-CN", "en"} {
		if slices.Contains([]string{logoutTexts[lang].Submit, logoutTexts[lang].DoneTitle, logoutTexts[lang].ErrorTitle}, "") {
			t.Errorf("logout pages lack %s strings", lang)
		}
	}
}
