package main

import (
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/smx509"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/govsso/sso/config"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/users"
)

func TestSignRequestsEndToEnd(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) { testSignRequests(t, dialect) })
	}
}

// testSignRequests runs a department system's signature request through a
// real `sso serve`: the client asks with its client_credentials token, the
// person signs in through the pages and approves, the client fetches the
// signature and checks it (and OpenSSL does), and the callback arrives
// signed with the server's published keys. Then a decline, an expiry, and
// another client's attempt to read the request.
func testSignRequests(t *testing.T, dialect db.Dialect) {
	te := newTestEnv(t, dialect)
	if r := te.run(t, "", "certs", "init"); r.code != 0 {
		t.Fatalf("certs init: %s", r.stderr)
	}
	const password = "a long test passphrase"
	if r := te.run(t, password+"\n", "user", "create", "--username", "signer", "--password-stdin"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	userID := raiseToLevelTwo(t, te, "signer", "王小明")
	secret := createClient(t, te, "--id", "permits-bureau", "--name", "Permits Bureau", "--grant-type", "client_credentials", "--scope", "sign:request reports")
	otherSecret := createClient(t, te, "--id", "tax-bureau", "--grant-type", "client_credentials", "--scope", "sign:request")

	callbacks := make(chan string, 10)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		callbacks <- string(b)
	}))
	defer receiver.Close()

	base := startServer(t, te)
	token := func(id, secret, scope string) string {
		cfg := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: base + "/oauth2/token", Scopes: []string{scope}}
		tok, err := cfg.Token(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return tok.AccessToken
	}
	bearer := token("permits-bureau", secret, "sign:request")
	doc := []byte("建设工程规划许可证申请表 No. 2026-0042")
	ask := func(expiresIn int) map[string]any {
		t.Helper()
		req := map[string]any{"data_base64": base64.StdEncoding.EncodeToString(doc), "title": "规划许可申请表",
			"sub": userID, "callback_url": receiver.URL + "/sign-callback"}
		if expiresIn > 0 {
			req["expires_in"] = expiresIn
		}
		code, out := licenceCall(t, base, bearer, "POST", "/certs/api/v1/sign-requests", req)
		if code != http.StatusCreated || out["status"] != "pending" {
			t.Fatalf("create: %d %v", code, out)
		}
		return out
	}

	if code, out := licenceCall(t, base, token("permits-bureau", secret, "reports"), "POST", "/certs/api/v1/sign-requests",
		map[string]any{"sm3_digest_hex": strings.Repeat("00", 32), "title": "x", "sub": userID, "callback_url": receiver.URL}); code != http.StatusForbidden {
		t.Fatalf("without sign:request: %d %v", code, out)
	}

	// Approve: the link sends the person to sign in, and back to the request.
	created := ask(0)
	id := created["id"].(string)
	b := browser(t)
	resp, err := b.Get(created["approval_url"].(string))
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, resp)
	if !strings.Contains(page, `name="password"`) {
		t.Fatalf("the link did not ask to sign in: %.400s", page)
	}
	resp = submit(t, b, base, "/login", page, url.Values{"identifier": {"signer"}, "password": {password}})
	page = body(t, resp)
	if !strings.Contains(page, "规划许可申请表") || !strings.Contains(page, "Permits Bureau") || !strings.Contains(page, "/approve") {
		t.Fatalf("request page after sign-in: %d %.800s", resp.StatusCode, page)
	}
	// Step up: a sign-in an hour old may not sign; approving sends the
	// person to sign in again and back to the request.
	ageSignIns(t, te, userID, time.Hour)
	resp, _ = b.Get(base + "/account/sign-requests/" + id)
	page = body(t, resp)
	if strings.Contains(page, "/approve") || !strings.Contains(page, "/login?return_to=%2Faccount%2Fsign-requests%2F"+id) {
		t.Fatalf("an old sign-in is offered approval: %.800s", page)
	}
	resp = submit(t, b, base, "/account/sign-requests/"+id+"/approve", page, nil)
	page = body(t, resp)
	if resp.Request.URL.Path != "/login" || !strings.Contains(page, `name="password"`) {
		t.Fatalf("approving with an old sign-in: %s %.400s", resp.Request.URL, page)
	}
	if code, got := licenceCall(t, base, bearer, "GET", "/certs/api/v1/sign-requests/"+id, nil); code != http.StatusOK || got["status"] != "pending" {
		t.Fatalf("signed without a step-up: %d %v", code, got)
	}
	resp = submit(t, b, base, "/login", page, url.Values{"identifier": {"signer"}, "password": {password}})
	page = body(t, resp)
	resp = submit(t, b, base, "/account/sign-requests/"+id+"/approve", page, nil)
	if page := body(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(page, "已完成签署") {
		t.Fatalf("approve: %d %.500s", resp.StatusCode, page)
	}
	if code, out := licenceCall(t, base, token("tax-bureau", otherSecret, "sign:request"), "GET", "/certs/api/v1/sign-requests/"+id, nil); code != http.StatusNotFound {
		t.Fatalf("another client read the request: %d %v", code, out)
	}
	code, got := licenceCall(t, base, bearer, "GET", "/certs/api/v1/sign-requests/"+id, nil)
	if code != http.StatusOK || got["status"] != "signed" || got["signer_id"] != "1234567812345678" {
		t.Fatalf("signed request: %d %v", code, got)
	}
	certPEM := got["certificate_pem"].(string)
	sig, _ := base64.StdEncoding.DecodeString(got["signature_base64"].(string))
	blk, _ := pem.Decode([]byte(certPEM))
	cert, err := smx509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "王小明" || strings.Contains(cert.Subject.String(), userID) {
		t.Fatalf("certificate subject %v", cert.Subject)
	}
	if !verifySM2(cert, doc, sig) {
		t.Fatal("the raw signature does not verify with the signer's certificate")
	}
	// The CMS through the server's own verification endpoint.
	code, v := licenceCall(t, base, "", "POST", "/certs/api/v1/verify", map[string]any{"cms_base64": got["cms_base64"],
		"data_base64": base64.StdEncoding.EncodeToString(doc)})
	if code != http.StatusOK || v["valid"] != true {
		t.Fatalf("cms verification: %d %v", code, v)
	}
	code, v = licenceCall(t, base, "", "POST", "/certs/api/v1/verify", map[string]any{"cms_base64": got["cms_base64"],
		"data_base64": base64.StdEncoding.EncodeToString([]byte("tampered"))})
	if code != http.StatusOK || v["valid"] != false {
		t.Fatalf("cms over a tampered document: %d %v", code, v)
	}
	opensslVerify(t, cert, doc, sig)
	checkCallback(t, base, callbacks, id, "signed", userID)

	resp, _ = b.Get(base + "/account")
	if page := body(t, resp); !strings.Contains(page, `href="/account/sign-requests"`) {
		t.Fatalf("the account centre does not link the signature requests: %.600s", page)
	}

	// Decline: the person, still signed in, says no.
	declined := ask(0)
	did := declined["id"].(string)
	resp, err = b.Get(base + "/account/sign-requests")
	if err != nil {
		t.Fatal(err)
	}
	if page := body(t, resp); !strings.Contains(page, "/account/sign-requests/"+did) || strings.Contains(page, "/account/sign-requests/"+id+`"`) {
		t.Fatalf("pending list: %.800s", page)
	}
	resp, _ = b.Get(base + "/account/sign-requests/" + did)
	resp = submit(t, b, base, "/account/sign-requests/"+did+"/decline", body(t, resp), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("decline: %d %.300s", resp.StatusCode, body(t, resp))
	}
	resp.Body.Close()
	if code, got := licenceCall(t, base, bearer, "GET", "/certs/api/v1/sign-requests/"+did, nil); code != http.StatusOK || got["status"] != "declined" || got["cms_base64"] != nil {
		t.Fatalf("declined request: %d %v", code, got)
	}
	checkCallback(t, base, callbacks, did, "declined", userID)

	// Expiry: a request the person leaves unanswered.
	short := ask(1)
	sid := short["id"].(string)
	time.Sleep(1100 * time.Millisecond)
	if code, got := licenceCall(t, base, bearer, "GET", "/certs/api/v1/sign-requests/"+sid, nil); code != http.StatusOK || got["status"] != "expired" {
		t.Fatalf("expired request: %d %v", code, got)
	}
	resp, _ = b.Get(base + "/account/sign-requests/" + sid)
	page = body(t, resp)
	if strings.Contains(page, "/approve") {
		t.Fatal("an expired request can still be approved")
	}
	checkCallback(t, base, callbacks, sid, "expired", userID)

	// Disabling the account revokes the signing certificate, and the
	// public status endpoint says so.
	serial := cert.SerialNumber.Text(16)
	if code, st := licenceCall(t, base, "", "GET", "/certs/api/v1/certificates/"+serial+"/status", nil); code != http.StatusOK || st["status"] != "good" {
		t.Fatalf("status before disabling: %d %v", code, st)
	}
	if r := te.run(t, "", "user", "disable", "signer"); r.code != 0 {
		t.Fatalf("user disable: %s", r.stderr)
	}
	if code, st := licenceCall(t, base, "", "GET", "/certs/api/v1/certificates/"+serial+"/status", nil); code != http.StatusOK ||
		st["status"] != "revoked" || st["revocation_reason"] != float64(5) {
		t.Fatalf("status after disabling: %d %v", code, st)
	}
}

