package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/govsso/sso/db"
)

func TestAdminAPIEndToEnd(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) { testAdminAPI(t, dialect) })
	}
}

// testAdminAPI registers a machine client with the admin scope through the
// CLI, gets a token with the client credentials grant and creates an
// account through the admin API.
func testAdminAPI(t *testing.T, dialect db.Dialect) {
	te := newTestEnv(t, dialect)
	adminSecret := createClient(t, te, "--id", "console", "--name", "Admin console", "--grant-type", "client_credentials", "--scope", "admin reports")
	base := startServer(t, te)
	ctx := context.Background()
	token := func(scope string) string {
		cfg := clientcredentials.Config{ClientID: "console", ClientSecret: adminSecret, TokenURL: base + "/oauth2/token", Scopes: []string{scope}}
		tok, err := cfg.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return tok.AccessToken
	}
	call := func(bearer, method, path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, base+"/admin/api/v1"+path, strings.NewReader(body))
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	newUser := `{"username":"zhang.wei","kind":"citizen","display_name":"张伟"}`

	if status, _ := call("", "POST", "/users", newUser); status != http.StatusUnauthorized {
		t.Fatalf("no token: %d", status)
	}
	if status, _ := call(token("reports"), "POST", "/users", newUser); status != http.StatusUnauthorized {
		t.Fatalf("token without the admin scope: %d", status)
	}
	admin := token("admin")
	status, created := call(admin, "POST", "/users", newUser)
	if status != http.StatusCreated || created["username"] != "zhang.wei" || created["id"] == "" {
		t.Fatalf("create: %d %v", status, created)
	}
	status, found := call(admin, "GET", "/users?username=zhang.wei", "")
	items, _ := found["items"].([]any)
	if status != http.StatusOK || len(items) != 1 {
		t.Fatalf("search: %d %v", status, found)
	}
	status, problem := call(admin, "POST", "/users", `{"username":"zhang.wei","kind":"citizen"}`)
	if status != http.StatusConflict || problem["type"] != "https://sso/problems/conflict" {
		t.Fatalf("duplicate: %d %v", status, problem)
	}
	status, log := call(admin, "GET", "/audit?action=user.create", "")
	events, _ := log["items"].([]any)
	if status != http.StatusOK || len(events) != 1 || events[0].(map[string]any)["actor"] != "client:console" {
		t.Fatalf("audit: %d %v", status, log)
	}
	if status, doc := call("", "GET", "/openapi.json", ""); status != http.StatusOK || doc["openapi"] == nil {
		t.Fatalf("openapi: %d", status)
	}

	// Secret rotation: during the overlap the token endpoint takes both
	// the old and the new secret; after a rotation without overlap only
	// the newest.
	tokenWith := func(secret string) error {
		cfg := clientcredentials.Config{ClientID: "console", ClientSecret: secret, TokenURL: base + "/oauth2/token", Scopes: []string{"admin"}}
		_, err := cfg.Token(ctx)
		return err
	}
	status, rotated := call(admin, "POST", "/clients/console:rotate-secret", "")
	newSecret, _ := rotated["client_secret"].(string)
	if status != http.StatusOK || newSecret == "" || rotated["previous_secret_expires_at"] == nil {
		t.Fatalf("rotate: %d %v", status, rotated)
	}
	if err := tokenWith(adminSecret); err != nil {
		t.Fatalf("old secret during the overlap: %v", err)
	}
	if err := tokenWith(newSecret); err != nil {
		t.Fatalf("new secret: %v", err)
	}
	status, rotated = call(admin, "POST", "/clients/console:rotate-secret", `{"overlap":"0s"}`)
	newest, _ := rotated["client_secret"].(string)
	if status != http.StatusOK || newest == "" {
		t.Fatalf("rotate without overlap: %d %v", status, rotated)
	}
	if err := tokenWith(newSecret); err == nil {
		t.Fatal("a secret rotated without overlap still works")
	}
	if err := tokenWith(newest); err != nil {
		t.Fatalf("newest secret: %v", err)
	}

	// An administrator's reset link lands on the reset page.
	id, _ := created["id"].(string)
	status, link := call(admin, "POST", "/users/"+id+"/password-reset", `{"method":"link"}`)
	resetURL, _ := link["reset_url"].(string)
	if status != http.StatusOK || !strings.HasPrefix(resetURL, base+"/reset?token=") {
		t.Fatalf("reset link: %d %v (base %s)", status, link, base)
	}
	resp, err := http.Get(resetURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), `name="action" value="link"`) {
		t.Fatalf("reset page: %d", resp.StatusCode)
	}

	// Soft delete through the API: the account is gone from searches.
	if status, _ := call(admin, "DELETE", "/users/"+id, ""); status != http.StatusNoContent {
		t.Fatalf("delete: %d", status)
	}
	if status, found := call(admin, "GET", "/users?username=zhang.wei", ""); status != http.StatusOK || len(found["items"].([]any)) != 0 {
		t.Fatalf("search after delete: %d %v", status, found)
	}
	if status, link := call(admin, "POST", "/users/"+id+"/password-reset", ""); status != http.StatusConflict {
		t.Fatalf("reset of a deleted account: %d %v", status, link)
	}
}
