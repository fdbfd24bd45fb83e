package main

// End-to-end test of RP-initiated logout with back-channel notifications:
// two relying parties share one single sign-on session, one of them logs
// the person out, and both hear of it.

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/govsso/sso/db"
)

// logoutReceiver is the back-channel logout endpoint of several relying
// parties, one path each; it records the tokens they were sent.
type logoutReceiver struct {
	mu     sync.Mutex
	tokens map[string][]string // path → logout tokens
	got    chan string         // a path, each time a token arrives
}

func (lr *logoutReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token := r.PostFormValue("logout_token")
	if r.Method != http.MethodPost || token == "" {
		http.Error(w, "no logout_token", http.StatusBadRequest)
		return
	}
	lr.mu.Lock()
	lr.tokens[r.URL.Path] = append(lr.tokens[r.URL.Path], token)
	lr.mu.Unlock()
	lr.got <- r.URL.Path
}

// waitFor waits until every path received a token; the server sends them
// within a second or two, so the generous limit only bounds a broken run.
func (lr *logoutReceiver) waitFor(t *testing.T, paths ...string) {
	t.Helper()
	pending := map[string]bool{}
	for _, p := range paths {
		pending[p] = true
	}
	limit := time.After(30 * time.Second)
	for len(pending) > 0 {
		select {
		case p := <-lr.got:
			delete(pending, p)
		case <-limit:
			t.Fatalf("no logout token reached %v", pending)
		}
	}
}

func TestLogoutEndToEnd(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) { testLogout(t, dialect) })
	}
}

func testLogout(t *testing.T, dialect db.Dialect) {
	te := newTestEnv(t, dialect)
	if r := te.run(t, "a long test passphrase\n", "user", "create", "--username", "alice", "--password-stdin", "--name", "Alice"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	rcv := &logoutReceiver{tokens: map[string][]string{}, got: make(chan string, 16)}
	rpServer := httptest.NewServer(rcv) // loopback
	defer rpServer.Close()

	cb, bye := "http://127.0.0.1:9/cb", "http://127.0.0.1:9/cb/signed-out"
	taxSecret := createClient(t, te, "--id", "tax", "--name", "Tax", "--redirect-uri", cb, "--scope", "openid profile offline_access",
		"--backchannel-logout-uri", rpServer.URL+"/tax/logout", "--post-logout-redirect-uri", bye)
	portalSecret := createClient(t, te, "--id", "portal", "--name", "Portal", "--first-party", "--redirect-uri", cb, "--scope", "openid profile",
		"--backchannel-logout-uri", rpServer.URL+"/portal/logout")
	issuer := startServer(t, te)
	ctx := context.Background()

	tax := newRP(t, issuer, "tax", taxSecret, oidc.ScopeOpenID, "profile", oidc.ScopeOfflineAccess)
	portal := newRP(t, issuer, "portal", portalSecret, oidc.ScopeOpenID, "profile")
	var meta struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := tax.provider.Claims(&meta); err != nil || meta.EndSession != issuer+"/oauth2/logout" {
		t.Fatalf("end_session_endpoint %q, %v", meta.EndSession, err)
	}

	b := browser(t)
	taxTok, taxID := tax.login(b, "alice", "a long test passphrase")
	var sid struct {
		SID string `json:"sid"`
	}
	taxID.Claims(&sid)
	_, portalID := portal.login(b, "", "") // single sign-on: no password asked

	// RP-initiated logout by tax, with its ID token as the hint.
	state := rand.Text()
	q := url.Values{"id_token_hint": {taxTok.Extra("id_token").(string)}, "post_logout_redirect_uri": {bye}, "state": {state}}
	resp, err := b.Get(issuer + "/oauth2/logout?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != bye+"?state="+url.QueryEscape(state) {
		t.Fatalf("logout answered %d to %q, want a redirect to %s with the state", resp.StatusCode, loc, bye)
	}

	t.Run("both clients get a valid logout token", func(t *testing.T) {
		rcv.waitFor(t, "/tax/logout", "/portal/logout")
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		for _, c := range []struct {
			rp   *rp
			path string
			sub  string
		}{{tax, "/tax/logout", taxID.Subject}, {portal, "/portal/logout", portalID.Subject}} {
			tokens := rcv.tokens[c.path]
			if len(tokens) != 1 {
				t.Fatalf("%s received %d logout tokens", c.path, len(tokens))
			}
			lt, err := c.rp.provider.Verifier(&oidc.Config{ClientID: c.rp.cfg.ClientID}).Verify(ctx, tokens[0])
			if err != nil {
				t.Fatalf("%s: logout token does not verify for %s: %v", c.path, c.rp.cfg.ClientID, err)
			}
			var claims struct {
				SID    string                    `json:"sid"`
				Nonce  *string                   `json:"nonce"`
				Events map[string]map[string]any `json:"events"`
			}
			lt.Claims(&claims)
			if _, ok := claims.Events["http://schemas.openid.net/event/backchannel-logout"]; !ok || claims.SID != sid.SID || claims.Nonce != nil || lt.Subject != c.sub {
				t.Errorf("%s: sid %q (want %q), sub %q (want %q), events %v, nonce %v", c.path, claims.SID, sid.SID, lt.Subject, c.sub, claims.Events, claims.Nonce)
			}
		}
	})

	t.Run("the browser must sign in again", func(t *testing.T) {
		resp, err := b.Get(tax.cfg.AuthCodeURL(rand.Text(), oidc.Nonce(rand.Text()), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if err != nil {
			t.Fatal(err)
		}
		if page := body(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(page, `name="password"`) {
			t.Fatalf("after logout authorize answered %d without asking to sign in: %.300s", resp.StatusCode, page)
		}
	})

	t.Run("the refresh token is revoked", func(t *testing.T) {
		if _, err := tax.cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: taxTok.RefreshToken}).Token(); err == nil {
			t.Fatal("the refresh token of the ended session still works")
		}
	})
}
