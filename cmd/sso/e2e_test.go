package main

// End-to-end tests of the OpenID Connect provider with relying-party code
// nobody here wrote: golang.org/x/oauth2 and github.com/coreos/go-oidc/v3,
// against a real `sso serve`, signing in through the HTML pages.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

// rp is one relying party: its OAuth configuration and a browser of its own.
type rp struct {
	t        *testing.T
	issuer   string
	cfg      oauth2.Config
	provider *oidc.Provider
}

// startServer runs `sso serve` on a free loopback port whose URL is the issuer.
func startServer(t *testing.T, te testEnv) string {
	t.Helper()
	base, _ := startServerWithLog(t, te)
	return base
}

// startServerWithLog starts the server as startServer does and also returns
// what it logs.
func startServerWithLog(t *testing.T, te testEnv) (string, *syncBuffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	te["SSO_ADDR"] = addr
	te["SSO_ISSUER"] = "http://" + addr
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	out := &syncBuffer{}
	go func() {
		done <- run(ctx, []string{"serve"}, env{stdin: strings.NewReader(""), stdout: out, stderr: out, getenv: func(k string) string { return te[k] }})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	base := "http://" + addr
	for i := 0; i < 200; i++ {
		if resp, err := http.Get(base + "/healthz/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base, out
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("server not ready: %s", out.String())
	return "", nil
}

// browser is a cookie-keeping HTTP client that stops at the relying party's
// callback instead of following it.
func browser(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.Path, "/cb") {
			return http.ErrUseLastResponse
		}
		return nil
	}}
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// submit fills the form on page with its hidden fields plus extra, posts it
// to action, and returns the final response.
func submit(t *testing.T, b *http.Client, base, action string, page string, extra url.Values) *http.Response {
	t.Helper()
	form := url.Values{}
	for _, m := range hiddenInput.FindAllStringSubmatch(page, -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	for k, v := range extra {
		form[k] = v
	}
	req, _ := http.NewRequest("POST", base+action, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	resp, err := b.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// authorize runs the browser through /oauth2/auth — signing in and
// consenting when the server asks — and returns the callback's query.
func (r *rp) authorize(b *http.Client, authURL, username, password string) url.Values {
	t := r.t
	t.Helper()
	resp, err := b.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusSeeOther {
			loc, _ := resp.Location()
			resp.Body.Close()
			if strings.HasPrefix(loc.Path, "/cb") {
				return loc.Query()
			}
			t.Fatalf("unexpected redirect to %s", loc)
		}
		page := body(t, resp)
		switch {
		case strings.Contains(page, `name="password"`):
			resp = submit(t, b, r.issuer, "/login", page, url.Values{"identifier": {username}, "password": {password}})
		case strings.Contains(page, `name="decision"`):
			resp = submit(t, b, r.issuer, "/consent", page, url.Values{"decision": {"allow"}})
		default:
			t.Fatalf("unexpected page (%d): %.500s", resp.StatusCode, page)
		}
	}
	t.Fatal("too many steps")
	return nil
}

func newRP(t *testing.T, issuer, id, secret string, scopes ...string) *rp {
	p, err := oidc.NewProvider(context.Background(), issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	return &rp{t: t, issuer: issuer, provider: p, cfg: oauth2.Config{
		ClientID: id, ClientSecret: secret, Endpoint: p.Endpoint(),
		RedirectURL: "http://127.0.0.1:9/cb", Scopes: scopes,
	}}
}

// login runs the code flow with PKCE and returns verified tokens.
func (r *rp) login(b *http.Client, username, password string) (*oauth2.Token, *oidc.IDToken) {
	t := r.t
	t.Helper()
	state, nonce, verifier := rand.Text(), rand.Text(), oauth2.GenerateVerifier()
	q := r.authorize(b, r.cfg.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), username, password)
	if q.Get("state") != state || q.Get("code") == "" {
		t.Fatalf("callback: %v", q)
	}
	tok, err := r.cfg.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := r.provider.Verifier(&oidc.Config{ClientID: r.cfg.ClientID}).Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("id token: %v", err)
	}
	if idt.Nonce != nonce {
		t.Fatalf("nonce %q, want %q", idt.Nonce, nonce)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Fatalf("at_hash: %v", err)
	}
	return tok, idt
}

func (r *rp) introspect(asID, asSecret, token string) map[string]any {
	r.t.Helper()
	req, _ := http.NewRequest("POST", r.issuer+"/oauth2/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(asID, asSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	var out map[string]any
	json.Unmarshal([]byte(body(r.t, resp)), &out)
	return out
}

func createClient(t *testing.T, te testEnv, args ...string) string {
	t.Helper()
	r := te.run(t, "", append([]string{"client", "create", "--json"}, args...)...)
	if r.code != 0 {
		t.Fatalf("client create: %s", r.stderr)
	}
	var c map[string]any
	json.Unmarshal([]byte(r.stdout), &c)
	s, _ := c["client_secret"].(string)
	return s
}

func TestOpenIDConnectEndToEnd(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) { testOpenIDConnect(t, dialect) })
	}
}

