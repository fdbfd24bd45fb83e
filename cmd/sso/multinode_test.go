package main

// Several nodes on one PostgreSQL database: three `sso serve` instances behind
// a round-robin reverse proxy, so consecutive steps of one sign-in land on
// different nodes. Anything kept in one node's memory breaks this test.

import (
	"context"
	"crypto/rand"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/govsso/sso/db"
)

// roundRobin spreads requests over backends in turn and counts them.
type roundRobin struct {
	backends []*url.URL
	next     atomic.Uint64
	hits     []atomic.Int64
}

func (rr *roundRobin) proxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		i := (rr.next.Add(1) - 1) % uint64(len(rr.backends))
		rr.hits[i].Add(1)
		pr.SetURL(rr.backends[i])
		pr.Out.Host = pr.In.Host // the nodes see the public host, as behind a real proxy
		pr.SetXForwarded()
	}}
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startNodes runs n `sso serve` instances at once on te's database, all
// with te's issuer, and returns their base URLs and logs once every one is
// ready.
func startNodes(t *testing.T, te testEnv, n int) ([]*url.URL, []*syncBuffer) {
	t.Helper()
	var (
		urls = make([]*url.URL, n)
		logs = make([]*syncBuffer, n)
	)
	for i := range n {
		nodeEnv := maps.Clone(te)
		nodeEnv["SSO_ADDR"] = freeAddr(t)
		urls[i] = &url.URL{Scheme: "http", Host: nodeEnv["SSO_ADDR"]}
		logs[i] = &syncBuffer{}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int)
		go func() {
			done <- run(ctx, []string{"serve"}, env{stdin: strings.NewReader(""), stdout: logs[i], stderr: logs[i], getenv: func(k string) string { return nodeEnv[k] }})
		}()
		t.Cleanup(func() {
			cancel()
			<-done
		})
	}
	for i, u := range urls {
		if !waitReady(u.String() + "/healthz/ready") {
			t.Fatalf("node %d not ready: %s", i, logs[i].String())
		}
	}
	return urls, logs
}

func waitReady(u string) bool {
	for range 400 {
		if resp, err := http.Get(u); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	return false
}

func TestThreeNodesBehindRoundRobinProxy(t *testing.T) {
	te := newTestEnv(t, db.Postgres)
	const password = "a long test passphrase"
	if r := te.run(t, password+"\n", "user", "create", "--username", "alice", "--password-stdin", "--name", "Alice", "--email", "alice@example.org"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	cb := "http://127.0.0.1:9/cb"
	taxSecret := createClient(t, te, "--id", "tax", "--name", "税务局", "--redirect-uri", cb, "--scope", "openid profile email offline_access")
	portalSecret := createClient(t, te, "--id", "portal", "--name", "Portal", "--redirect-uri", cb, "--scope", "openid profile")
	jwtSecret := createClient(t, te, "--id", "jwtapp", "--name", "JWT app", "--redirect-uri", cb, "--scope", "openid profile", "--token-format", "jwt")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A host name, not an IP address, so that passkeys are on as in production.
	issuer := "http://localhost:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	te["SSO_ISSUER"] = issuer
	nodes, logs := startNodes(t, te, 3)
	rr := &roundRobin{backends: nodes, hits: make([]atomic.Int64, len(nodes))}
	proxy := &http.Server{Handler: rr.proxy(), ReadHeaderTimeout: 5 * time.Second}
	go proxy.Serve(ln)
	t.Cleanup(func() { proxy.Close() })

	ctx := context.Background()
	tax := newRP(t, issuer, "tax", taxSecret, oidc.ScopeOpenID, "profile", "email", oidc.ScopeOfflineAccess)
	b := browser(t)
	// Three sign-ins, so that with three nodes each step of the flow (page,
	// form post, consent, redirect, code exchange) meets several nodes.
	for i := range 3 {
		tok, idt := tax.login(browser(t), "alice", password)
		if idt.Subject == "" || tok.RefreshToken == "" {
			t.Fatalf("sign-in %d: no subject or refresh token", i)
		}
	}
	tok, idt := tax.login(b, "alice", password)

	t.Run("userinfo on every node", func(t *testing.T) {
		for range len(nodes) {
			ui, err := tax.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
			if err != nil {
				t.Fatal(err)
			}
			if ui.Subject != idt.Subject || ui.Email != "alice@example.org" {
				t.Fatalf("userinfo: %+v", ui)
			}
		}
	})

	t.Run("introspection on every node", func(t *testing.T) {
		for range len(nodes) {
			if got := tax.introspect("tax", taxSecret, tok.AccessToken); got["active"] != true || got["client_id"] != "tax" {
				t.Fatalf("introspection: %v", got)
			}
		}
	})

	t.Run("refresh chain across nodes, and reuse still revokes", func(t *testing.T) {
		current := tok.RefreshToken
		for i := range len(nodes) + 1 {
			fresh, err := tax.cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: current}).Token()
			if err != nil || fresh.RefreshToken == "" || fresh.RefreshToken == current {
				t.Fatalf("refresh %d: %v", i, err)
			}
			if got := tax.introspect("tax", taxSecret, fresh.AccessToken); got["active"] != true {
				t.Fatalf("refreshed access token %d inactive: %v", i, got)
			}
			current = fresh.RefreshToken
		}
		if _, err := tax.cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
			t.Fatal("a rotated refresh token was accepted again on another node")
		}
		if _, err := tax.cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: current}).Token(); err == nil {
			t.Fatal("after reuse the grant's newest refresh token still works")
		}
	})

	t.Run("single sign-on for a second client", func(t *testing.T) {
		portal := newRP(t, issuer, "portal", portalSecret, oidc.ScopeOpenID, "profile")
		verifier := oauth2.GenerateVerifier()
		q := portal.authorize(b, portal.cfg.AuthCodeURL(rand.Text(), oidc.Nonce(rand.Text()), oauth2.S256ChallengeOption(verifier)), "", "")
		if q.Get("code") == "" {
			t.Fatalf("no code for the second client: %v", q)
		}
		ptok, err := portal.cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		pidt, err := portal.provider.Verifier(&oidc.Config{ClientID: "portal"}).Verify(ctx, ptok.Extra("id_token").(string))
		if err != nil || pidt.Subject != idt.Subject {
			t.Fatalf("second client's id token: %v", err)
		}
	})

	t.Run("JWT access tokens after a key rotation by the CLI", func(t *testing.T) {
		if r := te.run(t, "", "keys", "rotate"); r.code != 0 {
			t.Fatalf("keys rotate: %s", r.stderr)
		}
		jwtRP := newRP(t, issuer, "jwtapp", jwtSecret, oidc.ScopeOpenID, "profile")
		for i := range len(nodes) {
			tok, _ := jwtRP.login(b, "alice", password)
			for range len(nodes) {
				if got := jwtRP.introspect("jwtapp", jwtSecret, tok.AccessToken); got["active"] != true {
					t.Fatalf("sign-in %d: JWT access token inactive on some node: %v", i, got)
				}
				if _, err := jwtRP.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err != nil {
					t.Fatalf("sign-in %d: userinfo with a JWT access token: %v", i, err)
				}
			}
		}
	})

	for i := range rr.hits {
		if rr.hits[i].Load() == 0 {
			t.Errorf("node %d served no request", i)
		}
		if l := logs[i].String(); strings.Contains(l, "level=ERROR") {
			t.Errorf("node %d logged errors:\n%s", i, l)
		}
	}
}
