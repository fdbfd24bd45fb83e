package main

// End-to-end test of two-step verification: a person turns TOTP on through
// the account pages, signs out, and signs in to a relying party with
// password and code; the relying party sees both in the ID token's amr.

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/users"
)

var (
	totpSecretShown   = regexp.MustCompile(`<code id="totp-secret">([A-Z2-7 ]+)</code>`)
	recoveryCodeShown = regexp.MustCompile(`<li><code>([A-Z2-9]{5}-[A-Z2-9]{5})</code></li>`)
)

func TestTOTPEndToEnd(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) { testTOTP(t, dialect) })
	}
}

func testTOTP(t *testing.T, dialect db.Dialect) {
	te := newTestEnv(t, dialect)
	password := rand.Text()
	if r := te.run(t, password+"\n", "user", "create", "--username", "carol", "--password-stdin", "--name", "Carol"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	cb := "http://127.0.0.1:9/cb"
	secret := createClient(t, te, "--id", "tax", "--name", "Tax", "--first-party", "--redirect-uri", cb, "--scope", "openid profile")
	issuer := startServer(t, te)
	tax := newRP(t, issuer, "tax", secret, oidc.ScopeOpenID, "profile")

	b := browser(t)
	if _, idt := tax.login(b, "carol", password); amrOf(t, idt) == nil {
		t.Fatal("no amr before two-step verification")
	}
	totpSecret, recovery := enrolTOTP(t, b, issuer)
	if len(recovery) != users.RecoveryCodeCount {
		t.Fatalf("%d recovery codes shown, want %d", len(recovery), users.RecoveryCodeCount)
	}
	signOut(t, b, issuer)

	// The code of the step that confirmed enrolment is used up; the next
	// step's code is within the window and not used yet.
	nextCode := func() string { return users.TOTPCode(totpSecret, time.Now().Add(users.TOTPPeriod), users.TOTPDigits) }
	idt := tax.loginWithCode(b, "carol", password, nextCode)
	if amr := amrOf(t, idt); !slices.Contains(amr, "otp") || !slices.Contains(amr, "mfa") || !slices.Contains(amr, "pwd") {
		t.Fatalf("amr %v, want pwd, otp and mfa", amr)
	}

	t.Run("recovery code", func(t *testing.T) {
		idt := tax.loginWithCode(browser(t), "carol", password, func() string { return recovery[0] })
		if amr := amrOf(t, idt); !slices.Contains(amr, "otp") || !slices.Contains(amr, "mfa") {
			t.Fatalf("amr %v", amr)
		}
	})

	t.Run("wrong code gets no code for the client", func(t *testing.T) {
		fresh := browser(t)
		resp, err := fresh.Get(tax.cfg.AuthCodeURL(rand.Text(), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if err != nil {
			t.Fatal(err)
		}
		resp = submit(t, fresh, issuer, "/login", body(t, resp), url.Values{"identifier": {"carol"}, "password": {password}})
		page := body(t, resp)
		if !strings.Contains(page, `name="code"`) {
			t.Fatalf("no code page after the password: %.300s", page)
		}
		resp = submit(t, fresh, issuer, "/login/mfa", page, url.Values{"code": {recovery[0]}}) // used above
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("used recovery code: status %d", resp.StatusCode)
		}
		resp.Body.Close()
	})
}

// enrolTOTP turns TOTP on through the account pages and returns the
// secret shown for typing in and the recovery codes.
func enrolTOTP(t *testing.T, b *http.Client, issuer string) ([]byte, []string) {
	t.Helper()
	resp, err := b.Get(issuer + "/account/security")
	if err != nil {
		t.Fatal(err)
	}
	if page := body(t, resp); !strings.Contains(page, `action="/account/totp"`) {
		t.Fatalf("security page has no set-up button: %.300s", page)
	}
	resp, err = b.Get(issuer + "/account/totp")
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, resp)
	m := totpSecretShown.FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, `src="data:image/png;base64,`) {
		t.Fatalf("set-up page without QR code or secret (%d): %.500s", resp.StatusCode, page)
	}
	secret, err := users.DecodeTOTPSecret(m[1])
	if err != nil {
		t.Fatal(err)
	}
	code := users.TOTPCode(secret, time.Now(), users.TOTPDigits)
	resp = submit(t, b, issuer, "/account/totp", page, url.Values{"code": {code}})
	page = body(t, resp)
	var recovery []string
	for _, m := range recoveryCodeShown.FindAllStringSubmatch(page, -1) {
		recovery = append(recovery, m[1])
	}
	if resp.StatusCode != http.StatusOK || len(recovery) == 0 {
		t.Fatalf("confirm (%d): %.500s", resp.StatusCode, page)
	}
	return secret, recovery
}

func signOut(t *testing.T, b *http.Client, issuer string) {
	t.Helper()
	resp, err := b.Get(issuer + "/logout")
	if err != nil {
		t.Fatal(err)
	}
	resp = submit(t, b, issuer, "/logout", body(t, resp), nil)
	resp.Body.Close()
	resp, err = b.Get(issuer + "/account/security")
	if err != nil {
		t.Fatal(err)
	}
	if page := body(t, resp); !strings.Contains(page, `name="password"`) {
		t.Fatal("still signed in after signing out")
	}
}

// loginWithCode runs the code flow, answering the password, second-factor
// and consent pages, and returns the verified ID token.
func (r *rp) loginWithCode(b *http.Client, username, password string, code func() string) *oidc.IDToken {
	t := r.t
	t.Helper()
	state, nonce, verifier := rand.Text(), rand.Text(), oauth2.GenerateVerifier()
	resp, err := b.Get(r.cfg.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		t.Fatal(err)
	}
	var q url.Values
	for i := 0; i < 6 && q == nil; i++ {
		if resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusSeeOther {
			loc, _ := resp.Location()
			resp.Body.Close()
			if !strings.HasPrefix(loc.Path, "/cb") {
				t.Fatalf("unexpected redirect to %s", loc)
			}
			q = loc.Query()
			break
		}
		page := body(t, resp)
		switch {
		case strings.Contains(page, `name="password"`):
			resp = submit(t, b, r.issuer, "/login", page, url.Values{"identifier": {username}, "password": {password}})
		case strings.Contains(page, `action="/login/mfa"`):
			resp = submit(t, b, r.issuer, "/login/mfa", page, url.Values{"code": {code()}})
		case strings.Contains(page, `name="decision"`):
			resp = submit(t, b, r.issuer, "/consent", page, url.Values{"decision": {"allow"}})
		default:
			t.Fatalf("unexpected page (%d): %.500s", resp.StatusCode, page)
		}
	}
	if q.Get("state") != state || q.Get("code") == "" {
		t.Fatalf("callback: %v", q)
	}
	tok, err := r.cfg.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := r.provider.Verifier(&oidc.Config{ClientID: r.cfg.ClientID}).Verify(context.Background(), raw)
	if err != nil || idt.Nonce != nonce {
		t.Fatalf("id token: %v", err)
	}
	return idt
}

func amrOf(t *testing.T, idt *oidc.IDToken) []string {
	t.Helper()
	var c struct {
		AMR []string `json:"amr"`
	}
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return c.AMR
}
