package main

import (
	"context"
	"encoding/json"
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
}