func testOpenIDConnect(t *testing.T, dialect db.Dialect) {
	te := newTestEnv(t, dialect)
	if r := te.run(t, "a long test passphrase\n", "user", "create", "--username", "alice", "--password-stdin", "--name", "Alice", "--phone", "13812345678", "--email", "alice@example.org"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	cb := "http://127.0.0.1:9/cb"
	taxSecret := createClient(t, te, "--id", "tax", "--name", "税务局", "--redirect-uri", cb, "--scope", "openid profile email phone offline_access")
	portalSecret := createClient(t, te, "--id", "portal", "--name", "Portal", "--first-party", "--redirect-uri", cb, "--scope", "openid profile", "--id-token-alg", "ES256")
	createClient(t, te, "--id", "app", "--public", "--redirect-uri", cb, "--scope", "openid profile offline_access")
	ccSecret := createClient(t, te, "--id", "batch", "--grant-type", "client_credentials", "--scope", "reports")
	issuer := startServer(t, te)
	ctx := context.Background()

	tax := newRP(t, issuer, "tax", taxSecret, oidc.ScopeOpenID, "profile", "email", "phone", oidc.ScopeOfflineAccess)
	b := browser(t)
	tok, idt := tax.login(b, "alice", "a long test passphrase")
	var claims struct {
		ACR string   `json:"acr"`
		AMR []string `json:"amr"`
		SID string   `json:"sid"`
		AZP string   `json:"azp"`
	}
	idt.Claims(&claims)
	if claims.ACR != "1" || len(claims.AMR) == 0 || claims.SID == "" || claims.AZP != "tax" {
		t.Fatalf("id token claims: %+v", claims)
	}

	t.Run("userinfo", func(t *testing.T) {
		ui, err := tax.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			t.Fatal(err)
		}
		var c map[string]any
		ui.Claims(&c)
		if ui.Subject != idt.Subject || c["name"] != "Alice" || c["email"] != "alice@example.org" || c["phone_number"] != "+8613812345678" {
			t.Fatalf("userinfo: %v", c)
		}
	})

	t.Run("refresh rotates and reuse revokes the grant", func(t *testing.T) {
		fresh, err := tax.cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		if err != nil || fresh.RefreshToken == "" || fresh.RefreshToken == tok.RefreshToken {
			t.Fatalf("refresh: %v", err)
		}
		if _, err := tax.cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
			t.Fatal("the rotated refresh token was accepted again")
		}
		if got := tax.introspect("tax", taxSecret, fresh.AccessToken); got["active"] != false {
			t.Fatalf("after reuse the grant's new access token is still active: %v", got)
		}
		if _, err := tax.cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: fresh.RefreshToken}).Token(); err == nil {
			t.Fatal("after reuse the grant's new refresh token still works")
		}
	})

	t.Run("single sign-on for a second client", func(t *testing.T) {
		portal := newRP(t, issuer, "portal", portalSecret, oidc.ScopeOpenID, "profile")
		state := rand.Text()
		resp, err := b.Get(portal.cfg.AuthCodeURL(state, oidc.Nonce(rand.Text())))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := resp.Location()
		if loc == nil || loc.Query().Get("code") == "" {
			t.Fatalf("second client did not get a code without signing in: %d %v", resp.StatusCode, loc)
		}
		tok, err := portal.cfg.Exchange(ctx, loc.Query().Get("code"))
		if err != nil {
			t.Fatal(err)
		}
		idt, err := portal.provider.Verifier(&oidc.Config{ClientID: "portal", SupportedSigningAlgs: []string{"ES256"}}).Verify(ctx, tok.Extra("id_token").(string))
		if err != nil {
			t.Fatalf("ES256 id token: %v", err)
		}
		if idt.Subject == "" {
			t.Fatal("no subject")
		}
	})

	t.Run("public client with PKCE", func(t *testing.T) {
		app := newRP(t, issuer, "app", "", oidc.ScopeOpenID, "profile")
		app.cfg.Endpoint.AuthStyle = oauth2.AuthStyleInParams
		if _, idt := app.login(b, "alice", "a long test passphrase"); idt.Subject == "" {
			t.Fatal("no subject")
		}
	})

	t.Run("prompt=none without a session", func(t *testing.T) {
		q := tax.authorize(browser(t), tax.cfg.AuthCodeURL("state-123456", oauth2.SetAuthURLParam("prompt", "none")), "", "")
		if q.Get("error") != "login_required" {
			t.Fatalf("got %v", q)
		}
	})

	t.Run("acr_values above the account's level is refused, not downgraded", func(t *testing.T) {
		q := tax.authorize(b, tax.cfg.AuthCodeURL(rand.Text(), oauth2.SetAuthURLParam("acr_values", "2"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "alice", "a long test passphrase")
		if q.Get("error") != "unmet_authentication_requirements" {
			t.Fatalf("got %v", q)
		}
		q = tax.authorize(b, tax.cfg.AuthCodeURL(rand.Text(), oauth2.SetAuthURLParam("acr_values", "1"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "alice", "a long test passphrase")
		if q.Get("code") == "" {
			t.Fatalf("acr_values=1 with a level-1 session: %v", q)
		}
	})

	t.Run("client credentials, introspection and revocation", func(t *testing.T) {
		cc := &oauth2.Config{ClientID: "batch", ClientSecret: ccSecret, Endpoint: tax.provider.Endpoint()}
		form := url.Values{"grant_type": {"client_credentials"}, "scope": {"reports"}}
		req, _ := http.NewRequest("POST", cc.Endpoint.TokenURL, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("batch", ccSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var tr struct {
			AccessToken string `json:"access_token"`
		}
		json.Unmarshal([]byte(body(t, resp)), &tr)
		if tr.AccessToken == "" {
			t.Fatal("no access token")
		}
		if got := tax.introspect("batch", ccSecret, tr.AccessToken); got["active"] != true || got["client_id"] != "batch" {
			t.Fatalf("own token: %v", got)
		}
		if got := tax.introspect("tax", taxSecret, tr.AccessToken); got["active"] != false {
			t.Fatalf("another client's token was described: %v", got)
		}
		// Client tax tries to revoke batch's token: the token must live on.
		req, _ = http.NewRequest("POST", issuer+"/oauth2/revoke", strings.NewReader(url.Values{"token": {tr.AccessToken}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("tax", taxSecret)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
		if got := tax.introspect("batch", ccSecret, tr.AccessToken); got["active"] != true {
			t.Fatalf("client tax revoked client batch's token: %v", got)
		}
		req, _ = http.NewRequest("POST", issuer+"/oauth2/revoke", strings.NewReader(url.Values{"token": {tr.AccessToken}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("batch", ccSecret)
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
			t.Fatalf("revoke: %v %v", err, resp)
		}
		if got := tax.introspect("batch", ccSecret, tr.AccessToken); got["active"] != false {
			t.Fatalf("revoked token still active: %v", got)
		}
	})

	t.Run("negative cases", func(t *testing.T) {
		fresh := browser(t)
		// Sign in once so that the rest exercise the code, not the login.
		tax.login(fresh, "alice", "a long test passphrase")
		verifier := oauth2.GenerateVerifier()
		code := func() string {
			q := tax.authorize(fresh, tax.cfg.AuthCodeURL(rand.Text(), oauth2.S256ChallengeOption(verifier)), "alice", "a long test passphrase")
			return q.Get("code")
		}
		t.Run("code used twice revokes the first tokens", func(t *testing.T) {
			c := code()
			first, err := tax.cfg.Exchange(ctx, c, oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tax.cfg.Exchange(ctx, c, oauth2.VerifierOption(verifier)); err == nil {
				t.Fatal("second exchange of one code succeeded")
			}
			if got := tax.introspect("tax", taxSecret, first.AccessToken); got["active"] != false {
				t.Fatalf("tokens of the first exchange survive: %v", got)
			}
		})
		// raceUses runs use 8 times at once, as a client or an attacker
		// replaying one grant would: at most one may get tokens, every
		// other answer is 400 invalid_grant, and the winner's tokens are
		// revoked with the grant.
		raceUses := func(t *testing.T, what string, use func() (*oauth2.Token, error)) {
			const n = 8
			tokens := make(chan *oauth2.Token, n)
			failures := make(chan error, n)
			var wg sync.WaitGroup
			for range n {
				wg.Go(func() {
					tok, err := use()
					if err != nil {
						failures <- err
						return
					}
					tokens <- tok
				})
			}
			wg.Wait()
			close(tokens)
			close(failures)
			if len(tokens) > 1 {
				t.Fatalf("%d uses of one %s succeeded", len(tokens), what)
			}
			for err := range failures {
				var re *oauth2.RetrieveError
				if !errors.As(err, &re) || re.Response.StatusCode != http.StatusBadRequest || re.ErrorCode != "invalid_grant" {
					t.Errorf("a losing use of the %s got %v, want 400 invalid_grant", what, err)
				}
			}
			for tok := range tokens {
				if got := tax.introspect("tax", taxSecret, tok.AccessToken); got["active"] != false {
					t.Errorf("the winner's token survives a concurrent second use of its %s: %v", what, got)
				}
			}
		}
		t.Run("code redeemed concurrently: one wins, its tokens are revoked, no 5xx", func(t *testing.T) {
			c := code()
			raceUses(t, "code", func() (*oauth2.Token, error) { return tax.cfg.Exchange(ctx, c, oauth2.VerifierOption(verifier)) })
		})
		t.Run("refresh token used concurrently: one wins at most, the grant is revoked, no 5xx", func(t *testing.T) {
			start, err := tax.cfg.Exchange(ctx, code(), oauth2.VerifierOption(verifier))
			if err != nil || start.RefreshToken == "" {
				t.Fatalf("exchange: %v", err)
			}
			// No grace period is configured: any reuse is theft.
			raceUses(t, "refresh token", func() (*oauth2.Token, error) {
				return tax.cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: start.RefreshToken}).Token()
			})
		})
		t.Run("a code exchange that failed on the server can be tried again", func(t *testing.T) {
			d, err := db.Open(ctx, te["SSO_DATABASE_URL"], db.PoolOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			c := code()
			// The exchange's audit record cannot be written: its
			// transaction rolls back and the client is told to retry.
			restore := dbtest.FailInserts(t, d, "audit_events", "NEW.action = 'oauth.token'")
			_, err = tax.cfg.Exchange(ctx, c, oauth2.VerifierOption(verifier))
			restore()
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.Response.StatusCode < 500 {
				t.Fatalf("the exchange whose record failed: %v, want a 5xx", err)
			}
			if _, err := tax.cfg.Exchange(ctx, c, oauth2.VerifierOption(verifier)); err != nil {
				t.Fatalf("the retry of the same code and verifier: %v", err)
			}
		})
		t.Run("wrong PKCE verifier", func(t *testing.T) {
			c := code()
			if _, err := tax.cfg.Exchange(ctx, c, oauth2.VerifierOption(oauth2.GenerateVerifier())); err == nil {
				t.Fatal("accepted")
			}
			// A refusal is final: the code does not wait for more guesses.
			if _, err := tax.cfg.Exchange(ctx, c, oauth2.VerifierOption(verifier)); err == nil {
				t.Fatal("the code was redeemed after a wrong verifier had been tried")
			}
		})
		t.Run("missing PKCE verifier", func(t *testing.T) {
			if _, err := tax.cfg.Exchange(ctx, code()); err == nil {
				t.Fatal("accepted")
			}
		})
		t.Run("wrong client secret", func(t *testing.T) {
			bad := tax.cfg
			bad.ClientSecret = "wrong"
			_, err := bad.Exchange(ctx, code(), oauth2.VerifierOption(verifier))
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.Response.StatusCode != 401 {
				t.Fatalf("got %v", err)
			}
		})
		t.Run("wrong redirect URI is shown, not followed", func(t *testing.T) {
			bad := tax.cfg
			bad.RedirectURL = "https://evil.example/cb"
			resp, err := fresh.Get(bad.AuthCodeURL(rand.Text()))
			if err != nil {
				t.Fatal(err)
			}
			page := body(t, resp)
			if resp.StatusCode != 400 || !strings.Contains(page, "redirect") {
				t.Fatalf("%d %.300s", resp.StatusCode, page)
			}
		})
		t.Run("plain PKCE refused", func(t *testing.T) {
			q := tax.authorize(fresh, tax.cfg.AuthCodeURL(rand.Text(), oauth2.SetAuthURLParam("code_challenge", verifier), oauth2.SetAuthURLParam("code_challenge_method", "plain")), "", "")
			if q.Get("error") == "" {
				t.Fatalf("plain accepted: %v", q)
			}
		})
	})
}
