package certs

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/emmansun/gmsm/pkcs7"
	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/sm3"
	"github.com/emmansun/gmsm/smx509"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

func post(t *testing.T, mux http.Handler, body []byte) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/certs/api/v1/verify", bytes.NewReader(body)))
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("status %d, body not JSON: %q", rec.Code, rec.Body.String())
	}
	return rec, out
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyEndpoint(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, _ := newTestService(t, d)
		initCA(t, s)
		leaf := issueUser(t, s, nil)
		mux := http.NewServeMux()
		s.Register(mux)
		msg := []byte("a form " + randomHex(t))
		sig, err := s.Sign(ctx, leaf.ID, msg)
		if err != nil {
			t.Fatal(err)
		}
		cms, err := s.SignCMS(ctx, leaf.ID, msg)
		if err != nil {
			t.Fatal(err)
		}
		b64 := base64.StdEncoding.EncodeToString
		sum := sm3.Sum(msg)
		e, _ := Digest(parsed(t, leaf), msg)
		cases := []struct {
			name      string
			body      map[string]string
			wantValid bool
		}{
			{"raw", map[string]string{"data_base64": b64(msg), "signature_base64": b64(sig), "certificate_pem": string(PEM(leaf.DER))}, true},
			{"raw digest", map[string]string{"sm3_digest_hex": hex.EncodeToString(e), "signature_base64": b64(sig), "certificate_pem": string(PEM(leaf.DER))}, true},
			{"raw tampered", map[string]string{"data_base64": b64([]byte("forged")), "signature_base64": b64(sig), "certificate_pem": string(PEM(leaf.DER))}, false},
			{"cms", map[string]string{"data_base64": b64(msg), "cms_base64": b64(cms)}, true},
			{"cms digest", map[string]string{"sm3_digest_hex": hex.EncodeToString(sum[:]), "cms_base64": b64(cms)}, true},
			{"cms tampered", map[string]string{"data_base64": b64([]byte("forged")), "cms_base64": b64(cms)}, false},
		}
		for _, tc := range cases {
			rec, out := post(t, mux, mustJSON(t, tc.body))
			if rec.Code != http.StatusOK {
				t.Fatalf("%s: status %d %v", tc.name, rec.Code, out)
			}
			if out["valid"] != tc.wantValid {
				t.Errorf("%s: valid = %v, want %v (%v)", tc.name, out["valid"], tc.wantValid, out["reasons"])
			}
			if signer, _ := out["signer"].(map[string]any); signer["serial"] != leaf.Serial {
				t.Errorf("%s: signer %v", tc.name, out["signer"])
			}
		}
	})
}

func TestVerifyEndpointRejectsMalformedInput(t *testing.T) {
	d := dbtest.Open(t, db.SQLite)
	s, _ := newTestService(t, d)
	initCA(t, s)
	leaf := issueUser(t, s, nil)
	mux := http.NewServeMux()
	s.Register(mux)
	certPEM := string(PEM(leaf.DER))
	goodSig := base64.StdEncoding.EncodeToString([]byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01})
	data := base64.StdEncoding.EncodeToString([]byte("x"))
	cases := []struct {
		name, body, want string
	}{
		{"not json", `{"data_base64":`, "not the expected JSON"},
		{"unknown field", `{"foo":1}`, "unknown field"},
		{"no content", `{"signature_base64":"` + goodSig + `"}`, "data_base64 or sm3_digest_hex is required"},
		{"both contents", `{"data_base64":"` + data + `","sm3_digest_hex":"00"}`, "not both"},
		{"bad base64", `{"data_base64":"***"}`, "data_base64 is not standard base64"},
		{"short digest", `{"sm3_digest_hex":"abcd","cms_base64":""}`, "64 hexadecimal digits"},
		{"signature not DER", `{"data_base64":"` + data + `","signature_base64":"AAAA","certificate_pem":` + jsonString(certPEM) + `}`, "not a DER SEQUENCE"},
		{"signature trailing", `{"data_base64":"` + data + `","signature_base64":"` + base64.StdEncoding.EncodeToString(append([]byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01}, 0)) + `","certificate_pem":` + jsonString(certPEM) + `}`, "trailing bytes"},
		{"pem missing", `{"data_base64":"` + data + `","signature_base64":"` + goodSig + `","certificate_pem":"nope"}`, "no PEM block"},
		{"pem wrong type", `{"data_base64":"` + data + `","signature_base64":"` + goodSig + `","certificate_pem":` + jsonString(string(pemEncode("PUBLIC KEY", []byte{1}))) + `}`, "want CERTIFICATE"},
		{"pem bad DER", `{"data_base64":"` + data + `","signature_base64":"` + goodSig + `","certificate_pem":` + jsonString(string(pemEncode("CERTIFICATE", []byte{0x30, 0x03, 1, 2}))) + `}`, "certificate DER"},
		{"cms garbage", `{"data_base64":"` + data + `","cms_base64":"MAMCAQE="}`, "not a CMS SignedData"},
		{"cms with cert", `{"data_base64":"` + data + `","cms_base64":"MAMCAQE=","certificate_pem":"x"}`, "excludes"},
		{"signed_at bad", `{"data_base64":"` + data + `","signature_base64":"` + goodSig + `","certificate_pem":` + jsonString(certPEM) + `,"signed_at":"yesterday"}`, "RFC 3339"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec, out := post(t, mux, []byte(tc.body))
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400 (%v)", rec.Code, out)
			}
			if msg, _ := out["error_description"].(string); !strings.Contains(msg, tc.want) {
				t.Errorf("error_description %q lacks %q", msg, tc.want)
			}
		})
	}
	t.Run("too large", func(t *testing.T) {
		body := `{"data_base64":"` + strings.Repeat("A", MaxVerifyBody) + `"}`
		rec, _ := post(t, mux, []byte(body))
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d, want 413", rec.Code)
		}
	})
}

