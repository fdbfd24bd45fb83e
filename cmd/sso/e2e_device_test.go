package main

// End-to-end test of the device authorization grant (RFC 8628): a kiosk in
// a service hall starts the sign-in with golang.org/x/oauth2, a person
// approves it on the /device page from their phone, where they sign in, and
// the kiosk's tokens are checked with github.com/coreos/go-oidc/v3.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/oauth"
)

func TestDeviceGrantEndToEnd(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) { testDeviceGrant(t, dialect) })
	}
}

func testDeviceGrant(t *testing.T, dialect db.Dialect) {
	te := newTestEnv(t, dialect)
	password := rand.Text()
	if r := te.run(t, password+"\n", "user", "create", "--username", "kioskuser", "--password-stdin", "--name", "Kiosk User"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	createClient(t, te, "--id", "kiosk", "--name", "服务大厅自助机", "--public",
		"--grant-type", oauth.GrantDeviceCode, "--grant-type", "refresh_token", "--scope", "openid profile offline_access")
	issuer := startServer(t, te)
	ctx := context.Background()

	provider, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	kiosk := oauth2.Config{ClientID: "kiosk", Endpoint: provider.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "profile", oidc.ScopeOfflineAccess}}
	kiosk.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	if kiosk.Endpoint.DeviceAuthURL != issuer+"/oauth2/device/authorize" {
		t.Fatalf("discovery names device endpoint %q", kiosk.Endpoint.DeviceAuthURL)
	}

	da, err := kiosk.DeviceAuth(ctx)
	if err != nil {
		t.Fatalf("device authorization: %v", err)
	}
	if da.VerificationURI != issuer+"/device" || !strings.HasPrefix(da.VerificationURIComplete, issuer+"/device?user_code=") {
		t.Fatalf("verification URIs %q, %q", da.VerificationURI, da.VerificationURIComplete)
	}

	t.Run("polling before approval", func(t *testing.T) {
		if got := pollDevice(t, issuer, da.DeviceCode); got != "authorization_pending" {
			t.Fatalf("first poll: %q", got)
		}
		if got := pollDevice(t, issuer, da.DeviceCode); got != "slow_down" {
			t.Fatalf("second poll at once: %q", got)
		}
	})

	// The phone opens the link (or QR code), signs in, and approves.
	phone := browser(t)
	resp, err := phone.Get(da.VerificationURIComplete)
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, resp)
	if !strings.Contains(page, `name="password"`) {
		t.Fatalf("the device page did not ask to sign in first: %.300s", page)
	}
	page = body(t, submit(t, phone, issuer, "/login", page, url.Values{"identifier": {"kioskuser"}, "password": {password}}))
	if !strings.Contains(page, `name="decision"`) || !strings.Contains(page, "服务大厅自助机") || !strings.Contains(page, da.UserCode) {
		t.Fatalf("after sign-in, no confirmation of the kiosk and code: %.500s", page)
	}
	resp = submit(t, phone, issuer, "/device", page, url.Values{"decision": {"approve"}})
	if page := body(t, resp); resp.StatusCode != http.StatusOK || strings.Contains(page, `name="decision"`) {
		t.Fatalf("approve: %d %.300s", resp.StatusCode, page)
	}

	// The kiosk polls with x/oauth2; a short interval keeps the test quick,
	// and an approved code answers at once whatever the interval.
	da.Interval = 1
	tok, err := kiosk.DeviceAccessToken(ctx, da)
	if err != nil {
		t.Fatalf("device access token: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: "kiosk"}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("id token: %v", err)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Fatalf("at_hash: %v", err)
	}
	var claims struct {
		AMR []string `json:"amr"`
		SID string   `json:"sid"`
	}
	if err := idt.Claims(&claims); err != nil || len(claims.AMR) == 0 || claims.SID == "" {
		t.Fatalf("id token lacks the phone's sign-in (amr, sid): %+v %v", claims, err)
	}
	if tok.RefreshToken == "" {
		t.Error("offline_access was granted but no refresh token came")
	}

	t.Run("access token works at userinfo", func(t *testing.T) {
		info, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			t.Fatal(err)
		}
		var c map[string]any
		info.Claims(&c)
		if info.Subject != idt.Subject || c["name"] != "Kiosk User" {
			t.Fatalf("userinfo %v", c)
		}
	})
	t.Run("the device code gives tokens once", func(t *testing.T) {
		if got := pollDevice(t, issuer, da.DeviceCode); got != "invalid_grant" {
			t.Fatalf("poll after the tokens: %q", got)
		}
	})
	t.Run("the code cannot be approved again", func(t *testing.T) {
		resp, err := phone.Get(da.VerificationURIComplete)
		if err != nil {
			t.Fatal(err)
		}
		if page := body(t, resp); resp.StatusCode != http.StatusBadRequest || strings.Contains(page, `name="decision"`) {
			t.Fatalf("used code: %d %.300s", resp.StatusCode, page)
		}
	})
}

// pollDevice asks the token endpoint once for the kiosk's tokens and returns
// the error code ("" on success).
func pollDevice(t *testing.T, issuer, deviceCode string) string {
	t.Helper()
	form := url.Values{"grant_type": {oauth.GrantDeviceCode}, "device_code": {deviceCode}, "client_id": {"kiosk"}}
	resp, err := http.PostForm(issuer+"/oauth2/token", form)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Error string `json:"error"`
	}
	json.Unmarshal([]byte(body(t, resp)), &out)
	return out.Error
}
