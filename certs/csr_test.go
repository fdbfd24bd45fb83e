package certs

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/smx509"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

func makeCSR(t *testing.T, key any, subject pkix.Name) []byte {
	t.Helper()
	der, err := smx509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: subject}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestParseCSR(t *testing.T) {
	good := makeCSR(t, newKey(t), pkix.Name{CommonName: "x"})
	bad := bytes.Clone(good)
	bad[len(bad)-3] ^= 0x40 // inside the signature's s
	cases := []struct {
		name    string
		in      []byte
		wantErr string
	}{
		{"sm2 DER", good, ""},
		{"sm2 PEM", pemEncode("CERTIFICATE REQUEST", good), ""},
		{"P-256 key", makeCSR(t, ecdsaP256(t), pkix.Name{CommonName: "x"}), "not an SM2 key"},
		{"bad signature", bad, "signature does not verify"},
		{"truncated", good[:len(good)/2], "not a PKCS #10"},
		{"garbage", []byte("garbage"), "not a PKCS #10"},
		{"certificate PEM", pemEncode("CERTIFICATE", good), "want CERTIFICATE REQUEST"},
		{"trailing data", append(pemEncode("CERTIFICATE REQUEST", good), "x"...), "data after the PEM block"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCSR(tc.in)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseCSR: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ParseCSR: err = %v, want ErrInvalid naming %q", err, tc.wantErr)
			}
		})
	}
}

// A CSR made by OpenSSL 3 for an SM2 key (signed with the default signer
// ID) is accepted.
func TestParseCSRFromOpenSSL(t *testing.T) {
	needOpenSSL(t)
	dir := t.TempDir()
	for _, args := range [][]string{
		{"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2", "-out", "k.pem"},
		{"req", "-new", "-key", "k.pem", "-sm3", "-sigopt", distid, "-subj", "/CN=openssl", "-out", "req.pem"},
	} {
		if out, err := openssl(t, dir, args...); err != nil {
			t.Fatalf("openssl %s: %v\n%s", args[0], err, out)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "req.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseCSR(b); err != nil {
		t.Fatalf("OpenSSL CSR refused: %v", err)
	}
}

// personAuth fakes AuthenticatePerson: the bearer token is
// "client:user:scope1,scope2".
func personAuth(r *http.Request) (string, string, []string, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	parts := strings.SplitN(tok, ":", 3)
	if !ok || len(parts) != 3 {
		return "", "", nil, errors.New("no token")
	}
	return parts[0], parts[1], strings.Split(parts[2], ","), nil
}

func TestCSRSubmission(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newSignFixture(t, d)
		f.sr.cfg.AuthenticatePerson = personAuth
		mux := http.NewServeMux()
		f.sr.Register(mux)
		key := newKey(t)
		// The subject asks for another name and carries an ID number: both ignored.
		csr := pemEncode("CERTIFICATE REQUEST", makeCSR(t, key, pkix.Name{CommonName: "Mallory", SerialNumber: "110101199003074514"}))
		body, _ := json.Marshal(map[string]string{"csr_pem": string(csr)})
		post := func(token string, body []byte) *httptest.ResponseRecorder {
			req := httptest.NewRequest("POST", "/certs/api/v1/certificates", bytes.NewReader(body))
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			return rec
		}
		count := func() int {
			list, err := f.ca.List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			return len(list)
		}
		before := count()
		refusals := []struct {
			name, token string
			body        []byte
			status      int
			detail      string
		}{
			{"no token", "", body, 401, "access token is required"},
			{"no scope", "app:alice:openid", body, 403, "lacks the scope certs:request"},
			{"client token", "app::certs:request", body, 403, "not to a person"},
			{"level 1", "app:bob:certs:request", body, 403, "level 2"},
			{"disabled", "app:carol:certs:request", body, 403, "not active"},
			{"not JSON", "app:alice:certs:request", []byte("csr"), 400, "expected JSON"},
			{"unknown field", "app:alice:certs:request", []byte(`{"csr_pem":"x","subject":"y"}`), 400, "unknown field"},
			{"empty", "app:alice:certs:request", []byte(`{}`), 400, "csr_pem is required"},
			{"P-256 key", "app:alice:certs:request", mustJSON(t, map[string]string{"csr_pem": string(pemEncode("CERTIFICATE REQUEST", makeCSR(t, ecdsaP256(t), pkix.Name{CommonName: "x"})))}), 400, "not an SM2 key"},
			{"too big", "app:alice:certs:request", bytes.Repeat([]byte("a"), maxCSRBody+1), 413, "exceeds"},
		}
		for _, tc := range refusals {
			rec := post(tc.token, tc.body)
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.detail) {
				t.Errorf("%s: %d %s, want %d naming %q", tc.name, rec.Code, rec.Body, tc.status, tc.detail)
			}
		}
		if n := count(); n != before {
			t.Fatalf("refused CSRs stored %d certificates", n-before)
		}

		rec := post("app:alice:openid,certs:request", body)
		if rec.Code != http.StatusCreated {
			t.Fatalf("CSR: %d %s", rec.Code, rec.Body)
		}
		var out CertificateJSON
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatal(err)
		}
		cert, err := ParseCertificatePEM([]byte(out.CertificatePEM))
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := isSM2Key(cert.PublicKey)
		if !pub.Equal(&key.PublicKey) {
			t.Fatal("the certificate is not for the CSR's key")
		}
		if cert.Subject.CommonName != "王小明" || cert.Subject.SerialNumber != f.sr.pseudonym("alice") {
			t.Fatalf("subject %v, want the verified name and the pseudonym", cert.Subject)
		}
		if strings.Contains(out.Subject, "Mallory") || strings.Contains(out.Subject, "110101") {
			t.Fatalf("the CSR's subject leaked into the certificate: %s", out.Subject)
		}
		if _, err := f.ca.privateKey(context.Background(), out.ID); !errors.Is(err, ErrNoKey) {
			t.Fatalf("server holds a key for a CSR certificate: %v", err)
		}
		first, _ := pem.Decode([]byte(out.ChainPEM))
		if first == nil {
			t.Fatal("chain_pem holds no PEM block")
		}
		chain, err := smx509.ParseCertificate(first.Bytes)
		if err != nil || cert.CheckSignatureFrom(chain) != nil {
			t.Fatalf("chain_pem does not start with the issuing CA: %v", err)
		}
		if got := f.actions(t, "alice"); !containsAll(got, "certs.issue", "certs.csr_issue") {
			t.Fatalf("audit for alice: %v", got)
		}
	})
}

func containsAll(have []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || h == w
		}
		if !found {
			return false
		}
	}
	return true
}

// Hostile CSRs end in an ErrInvalid naming the problem, never a panic or
// an accepted request without a valid SM2 self-signature.
func FuzzParseCSR(f *testing.F) {
	key, err := sm2.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	good, err := smx509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "seed"}}, key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(pemEncode("CERTIFICATE REQUEST", good))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte{0x30, 0x82, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		csr, err := ParseCSR(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not match ErrInvalid", err)
			}
			return
		}
		if _, ok := isSM2Key(csr.PublicKey); !ok || csr.CheckSignature() != nil {
			t.Fatal("accepted a CSR without an SM2 key and a valid signature")
		}
	})
}
