package main

// End-to-end test of the account centre: a person signed in on two
// browsers sees both, revokes an application's access, and signs the other
// browser out, which its department system hears of.

import (
	"context"
	"crypto/rand"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/govsso/sso/db"
)

func TestAccountCentreEndToEnd(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) { testAccountCentre(t, dialect) })
	}
}

func testAccountCentre(t *testing.T, dialect db.Dialect) {
	te := newTestEnv(t, dialect)
	password := "a long test passphrase " + rand.Text()
	if r := te.run(t, password+"\n", "user", "create", "--username", "alice", "--password-stdin", "--name", "Alice"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	rcv := &logoutReceiver{tokens: map[string][]string{}, got: make(chan string, 16)}
	rpServer := httptest.NewServer(rcv)
	defer rpServer.Close()
	cb := "http://127.0.0.1:9/cb"
	taxSecret := createClient(t, te, "--id", "tax", "--name", "Tax Office", "--redirect-uri", cb, "--scope", "openid profile offline_access")
	portalSecret := createClient(t, te, "--id", "portal", "--name", "Portal", "--first-party", "--redirect-uri", cb, "--scope", "openid profile",
		"--backchannel-logout-uri", rpServer.URL+"/portal/logout")
	issuer := startServer(t, te)

	// Browser A uses the portal; browser B lets the tax office in and
	// remembers the choice.
	a, b := browser(t), browser(t)
	portal := newRP(t, issuer, "portal", portalSecret, oidc.ScopeOpenID, "profile")
	_, portalID := portal.login(a, "alice", password)
	var sidA struct {
		SID string `json:"sid"`
	}
	portalID.Claims(&sidA)
	signIn(t, b, issuer, password)
	tax := newRP(t, issuer, "tax", taxSecret, oidc.ScopeOpenID, "profile", oidc.ScopeOfflineAccess)
	taxTok := consentRemembering(t, tax, b)

	page := accountPage(t, b, issuer)
	text := pageText(page)
	for _, want := range []string{"My account", "Alice", "alice", "Where you are signed in", "(this device)", "Tax Office", "Recent activity", "Signed in"} {
		if !strings.Contains(text, want) {
			t.Errorf("account page does not show %q: %s", want, text)
		}
	}
	if strings.Count(page, `name="session"`) != 1 {
		t.Errorf("want a sign-out form for the one other session: %s", text)
	}

	t.Run("revoking the tax office ends its tokens", func(t *testing.T) {
		resp := submit(t, b, issuer, "/account/apps/revoke", page, url.Values{"client": {"tax"}})
		after := pageText(body(t, resp))
		if strings.Contains(after, "Tax Office") || !strings.Contains(after, "You have not let any application remember your choice.") {
			t.Errorf("tax office still listed: %s", after)
		}
		if _, err := tax.cfg.TokenSource(context.Background(), &oauth2.Token{RefreshToken: taxTok.RefreshToken}).Token(); err == nil {
			t.Error("the refresh token still works after revocation")
		}
		if !strings.Contains(after, "Revoked an application's access") {
			t.Errorf("activity does not show the revocation: %s", after)
		}
	})

	t.Run("signing out the other browser tells its department system", func(t *testing.T) {
		page := accountPage(t, b, issuer)
		resp := submit(t, b, issuer, "/account/sessions/sign-out", page, url.Values{"session": {sidA.SID}})
		if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/account" {
			t.Fatalf("sign-out answered %d at %s", resp.StatusCode, resp.Request.URL)
		}
		if strings.Contains(body(t, resp), `name="session"`) {
			t.Error("the other session is still listed")
		}
		rcv.waitFor(t, "/portal/logout")
		resp, err := a.Get(issuer + "/account")
		if err != nil {
			t.Fatal(err)
		}
		if page := body(t, resp); !strings.Contains(page, `name="password"`) {
			t.Errorf("browser A still signed in: %.300s", page)
		}
	})

	t.Run("someone else's session cannot be signed out", func(t *testing.T) {
		if r := te.run(t, password+"\n", "user", "create", "--username", "bob", "--password-stdin", "--name", "Bob"); r.code != 0 {
			t.Fatal(r.stderr)
		}
		c := browser(t)
		_, bobID := portal.login(c, "bob", password)
		var sidBob struct {
			SID string `json:"sid"`
		}
		bobID.Claims(&sidBob)
		page := accountPage(t, b, issuer)
		resp := submit(t, b, issuer, "/account/sessions/sign-out", page, url.Values{"session": {sidBob.SID}})
		body(t, resp)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("status %d, want 403", resp.StatusCode)
		}
		if text := pageText(accountPage(t, c, issuer)); !strings.Contains(text, "Bob") {
			t.Errorf("Bob was signed out: %s", text)
		}
	})
}

// signIn signs browser b in at the sign-in page.
func signIn(t *testing.T, b *http.Client, issuer, password string) {
	t.Helper()
	resp, err := b.Get(issuer + "/?lang=en")
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, resp)
	if !strings.Contains(page, `name="password"`) {
		t.Fatalf("/ did not lead to the sign-in page: %.300s", page)
	}
	resp = submit(t, b, issuer, "/login", page, url.Values{"identifier": {"alice"}, "password": {password}})
	if page := body(t, resp); resp.Request.URL.Path != "/account" {
		t.Fatalf("sign-in ended at %s: %.300s", resp.Request.URL, page)
	}
}

// consentRemembering runs the code flow for a signed-in browser, ticking
// "remember my choice" on the consent page.
func consentRemembering(t *testing.T, r *rp, b *http.Client) *oauth2.Token {
	t.Helper()
	state, verifier := rand.Text(), oauth2.GenerateVerifier()
	resp, err := b.Get(r.cfg.AuthCodeURL(state, oidc.Nonce(rand.Text()), oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, resp)
	if !strings.Contains(page, `name="decision"`) {
		t.Fatalf("no consent page: %.300s", page)
	}
	resp = submit(t, b, r.issuer, "/consent", page, url.Values{"decision": {"allow"}, "remember": {"on"}})
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil || loc.Query().Get("state") != state {
		t.Fatalf("consent answered %d to %v", resp.StatusCode, loc)
	}
	tok, err := r.cfg.Exchange(context.Background(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// accountPage fetches the account centre in English.
func accountPage(t *testing.T, b *http.Client, issuer string) string {
	t.Helper()
	resp, err := b.Get(issuer + "/account?lang=en")
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, resp)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/account" {
		t.Fatalf("account page answered %d at %s", resp.StatusCode, resp.Request.URL)
	}
	return page
}

// pageText is the page without markup, roughly as a person reads it.
func pageText(page string) string {
	return strings.Join(strings.Fields(html.UnescapeString(markup.ReplaceAllString(page, " "))), " ")
}

var markup = regexp.MustCompile(`(?s)<[^>]*>`)
