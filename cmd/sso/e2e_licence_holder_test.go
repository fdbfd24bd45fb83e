package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/smx509"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/govsso/sso/config"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/users"
)

// TestLicenceHolderEndToEnd runs "bring your licence once" and CSR
// submission through a real `sso serve` with a relying party's real access
// token: a licence issued to the person's ID number is refused to the
// application until the person allows it on the account-centre page, then
// read in full; its QR payload shows a counter only the shareable field;
// the same token obtains a certificate for the person's own SM2 key.
func TestLicenceHolderEndToEnd(t *testing.T) {
	te := newTestEnv(t, db.SQLite)
	if r := te.run(t, "", "certs", "init"); r.code != 0 {
		t.Fatalf("certs init: %s", r.stderr)
	}
	typeCode := e2eCreditCode(t) + "041"
	if r := te.run(t, "", "certs", "licence-type", "create", "--code", typeCode, "--name", "食品经营许可证",
		"--field", "scope:经营项目:required,shareable", "--field", "inspector"); r.code != 0 {
		t.Fatalf("licence-type create: %s", r.stderr)
	}
	const password = "a long test passphrase"
	if r := te.run(t, password+"\n", "user", "create", "--username", "holder", "--password-stdin"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	idNumber := e2eIDNumber(t)
	setVerifiedID(t, te, "holder", idNumber)
	deptSecret := createClient(t, te, "--id", "market-bureau", "--grant-type", "client_credentials", "--scope", "licences:issue")
	cb := "http://127.0.0.1:9/cb"
	taxSecret := createClient(t, te, "--id", "tax", "--name", "税务局", "--redirect-uri", cb, "--scope", "openid licences:read certs:request")
	base := startServer(t, te)

	cc := clientcredentials.Config{ClientID: "market-bureau", ClientSecret: deptSecret, TokenURL: base + "/oauth2/token", Scopes: []string{"licences:issue"}}
	dept, err := cc.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	code, lic := licenceCall(t, base, dept.AccessToken, "POST", "/certs/api/v1/licences", map[string]any{
		"type_code": typeCode, "licence_name": "食品经营许可证", "licence_number": "JY-2026-1", "holder_name": "王小明",
		"holder_id_type": "resident_id", "holder_id_number": idNumber, "issuer_name": "City Market Bureau",
		"issuer_credit_code": e2eCreditCode(t), "valid_to": "2099-12-31",
		"fields": map[string]string{"scope": "热食类食品制售", "inspector": "李四"}})
	if code != http.StatusCreated {
		t.Fatalf("issue: %d %v", code, lic)
	}
	id := lic["identifier"].(string)

	b := browser(t)
	tax := newRP(t, base, "tax", taxSecret, oidc.ScopeOpenID, "licences:read", "certs:request")
	tok, _ := tax.login(b, "holder", password)
	one := "/certs/api/v1/licences/" + id
	if code, out := licenceCall(t, base, tok.AccessToken, "GET", one, nil); code != http.StatusForbidden {
		t.Fatalf("before consent: %d %v", code, out)
	}
	resp, err := b.Get(base + "/account/licences/share?client_id=tax&type_code=" + typeCode)
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, resp)
	if !strings.Contains(page, "税务局") || !strings.Contains(page, "食品经营许可证") {
		t.Fatalf("share page: %d %.800s", resp.StatusCode, page)
	}
	resp = submit(t, b, base, "/account/licences/share", page, nil)
	if page = body(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(page, "JY-2026-1") {
		t.Fatalf("after allowing: %d %.800s", resp.StatusCode, page)
	}
	code, got := licenceCall(t, base, tok.AccessToken, "GET", one, nil)
	if fields, _ := got["fields"].(map[string]any); code != http.StatusOK || fields["inspector"] != "李四" {
		t.Fatalf("consented read: %d %v", code, got)
	}
	code, qr := licenceCall(t, base, tok.AccessToken, "POST", one+":qr", nil)
	if code != http.StatusOK {
		t.Fatalf("qr: %d %v", code, qr)
	}
	code, v := licenceCall(t, base, "", "POST", "/certs/api/v1/licences/verify", map[string]any{"qr_payload": qr["qr_payload"]})
	shown, _ := v["shown"].(map[string]any)
	if code != http.StatusOK || v["result"] != "valid" || shown == nil || fmt.Sprint(shown["fields"]) != "map[scope:热食类食品制售]" {
		t.Fatalf("qr verification: %d %v", code, v)
	}

	key, err := sm2.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := smx509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	code, cert := licenceCall(t, base, tok.AccessToken, "POST", "/certs/api/v1/certificates",
		map[string]string{"csr_pem": string(pemBlock("CERTIFICATE REQUEST", csr))})
	if code != http.StatusCreated || !strings.Contains(fmt.Sprint(cert["subject"]), "王小明") {
		t.Fatalf("csr: %d %v", code, cert)
	}
	// The same request pasted on the account centre's page.
	resp, err = b.Get(base + "/account/certificates")
	if err != nil {
		t.Fatal(err)
	}
	resp = submit(t, b, base, "/account/certificates", body(t, resp), url.Values{"csr_pem": {string(pemBlock("CERTIFICATE REQUEST", csr))}})
	if page := body(t, resp); resp.StatusCode != http.StatusCreated || strings.Count(page, "BEGIN CERTIFICATE") != 3 {
		t.Fatalf("csr page: %d %.800s", resp.StatusCode, page)
	}
}

// setVerifiedID gives a person a verified name, ID number and level 2, as
// the identity verification page would.
func setVerifiedID(t *testing.T, te testEnv, username, idNumber string) {
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
		u.DisplayName, u.IDNumber, u.AssuranceLevel = "王小明", idNumber, 2
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// e2eIDNumber makes a random resident ID number with a correct check character.
func e2eIDNumber(t *testing.T) string {
	t.Helper()
	weights := [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	n, err := rand.Int(rand.Reader, big.NewInt(1000))
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("11010119900615%03d", n.Int64())
	sum := 0
	for i := range 17 {
		sum += int(body[i]-'0') * weights[i]
	}
	return body + string("10X98765432"[sum%11])
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