// raiseToLevelTwo sets a person's verified name and level 2 directly, as
// the identity verification page would.
func raiseToLevelTwo(t *testing.T, te testEnv, username, name string) string {
	t.Helper()
	ctx := context.Background()
	cfg, err := config.Load(nil, func(k string) string { return te[k] })
	if err != nil {
		t.Fatal(err)
	}
	a, err := openApp(ctx, cfg, io.Discard, true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	u, err := a.users.GetByUsername(ctx, username)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.users.Update(ctx, u.ID, func(u *users.User) error {
		u.DisplayName, u.AssuranceLevel = name, 2
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// ageSignIns moves a person's sign-ins into the past, as if they signed in
// that long before.
func ageSignIns(t *testing.T, te testEnv, userID string, by time.Duration) {
	t.Helper()
	ctx := context.Background()
	cfg, err := config.Load(nil, func(k string) string { return te[k] })
	if err != nil {
		t.Fatal(err)
	}
	a, err := openApp(ctx, cfg, io.Discard, true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	if _, err := a.db.Exec(ctx, `UPDATE browser_sessions SET auth_time = ? WHERE user_id = ?`, time.Now().Add(-by).UTC(), userID); err != nil {
		t.Fatal(err)
	}
}

func verifySM2(cert *smx509.Certificate, doc, sig []byte) bool {
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	return ok && sm2.VerifyASN1WithSM2(pub, nil, doc, sig)
}

// opensslVerify checks the raw signature with OpenSSL 3 when it is installed.
func opensslVerify(t *testing.T, cert *smx509.Certificate, doc, sig []byte) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Log("openssl not installed; skipping its check")
		return
	}
	dir := t.TempDir()
	der, err := smx509.MarshalPKIXPublicKey(cert.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"doc": doc, "sig.der": sig, "pub.pem": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("openssl", "pkeyutl", "-verify", "-in", "doc", "-pubin", "-inkey", "pub.pem", "-rawin",
		"-digest", "sm3", "-pkeyopt", "distid:1234567812345678", "-sigfile", "sig.der")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "Signature Verified Successfully") {
		t.Fatalf("openssl pkeyutl -verify: %v\n%s", err, out)
	}
}

// checkCallback waits for the callback of a request and checks its
// signature against the server's published keys and its claims.
func checkCallback(t *testing.T, base string, callbacks chan string, id, status, sub string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case raw := <-callbacks:
			var cb struct {
				SignedNotification string `json:"signed_notification"`
			}
			if err := json.Unmarshal([]byte(raw), &cb); err != nil {
				t.Fatalf("callback body %q: %v", raw, err)
			}
			payload, err := oidc.NewRemoteKeySet(context.Background(), base+"/.well-known/jwks.json").VerifySignature(context.Background(), cb.SignedNotification)
			if err != nil {
				t.Fatalf("callback signature: %v", err)
			}
			var claims map[string]any
			json.Unmarshal(payload, &claims)
			if claims["sign_request_id"] != id {
				continue // an earlier request's callback
			}
			if claims["status"] != status || claims["sub"] != sub || claims["aud"] != "permits-bureau" || claims["iss"] != base {
				t.Fatalf("callback claims: %v", claims)
			}
			return
		case <-deadline:
			t.Fatalf("no %s callback for %s", status, id)
		}
	}
}
