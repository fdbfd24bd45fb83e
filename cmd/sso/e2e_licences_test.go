package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/govsso/sso/certs"
	"github.com/govsso/sso/config"
	"github.com/govsso/sso/db"
)

func TestLicencesEndToEnd(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) { testLicences(t, dialect) })
	}
}

// testLicences issues a licence through the HTTP API with a department
// client's real access token, checks its status and verifies it; a client
// whose token lacks licences:issue is refused.
func testLicences(t *testing.T, dialect db.Dialect) {
	te := newTestEnv(t, dialect)
	if r := te.run(t, "", "certs", "init"); r.code != 0 {
		t.Fatalf("certs init: %s", r.stderr)
	}
	typeCode := createLicenceType(t, te)
	deptSecret := createClient(t, te, "--id", "market-bureau", "--grant-type", "client_credentials", "--scope", "licences:issue reports")
	base := startServer(t, te)
	token := func(scope string) string {
		cfg := clientcredentials.Config{ClientID: "market-bureau", ClientSecret: deptSecret, TokenURL: base + "/oauth2/token", Scopes: []string{scope}}
		tok, err := cfg.Token(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return tok.AccessToken
	}
	issue := map[string]any{"type_code": typeCode, "holder_name": "Test Shop", "holder_id_type": certs.HolderCreditCode,
		"holder_id_number": e2eCreditCode(t), "issuer_name": "City Market Bureau", "issuer_credit_code": e2eCreditCode(t),
		"valid_to": "2099-12-31", "fields": map[string]string{"scope": "retail"}}

	if code, out := licenceCall(t, base, token("reports"), "POST", "/certs/api/v1/licences", issue); code != http.StatusForbidden {
		t.Fatalf("issue without licences:issue: %d %v", code, out)
	}
	code, lic := licenceCall(t, base, token("licences:issue"), "POST", "/certs/api/v1/licences", issue)
	if code != http.StatusCreated {
		t.Fatalf("issue: %d %v", code, lic)
	}
	id, _ := lic["identifier"].(string)
	if code, st := licenceCall(t, base, "", "GET", "/certs/api/v1/licences/"+id+"/status", nil); code != http.StatusOK || st["status"] != "valid" {
		t.Fatalf("status: %d %v", code, st)
	}
	signed := map[string]any{"signed_data": lic["signed_data"], "signature": lic["signature"]}
	if code, v := licenceCall(t, base, "", "POST", "/certs/api/v1/licences/verify", signed); code != http.StatusOK || v["result"] != "valid" {
		t.Fatalf("verify: %d %v", code, v)
	}
	if code, out := licenceCall(t, base, "not-a-token", "POST", "/certs/api/v1/licences/"+id+":suspend", nil); code != http.StatusUnauthorized {
		t.Fatalf("suspend with a bad token: %d %v", code, out)
	}
}

// createLicenceType registers a licence type directly, as there is no
// admin endpoint for types yet.
func createLicenceType(t *testing.T, te testEnv) string {
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
	s, err := certService(a)
	if err != nil {
		t.Fatal(err)
	}
	body := e2eCreditCode(t)
	typ, err := certs.NewLicences(s, a.kek, certs.LicenceConfig{}).CreateLicenceType(ctx, certs.LicenceType{
		TypeCode: body + "001", Name: "Business licence", DefiningBodyCreditCode: body,
		Fields: []certs.LicenceField{{Name: "scope", Required: true}}})
	if err != nil {
		t.Fatal(err)
	}
	return typ.TypeCode
}

func licenceCall(t *testing.T, base, bearer, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader = http.NoBody
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, base+path, rd)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// e2eCreditCode makes a random unified social credit code with a correct check character.
func e2eCreditCode(t *testing.T) string {
	t.Helper()
	const alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
	weights := [17]int{1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28}
	var b strings.Builder
	b.WriteString("91")
	sum := 9*weights[0] + 1*weights[1]
	for i := 2; i < 17; i++ {
		v, err := rand.Int(rand.Reader, big.NewInt(10))
		if err != nil {
			t.Fatal(err)
		}
		b.WriteByte(byte('0' + v.Int64()))
		sum += int(v.Int64()) * weights[i]
	}
	b.WriteByte(alphabet[(31-sum%31)%31])
	return b.String()
}