func TestCRLEndpoint(t *testing.T) {
	d := dbtest.Open(t, db.SQLite)
	s, _ := newTestService(t, d)
	mux := http.NewServeMux()
	s.Register(mux)
	get := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/certs/crl", nil))
		return rec
	}
	if rec := get(); rec.Code != http.StatusNotFound {
		t.Fatalf("CRL without a CA: status %d, want 404", rec.Code)
	}
	ca := initCA(t, s)
	leaf := issueUser(t, s, nil)
	if err := s.Revoke(context.Background(), leaf.Serial, ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	rec := get()
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/pkix-crl" {
		t.Fatalf("status %d, type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	crl, err := smx509.ParseRevocationList(rec.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(parsed(t, ca.Issuer)); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	if len(crl.RevokedCertificateEntries) != 1 {
		t.Fatalf("CRL lists %d certificates, want 1", len(crl.RevokedCertificateEntries))
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// FuzzVerifyRequest feeds the request parser arbitrary bodies: it must
// answer with a request or an ErrInvalid error, never panic.
func FuzzVerifyRequest(f *testing.F) {
	f.Add([]byte(`{"data_base64":"eA==","signature_base64":"MAYCAQECAQE=","certificate_pem":"-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n"}`))
	f.Add([]byte(`{"sm3_digest_hex":"` + strings.Repeat("ab", 32) + `","cms_base64":"MIAGCSqGSIb3DQEHAqCAMIACAQExADALBgkqhkiG9w0BBwEAAA=="}`))
	f.Add([]byte(`{"data_base64":"eA==","cms_base64":"MAMCAQE="}`))
	f.Add([]byte(`{}`))
	for _, seed := range realSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseVerifyRequest(body)
		if err != nil {
			if !errorsIsInvalid(err) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		if req.CMS == nil && req.Raw.Certificate == nil {
			t.Fatal("accepted request without a certificate or a CMS")
		}
	})
}

// realSeeds are well-formed requests, so the fuzzer starts from real
// certificates, signatures and CMS structures rather than from JSON alone.
func realSeeds(f *testing.F) [][]byte {
	key := newKey(f)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "seed"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := smx509.CreateCertificate(rand.Reader, tpl, tpl, key.Public(), key)
	if err != nil {
		f.Fatal(err)
	}
	cert, _ := smx509.ParseCertificate(der)
	msg := []byte("seed")
	sig, _ := sm2.SignASN1(rand.Reader, key, msg, sm2.DefaultSM2SignerOpts)
	sd, err := pkcs7.NewSMSignedData(msg)
	if err != nil {
		f.Fatal(err)
	}
	if err := sd.AddSigner(cert, key, pkcs7.SignerInfoConfig{}); err != nil {
		f.Fatal(err)
	}
	sd.Detach()
	cms, err := sd.Finish()
	if err != nil {
		f.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString
	raw, _ := json.Marshal(map[string]string{"data_base64": b64(msg), "signature_base64": b64(sig), "certificate_pem": string(PEM(der)), "signed_at": "2026-01-02T03:04:05Z"})
	withCMS, _ := json.Marshal(map[string]string{"data_base64": b64(msg), "cms_base64": b64(cms)})
	return [][]byte{raw, withCMS}
}
