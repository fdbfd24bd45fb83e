package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pemPair returns a fresh self-signed certificate and its key, in PEM.
func pemPair(t *testing.T) (cert, key []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func TestTLSFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c1, k1 := pemPair(t)
	_, k2 := pemPair(t)
	cert, key, otherKey := write("c.pem", c1), write("k.pem", k1), write("k2.pem", k2)
	garbage := write("junk.pem", []byte("hello"))
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name, cert, key string
		wantErr         string // "" for success; else text the error must hold
	}{
		{"neither: plain HTTP", "", "", ""},
		{"matching pair", cert, key, ""},
		{"certificate without key", cert, "", "SSO_TLS_CERT_FILE needs SSO_TLS_KEY_FILE"},
		{"key without certificate", "", key, "SSO_TLS_KEY_FILE needs SSO_TLS_CERT_FILE"},
		{"unreadable certificate", missing, key, "invalid SSO_TLS_CERT_FILE"},
		{"certificate file that is not PEM", garbage, key, "invalid SSO_TLS_CERT_FILE"},
		{"unreadable key", cert, missing, "invalid SSO_TLS_KEY_FILE"},
		{"key of another certificate", cert, otherKey, "invalid SSO_TLS_KEY_FILE"},
		{"key file that is not PEM", cert, garbage, "invalid SSO_TLS_KEY_FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load(t, nil, map[string]string{"SSO_TLS_CERT_FILE": tt.cert, "SSO_TLS_KEY_FILE": tt.key})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if c.TLSCertFile != tt.cert || c.TLSKeyFile != tt.key {
					t.Errorf("TLS files %q %q, want %q %q", c.TLSCertFile, c.TLSKeyFile, tt.cert, tt.key)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Load = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
