package main

// End-to-end tests of passkeys: a software authenticator registers and
// signs in through the real HTTP endpoints of `sso serve`, and a relying
// party sees the result in its ID token.

import (
	"context"
	"encoding/json"
	"html"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/users/passkeytest"
)

// startLocalhostServer is startServer with a localhost issuer: WebAuthn
// needs a host name, not an IP address, as the relying party ID.
func startLocalhostServer(t *testing.T, te testEnv) string {
	t.Helper()
	base, _ := startLocalhostServerWithLog(t, te)
	return base
}

// startLocalhostServerWithLog is startLocalhostServer that also returns the server's log.
func startLocalhostServerWithLog(t *testing.T, te testEnv) (string, *syncBuffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	te["SSO_ADDR"] = "127.0.0.1:" + port
	te["SSO_ISSUER"] = "http://localhost:" + port
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	var out syncBuffer
	go func() {
		done <- run(ctx, []string{"serve"}, env{stdin: strings.NewReader(""), stdout: &out, stderr: &out, getenv: func(k string) string { return te[k] }})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	base := te["SSO_ISSUER"]
	for i := 0; i < 200; i++ {
		if resp, err := http.Get(base + "/healthz/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base, &out
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("server not ready: %s", out.String())
	return "", nil
}

var dataCSRF = regexp.MustCompile(`data-csrf="([^"]+)"`)

// csrfOf loads page in b and returns the CSRF token passkeys.js would send.
func csrfOf(t *testing.T, b *http.Client, page string) string {
	t.Helper()
	resp, err := b.Get(page)
	if err != nil {
		t.Fatal(err)
	}
	m := dataCSRF.FindStringSubmatch(body(t, resp))
	if m == nil {
		t.Fatalf("%s offers no passkeys", page)
	}
	return html.UnescapeString(m[1])
}

// postJSON posts as passkeys.js does and returns the status and body.
func postJSON(t *testing.T, b *http.Client, base, path, csrf string, v any) (int, []byte) {
	t.Helper()
	raw, _ := json.Marshal(v)
	req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(string(raw)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", csrf)
	req.Header.Set("Origin", base)
	resp, err := b.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, []byte(body(t, resp))
}

// passkeyLogin runs a passwordless sign-in with a and returns the finish answer.
func passkeyLogin(t *testing.T, b *http.Client, base string, a *passkeytest.Authenticator, returnTo string) (int, []byte, json.RawMessage) {
	t.Helper()
	csrf := csrfOf(t, b, base+"/login")
	status, options := postJSON(t, b, base, "/passkeys/login/begin", csrf, map[string]bool{"conditional": true})
	if status != http.StatusOK {
		t.Fatalf("login begin: %d %s", status, options)
	}
	cred, err := a.Get(options)
	if err != nil {
		t.Fatal(err)
	}
	status, out := postJSON(t, b, base, "/passkeys/login/finish", csrf, map[string]any{"credential": json.RawMessage(cred), "return_to": returnTo})
	return status, out, cred
}

func TestPasskeysEndToEnd(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) { testPasskeys(t, dialect) })
	}
}

func testPasskeys(t *testing.T, dialect db.Dialect) {
	te := newTestEnv(t, dialect)
	if r := te.run(t, "a long test passphrase\n", "user", "create", "--username", "alice", "--password-stdin", "--name", "Alice"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	secret := createClient(t, te, "--id", "tax", "--name", "Tax", "--redirect-uri", "http://127.0.0.1:9/cb", "--scope", "openid profile")
	base := startLocalhostServer(t, te)

	// Alice signs in with her password and adds a passkey.
	b := browser(t)
	resp, err := b.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	submit(t, b, base, "/login", body(t, resp), url.Values{"identifier": {"alice"}, "password": {"a long test passphrase"}}).Body.Close()
	csrf := csrfOf(t, b, base+"/account/passkeys")
	status, options := postJSON(t, b, base, "/passkeys/register/begin", csrf, map[string]string{})
	if status != http.StatusOK {
		t.Fatalf("register begin: %d %s", status, options)
	}
	a := passkeytest.New(base)
	a.Counter = 1
	cred, err := a.Create(options)
	if err != nil {
		t.Fatal(err)
	}
	if status, out := postJSON(t, b, base, "/passkeys/register/finish", csrf, map[string]any{"name": "Laptop", "credential": json.RawMessage(cred)}); status != http.StatusOK {
		t.Fatalf("register finish: %d %s", status, out)
	}
	resp, _ = b.Get(base + "/account/passkeys")
	if page := body(t, resp); !strings.Contains(page, "Laptop") {
		t.Fatalf("the account page does not list the passkey: %.800s", page)
	}

	// On another browser she signs in with the passkey alone.
	tax := newRP(t, base, "tax", secret, oidc.ScopeOpenID, "profile")
	b2 := browser(t)
	status, out, used := passkeyLogin(t, b2, base, a, "/")
	if status != http.StatusOK || !strings.Contains(string(out), `"redirect":"/"`) {
		t.Fatalf("passkey sign-in: %d %s", status, out)
	}
	_, idt := tax.login(b2, "", "")
	var claims struct {
		ACR string   `json:"acr"`
		AMR []string `json:"amr"`
	}
	idt.Claims(&claims)
	if claims.ACR != "1" || !slices.Equal(claims.AMR, []string{"swk", "user", "mfa"}) {
		t.Fatalf("id token after a passkey sign-in: acr %q amr %v", claims.ACR, claims.AMR)
	}

	d, err := db.Open(context.Background(), te["SSO_DATABASE_URL"], db.PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var signCount int64
	var lastUsed time.Time
	if err := d.QueryRow(context.Background(), `SELECT sign_count, last_used_at FROM webauthn_credentials WHERE id = ?`, a.CredentialID()).Scan(&signCount, &lastUsed); err != nil {
		t.Fatal(err)
	}
	if signCount != 2 || lastUsed.IsZero() {
		t.Fatalf("after sign-in: sign_count %d, last_used_at %v", signCount, lastUsed)
	}

	t.Run("as the second factor after the password", func(t *testing.T) {
		enrolTOTP(t, b, base)
		b4 := browser(t)
		resp, err := b4.Get(base + "/login")
		if err != nil {
			t.Fatal(err)
		}
		resp = submit(t, b4, base, "/login", body(t, resp), url.Values{"identifier": {"alice"}, "password": {"a long test passphrase"}})
		if page := body(t, resp); !strings.Contains(page, `id="passkey-mfa"`) {
			t.Fatalf("the code page offers no passkey: %.500s", page)
		}
		csrf := csrfOf(t, b4, base+"/login/mfa")
		status, options := postJSON(t, b4, base, "/login/mfa/passkey/begin", csrf, map[string]string{})
		if status != http.StatusOK {
			t.Fatalf("begin: %d %s", status, options)
		}
		cred, err := a.Get(options)
		if err != nil {
			t.Fatal(err)
		}
		status, out := postJSON(t, b4, base, "/login/mfa/passkey/finish", csrf, map[string]any{"credential": json.RawMessage(cred)})
		if status != http.StatusOK || !strings.Contains(string(out), `"redirect"`) {
			t.Fatalf("finish: %d %s", status, out)
		}
		_, idt := tax.login(b4, "", "")
		if amr := amrOf(t, idt); !slices.Contains(amr, "pwd") || !slices.Contains(amr, "swk") || !slices.Contains(amr, "mfa") {
			t.Fatalf("amr %v, want pwd, swk and mfa", amr)
		}
	})

	t.Run("a replayed assertion is refused", func(t *testing.T) {
		b3 := browser(t)
		csrf := csrfOf(t, b3, base+"/login")
		status, out := postJSON(t, b3, base, "/passkeys/login/finish", csrf, map[string]any{"credential": used, "return_to": "/"})
		if status != http.StatusBadRequest || !strings.Contains(string(out), `"error_description"`) {
			t.Fatalf("replay without its ceremony: %d %s", status, out)
		}
		if status, _ := postJSON(t, b3, base, "/passkeys/login/begin", csrf, map[string]bool{}); status != http.StatusOK {
			t.Fatal("begin failed")
		}
		status, out = postJSON(t, b3, base, "/passkeys/login/finish", csrf, map[string]any{"credential": used, "return_to": "/"})
		if status != http.StatusUnauthorized || !strings.Contains(string(out), `"access_denied"`) {
			t.Fatalf("replay under a new challenge: %d %s", status, out)
		}
	})

	t.Run("a wrong origin is refused", func(t *testing.T) {
		evil := *a
		evil.Origin = "http://evil.localhost"
		status, out, _ := passkeyLogin(t, browser(t), base, &evil, "/")
		if status != http.StatusUnauthorized || !strings.Contains(string(out), `"access_denied"`) {
			t.Fatalf("wrong origin: %d %s", status, out)
		}
	})
}
