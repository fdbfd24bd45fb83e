package main

// End-to-end test of self-registration: a person registers through the
// pages of a real `sso serve` with the SMS code the development log sender
// wrote to the server's log, and then signs in to a department system.

import (
	"context"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/users/passkeytest"
)

// loggedCode finds the code the log sender wrote for phone.
func loggedCode(t *testing.T, log *syncBuffer, phone string) string {
	t.Helper()
	line := regexp.MustCompile(`one-time message.* to=` + phone + ` text=.*Code (\d{6}) `)
	m := line.FindAllStringSubmatch(log.String(), -1)
	if m == nil {
		t.Fatalf("no code for %s in the server log", phone)
	}
	return m[len(m)-1][1]
}

func TestRegisterEndToEnd(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) { testRegister(t, dialect) })
	}
}

func testRegister(t *testing.T, dialect db.Dialect) {
	te := newTestEnv(t, dialect)
	te["SSO_LOG_LEVEL"] = "info"
	cb := "http://127.0.0.1:9/cb"
	secret := createClient(t, te, "--id", "svc", "--name", "Services", "--first-party", "--redirect-uri", cb, "--scope", "openid profile phone")
	issuer, log := startServerWithLog(t, te)

	phone := fmt.Sprintf("137%08d", mrand.IntN(100000000))
	username := fmt.Sprintf("citizen%d", mrand.IntN(1000000))
	password := "e2e-" + strings.ToLower(fmt.Sprint(mrand.Int64()))
	b := browser(t)

	resp, err := b.Get(issuer + "/register")
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `name="phone"`) {
		t.Fatalf("GET /register: %d %.300s", resp.StatusCode, page)
	}
	resp = submit(t, b, issuer, "/register", page, url.Values{"action": {"send"}, "phone": {phone}})
	page = body(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `name="code"`) {
		t.Fatalf("send code: %d %.300s", resp.StatusCode, page)
	}
	code := loggedCode(t, log, phone)
	resp = submit(t, b, issuer, "/register", page, url.Values{
		"action": {"create"}, "code": {code}, "username": {username}, "display_name": {"E2E Citizen"}, "password": {password},
	})
	page = body(t, resp)
	// It returns to /, which sends a signed-in person to the account centre.
	if resp.Request.URL.Path != "/account" || strings.Contains(page, `name="code"`) {
		t.Fatalf("registration did not finish at /account (%d at %s): %.500s", resp.StatusCode, resp.Request.URL, page)
	}

	svc := newRP(t, issuer, "svc", secret, oidc.ScopeOpenID, "profile", "phone")
	t.Run("registration signed the browser in with pwd and sms", func(t *testing.T) {
		_, idt := svc.login(b, "", "")
		var claims struct {
			ACR string   `json:"acr"`
			AMR []string `json:"amr"`
		}
		idt.Claims(&claims)
		if claims.ACR != "1" || !slices.Contains(claims.AMR, "sms") || !slices.Contains(claims.AMR, "pwd") {
			t.Errorf("claims %+v, want acr 1 and amr [pwd sms]", claims)
		}
	})
	t.Run("the new account signs in with its password", func(t *testing.T) {
		tok, idt := svc.login(browser(t), username, password)
		info, err := svc.provider.UserInfo(context.Background(), oauth2.StaticTokenSource(tok))
		if err != nil {
			t.Fatal(err)
		}
		var c map[string]any
		info.Claims(&c)
		if info.Subject != idt.Subject || c["phone_number"] != "+86"+phone || c["name"] != "E2E Citizen" {
			t.Errorf("userinfo %v, want the registered phone and name", c)
		}
	})
	t.Run("only the log sender logs the code", func(t *testing.T) {
		whole := regexp.MustCompile(`(^|[^0-9.])` + code + `([^0-9]|$)`)
		for _, line := range strings.Split(log.String(), "\n") {
			if whole.MatchString(line) && !strings.Contains(line, "one-time message") {
				t.Errorf("the code appears in a log line: %s", line)
			}
		}
	})
}

// A person registers with a passkey instead of a password: the code signs
// them in, the passkey page opens, and from then on the passkey is how
// they sign in; there is no password to guess.
func TestRegisterWithPasskeyFirst(t *testing.T) {
	te := newTestEnv(t, db.SQLite)
	te["SSO_LOG_LEVEL"] = "info"
	base, log := startLocalhostServerWithLog(t, te)
	phone := fmt.Sprintf("136%08d", mrand.IntN(100000000))
	username := fmt.Sprintf("nopass%d", mrand.IntN(1000000))
	b := browser(t)
	resp, err := b.Get(base + "/register")
	if err != nil {
		t.Fatal(err)
	}
	resp = submit(t, b, base, "/register", body(t, resp), url.Values{"action": {"send"}, "phone": {phone}})
	page := body(t, resp)
	if !strings.Contains(page, `name="method" value="passkey"`) {
		t.Fatalf("the details step offers no passkey registration: %.500s", page)
	}
	resp = submit(t, b, base, "/register", page, url.Values{
		"action": {"create"}, "method": {"passkey"}, "code": {loggedCode(t, log, phone)}, "username": {username}, "display_name": {"No Password"},
	})
	page = body(t, resp)
	if resp.Request.URL.Path != "/account/passkeys" || !strings.Contains(page, `id="passkey-register"`) {
		t.Fatalf("registration did not open the passkey page (%d at %s): %.500s", resp.StatusCode, resp.Request.URL, page)
	}
	csrf := csrfOf(t, b, base+"/account/passkeys")
	status, options := postJSON(t, b, base, "/passkeys/register/begin", csrf, map[string]string{})
	if status != http.StatusOK {
		t.Fatalf("register begin: %d %s", status, options)
	}
	a := passkeytest.New(base)
	cred, err := a.Create(options)
	if err != nil {
		t.Fatal(err)
	}
	if status, out := postJSON(t, b, base, "/passkeys/register/finish", csrf, map[string]any{"name": "Phone", "credential": json.RawMessage(cred)}); status != http.StatusOK {
		t.Fatalf("register finish: %d %s", status, out)
	}
	if status, out, _ := passkeyLogin(t, browser(t), base, a, "/"); status != http.StatusOK {
		t.Fatalf("passkey sign-in of the new account: %d %s", status, out)
	}
	other := browser(t)
	resp, err = other.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp = submit(t, other, base, "/login", body(t, resp), url.Values{"identifier": {username}, "password": {"any password at all"}})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("password sign-in of an account without one: status %d, want 401", resp.StatusCode)
	}
	resp.Body.Close()
}
