package main

// End-to-end test of QR-code sign-in (扫码登录): a desktop browser starts an
// OpenID Connect authorization at a department system, its sign-in page
// shows a QR code, a phone already signed in opens the code's URL and
// approves, and the desktop completes the sign-in and the code flow with a
// session of its own. Two cookie jars stand for the two browsers.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/govsso/sso/db"
)

func TestQRLoginEndToEnd(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) { testQRLogin(t, dialect) })
	}
}

func testQRLogin(t *testing.T, dialect db.Dialect) {
	te := newTestEnv(t, dialect)
	password := rand.Text()
	if r := te.run(t, password+"\n", "user", "create", "--username", "qruser", "--password-stdin", "--name", "QR User"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	secret := createClient(t, te, "--id", "tax", "--name", "税务局", "--redirect-uri", "http://127.0.0.1:9/cb", "--scope", "openid profile")
	issuer := startServer(t, te)
	ctx := context.Background()
	tax := newRP(t, issuer, "tax", secret, oidc.ScopeOpenID, "profile")

	// The phone signs in with its password first.
	phone := browser(t)
	_, phoneID := tax.login(phone, "qruser", password)

	// The desktop starts an authorization and lands on the sign-in page.
	desktop := browser(t)
	state, nonce, verifier := rand.Text(), rand.Text(), oauth2.GenerateVerifier()
	resp, err := desktop.Get(tax.cfg.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		t.Fatal(err)
	}
	loginPage := body(t, resp)
	if !strings.Contains(loginPage, `src="/login/qr/code.png"`) {
		t.Fatalf("the sign-in page shows no QR code: %.300s", loginPage)
	}
	resp, err = desktop.Get(issuer + "/login/qr/code.png")
	if err != nil {
		t.Fatal(err)
	}
	body(t, resp)
	qrURL := resp.Header.Get("X-Sso-Qr-Url")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(qrURL, issuer+"/qr?t=") {
		t.Fatalf("image: status %d, code URL %q", resp.StatusCode, qrURL)
	}

	poll := func(b *http.Client) (int, string) {
		resp, err := b.Get(issuer + "/login/qr/status")
		if err != nil {
			t.Fatal(err)
		}
		var a struct{ Status string }
		json.Unmarshal([]byte(body(t, resp)), &a)
		return resp.StatusCode, a.Status
	}
	if code, st := poll(desktop); code != http.StatusOK || st != "pending" {
		t.Fatalf("desktop before approval: %d %q", code, st)
	}

	// The phone scans: it sees the desktop's browser and approves.
	resp, err = phone.Get(qrURL)
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "127.0.0.1") || !strings.Contains(page, `value="approve"`) {
		t.Fatalf("phone page: %d %.500s", resp.StatusCode, page)
	}
	if resp := submit(t, phone, issuer, "/qr", page, url.Values{"decision": {"approve"}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("approve: %d %.300s", resp.StatusCode, body(t, resp))
	}

	// A third browser, without the desktop's cookie, learns nothing.
	if code, st := poll(browser(t)); code != http.StatusNotFound || st != "" {
		t.Fatalf("stranger's poll: %d %q", code, st)
	}
	if code, st := poll(desktop); code != http.StatusOK || st != "approved" {
		t.Fatalf("desktop after approval: %d %q", code, st)
	}

	// The desktop continues: consent, then the department system's callback.
	resp = submit(t, desktop, issuer, "/login/qr/complete", loginPage, nil)
	var q url.Values
	for i := 0; i < 3 && q == nil; i++ {
		if resp.StatusCode == http.StatusSeeOther || resp.StatusCode == http.StatusFound {
			loc, _ := resp.Location()
			resp.Body.Close()
			q = loc.Query()
			break
		}
		page := body(t, resp)
		if !strings.Contains(page, `name="decision"`) {
			t.Fatalf("after QR sign-in: %d %.500s", resp.StatusCode, page)
		}
		resp = submit(t, desktop, issuer, "/consent", page, url.Values{"decision": {"allow"}})
	}
	if q.Get("state") != state || q.Get("code") == "" {
		t.Fatalf("callback %v", q)
	}
	tok, err := tax.cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	idt, err := tax.provider.Verifier(&oidc.Config{ClientID: "tax"}).Verify(ctx, tok.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	var claims, phoneClaims struct {
		AMR []string `json:"amr"`
		ACR string   `json:"acr"`
		SID string   `json:"sid"`
	}
	idt.Claims(&claims)
	phoneID.Claims(&phoneClaims)
	if idt.Subject != phoneID.Subject || idt.Nonce != nonce {
		t.Fatalf("subject %q nonce %q; want the phone's person %q", idt.Subject, idt.Nonce, phoneID.Subject)
	}
	if !slices.Contains(claims.AMR, "qr") || claims.ACR != "1" || claims.SID == "" || claims.SID == phoneClaims.SID {
		t.Fatalf("desktop claims %+v, phone's %+v: want amr qr and a session of its own", claims, phoneClaims)
	}

	// The code is single-use: completing again signs nobody in.
	resp, err = desktop.Get(issuer + "/login")
	if err != nil {
		t.Fatal(err)
	}
	again := submit(t, desktop, issuer, "/login/qr/complete", body(t, resp), nil)
	if again.StatusCode != http.StatusBadRequest {
		t.Fatalf("second completion: %d", again.StatusCode)
	}
	body(t, again)
}
