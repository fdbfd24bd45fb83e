package main

import (
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/govsso/sso/db"
)

// A client that demands acr_values=2 of a person at level 1 sends them,
// after sign-in, to verify their identity with the population register;
// the session is raised and the ID token carries acr "2".
func TestStepUpToLevelTwoThroughIdentityVerification(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			te := newTestEnv(t, dialect)
			// The population register: it knows one person.
			idNumber := "11010519491231002X"
			register := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var req struct {
					Name     string `json:"name"`
					IDNumber string `json:"id_number"`
				}
				body, _ := io.ReadAll(r.Body)
				json.Unmarshal(body, &req)
				match := req.Name == "王小明" && req.IDNumber == idNumber && strings.HasPrefix(r.Header.Get("X-SSO-Signature"), "sha256=")
				json.NewEncoder(w).Encode(map[string]bool{"match": match})
			}))
			defer register.Close()
			te["SSO_IDENTITY_VERIFIER_URL"] = register.URL
			te["SSO_IDENTITY_VERIFIER_SECRET"] = rand.Text()
			if r := te.run(t, "a long test passphrase\n", "user", "create", "--username", "xiaoming", "--password-stdin"); r.code != 0 {
				t.Fatal(r.stderr)
			}
			secret := createClient(t, te, "--id", "permits", "--first-party", "--redirect-uri", "http://127.0.0.1:9/cb", "--scope", "openid realname")
			issuer := startServer(t, te)
			rp := newRP(t, issuer, "permits", secret, oidc.ScopeOpenID, "realname")
			b := browser(t)

			verifier := oauth2.GenerateVerifier()
			resp, err := b.Get(rp.cfg.AuthCodeURL(rand.Text(), oauth2.SetAuthURLParam("acr_values", "2"), oauth2.S256ChallengeOption(verifier)))
			if err != nil {
				t.Fatal(err)
			}
			var code string
			for step := 0; step < 6 && code == ""; step++ {
				if loc, _ := resp.Location(); loc != nil && strings.HasPrefix(loc.Path, "/cb") {
					resp.Body.Close()
					if loc.Query().Get("code") == "" {
						t.Fatalf("callback without a code: %v", loc.Query())
					}
					code = loc.Query().Get("code")
					break
				}
				page := body(t, resp)
				switch {
				case strings.Contains(page, `name="password"`):
					resp = submit(t, b, issuer, "/login", page, url.Values{"identifier": {"xiaoming"}, "password": {"a long test passphrase"}})
				case strings.Contains(page, `name="id_number"`):
					wrong := submit(t, b, issuer, "/account/verify", page, url.Values{"name": {"王小红"}, "id_number": {idNumber}})
					again := body(t, wrong)
					if wrong.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(again, "不一致") {
						t.Fatalf("a mismatch: %d %.300s", wrong.StatusCode, again)
					}
					resp = submit(t, b, issuer, "/account/verify", again, url.Values{"name": {"王小明"}, "id_number": {idNumber}})
				default:
					t.Fatalf("unexpected page %d: %.400s", resp.StatusCode, page)
				}
			}
			tok, err := rp.cfg.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatal(err)
			}
			idt, err := rp.provider.Verifier(&oidc.Config{ClientID: "permits"}).Verify(t.Context(), tok.Extra("id_token").(string))
			if err != nil {
				t.Fatal(err)
			}
			var claims struct {
				ACR string `json:"acr"`
			}
			idt.Claims(&claims)
			if claims.ACR != "2" {
				t.Fatalf("acr %q after verification, want 2", claims.ACR)
			}
			info, err := rp.provider.UserInfo(t.Context(), oauth2.StaticTokenSource(tok))
			if err != nil {
				t.Fatal(err)
			}
			var c map[string]any
			info.Claims(&c)
			if c["assurance_level"] != float64(2) {
				t.Fatalf("userinfo: %v", c)
			}
		})
	}
}
