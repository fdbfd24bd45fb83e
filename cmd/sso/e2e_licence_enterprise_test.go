package main

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/kek"
	"github.com/govsso/sso/users"
)

// TestEnterpriseLicencesEndToEnd runs a licence issued to an enterprise's
// credit code through a real `sso serve` on both databases: an agent acting
// for the enterprise sees it in the account centre and allows a department
// to read it (the consent is the enterprise's, the audit names the agent);
// the token issued while acting reads it; once the agent is removed the
// pages and the API refuse, and nothing more is stored.
func TestEnterpriseLicencesEndToEnd(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			te := newTestEnv(t, dialect)
			if r := te.run(t, "", "certs", "init"); r.code != 0 {
				t.Fatalf("certs init: %s", r.stderr)
			}
			typeCode := e2eCreditCode(t) + "001"
			if r := te.run(t, "", "certs", "licence-type", "create", "--code", typeCode, "--name", "营业执照",
				"--field", "scope:经营范围:required,shareable"); r.code != 0 {
				t.Fatalf("licence-type create: %s", r.stderr)
			}
			const password = "a long test passphrase"
			for _, name := range []string{"boss", "clerk"} {
				if r := te.run(t, password+"\n", "user", "create", "--username", name, "--password-stdin"); r.code != 0 {
					t.Fatal(r.stderr)
				}
			}
			ctx := context.Background()
			d, err := db.Open(ctx, te["SSO_DATABASE_URL"], db.PoolOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			keyBytes, _ := base64.StdEncoding.DecodeString(te["SSO_KEY_ENCRYPTION_KEY"])
			k, _ := kek.New(keyBytes)
			store := users.NewSQLStore(d, k)
			boss, err := store.GetByUsername(ctx, "boss")
			if err != nil {
				t.Fatal(err)
			}
			clerk, err := store.GetByUsername(ctx, "clerk")
			if err != nil {
				t.Fatal(err)
			}
			ents := users.NewEnterprises(d, store)
			const creditCode = "91350100M000100Y43"
			ent, err := ents.Create(ctx, creditCode, "示例科技有限公司", boss.ID)
			if err != nil {
				t.Fatal(err)
			}
			if err := ents.AddAgent(ctx, ent.ID, clerk.ID); err != nil {
				t.Fatal(err)
			}
			deptSecret := createClient(t, te, "--id", "market-bureau", "--grant-type", "client_credentials", "--scope", "licences:issue")
			cb := "http://127.0.0.1:9/cb"
			taxSecret := createClient(t, te, "--id", "tax", "--name", "税务局", "--redirect-uri", cb, "--scope", "openid licences:read")
			base := startServer(t, te)

			dept := licenceClientToken(t, base, "market-bureau", deptSecret, "licences:issue")
			code, lic := licenceCall(t, base, dept, "POST", "/certs/api/v1/licences", map[string]any{
				"type_code": typeCode, "licence_name": "营业执照", "licence_number": "YZ-2026-7", "holder_name": "示例科技有限公司",
				"holder_id_type": "credit_code", "holder_id_number": creditCode, "issuer_name": "City Market Bureau",
				"issuer_credit_code": e2eCreditCode(t), "valid_to": "2099-12-31", "fields": map[string]string{"scope": "软件开发"}})
			if code != http.StatusCreated {
				t.Fatalf("issue: %d %v", code, lic)
			}
			one := "/certs/api/v1/licences/" + lic["identifier"].(string)

			b := browser(t)
			tax := newRP(t, base, "tax", taxSecret, oidc.ScopeOpenID, "licences:read")
			tax.login(b, "clerk", password)
			if page := pageOf(t, b, base+"/account/licences"); strings.Contains(page, "YZ-2026-7") {
				t.Fatalf("the clerk sees the enterprise's licence while acting for themself: %.600s", page)
			}
			resp := submit(t, b, base, "/account/acting", pageOf(t, b, base+"/account/acting"), url.Values{"enterprise": {ent.ID}})
			resp.Body.Close()
			if page := pageOf(t, b, base+"/account/licences"); !strings.Contains(page, "YZ-2026-7") || !strings.Contains(page, "示例科技有限公司") {
				t.Fatalf("acting for the enterprise: %.800s", page)
			}
			sharePage := pageOf(t, b, base+"/account/licences/share?client_id=tax&type_code="+typeCode)
			resp = submit(t, b, base, "/account/licences/share", sharePage, nil)
			if page := body(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(page, "税务局") {
				t.Fatalf("allowing for the enterprise: %d %.800s", resp.StatusCode, page)
			}
			if n := licenceConsentsOf(t, d, ent.ID); n != 1 {
				t.Fatalf("the enterprise has %d consents, want 1", n)
			}
			if n := licenceConsentsOf(t, d, clerk.ID); n != 0 {
				t.Fatalf("the clerk has %d consents of their own, want 0", n)
			}
			evs, err := audit.NewLog(d).List(ctx, audit.Filter{Subject: ent.ID, Action: "licence.consent.grant"})
			if err != nil || len(evs) != 1 || evs[0].Actor != clerk.ID {
				t.Fatalf("consent audit: %+v %v, want the clerk as actor", evs, err)
			}

			tok, _ := tax.login(b, "clerk", password) // issued while acting
			if code, out := licenceCall(t, base, tok.AccessToken, "GET", one, nil); code != http.StatusOK || out["licence_number"] != "YZ-2026-7" {
				t.Fatalf("the token issued while acting reads: %d %v", code, out)
			}

			if err := ents.RemoveAgent(ctx, ent.ID, clerk.ID); err != nil {
				t.Fatal(err)
			}
			if code, out := licenceCall(t, base, tok.AccessToken, "GET", one, nil); code != http.StatusForbidden {
				t.Fatalf("after removal the token reads: %d %v", code, out)
			}
			resp, err = b.Get(base + "/account/licences")
			if err != nil {
				t.Fatal(err)
			}
			if page := body(t, resp); resp.StatusCode != http.StatusForbidden || strings.Contains(page, "YZ-2026-7") {
				t.Fatalf("after removal the page: %d %.600s", resp.StatusCode, page)
			}
			revoke := submit(t, b, base, "/account/licences/revoke", sharePage, nil)
			revoke.Body.Close()
			if revoke.StatusCode != http.StatusForbidden || licenceConsentsOf(t, d, ent.ID) != 1 {
				t.Fatalf("a removed agent withdraws: %d, consents %d", revoke.StatusCode, licenceConsentsOf(t, d, ent.ID))
			}
			if evs, _ := audit.NewLog(d).List(ctx, audit.Filter{Subject: ent.ID, Action: "licence.consent.revoke"}); len(evs) != 0 {
				t.Fatalf("a refused withdrawal was audited as done: %+v", evs)
			}
		})
	}
}

func pageOf(t *testing.T, b *http.Client, u string) string {
	t.Helper()
	resp, err := b.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	return body(t, resp)
}

func licenceConsentsOf(t *testing.T, d *db.DB, userID string) int {
	t.Helper()
	var n int
	if err := d.QueryRow(context.Background(), `SELECT count(*) FROM licence_consents WHERE user_id = ?`, userID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func licenceClientToken(t *testing.T, base, id, secret string, scopes ...string) string {
	t.Helper()
	cc := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: base + "/oauth2/token", Scopes: scopes}
	tok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}
