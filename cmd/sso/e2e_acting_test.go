package main

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/kek"
	"github.com/govsso/sso/users"
)

// An agent of an enterprise switches to act for it; the ID token and
// userinfo of the next sign-in say acting_for.
func TestActingForAnEnterpriseReachesTheTokens(t *testing.T) {
	te := newTestEnv(t, db.SQLite)
	if r := te.run(t, "a long test passphrase\n", "user", "create", "--username", "agent", "--password-stdin"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	secret := createClient(t, te, "--id", "tax", "--first-party", "--redirect-uri", "http://127.0.0.1:9/cb", "--scope", "openid profile")

	// The enterprise, made directly in the database as the admin API will.
	ctx := context.Background()
	d, err := db.Open(ctx, te["SSO_DATABASE_URL"], db.PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	keyBytes, _ := base64.StdEncoding.DecodeString(te["SSO_KEY_ENCRYPTION_KEY"])
	k, _ := kek.New(keyBytes)
	store := users.NewSQLStore(d, k)
	agent, err := store.GetByUsername(ctx, "agent")
	if err != nil {
		t.Fatal(err)
	}
	ent, err := users.NewEnterprises(d, store).Create(ctx, "91350100M000100Y43", "示例科技有限公司", agent.ID)
	d.Close()
	if err != nil {
		t.Fatal(err)
	}

	issuer := startServer(t, te)
	rp := newRP(t, issuer, "tax", secret, oidc.ScopeOpenID, "profile")
	b := browser(t)
	_, idt := rp.login(b, "agent", "a long test passphrase")
	var before struct {
		ActingFor string `json:"acting_for"`
	}
	idt.Claims(&before)
	if before.ActingFor != "" {
		t.Fatalf("acting_for before switching: %q", before.ActingFor)
	}

	resp, err := b.Get(issuer + "/account/acting")
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, resp)
	if !strings.Contains(page, "示例科技有限公司") {
		t.Fatalf("the enterprise is not offered: %.400s", page)
	}
	resp = submit(t, b, issuer, "/account/acting", page, url.Values{"enterprise": {ent.ID}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("switch: %d", resp.StatusCode)
	}
	forged := submit(t, b, issuer, "/account/acting", page, url.Values{"enterprise": {"not-an-enterprise"}})
	forged.Body.Close()
	if forged.StatusCode != http.StatusForbidden {
		t.Fatalf("switching to an enterprise one is no agent of: %d", forged.StatusCode)
	}

	tok, idt := rp.login(b, "agent", "a long test passphrase")
	var after struct {
		ActingFor string `json:"acting_for"`
	}
	idt.Claims(&after)
	if after.ActingFor != ent.ID {
		t.Fatalf("acting_for %q, want %q", after.ActingFor, ent.ID)
	}
	info, err := rp.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	info.Claims(&c)
	if c["acting_for"] != ent.ID {
		t.Fatalf("userinfo: %v", c)
	}
}
