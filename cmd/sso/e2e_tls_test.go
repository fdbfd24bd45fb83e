package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govsso/sso/db"
)

// writeCert writes a fresh self-signed certificate for localhost and
// 127.0.0.1 and its key into dir and returns the certificate (for a
// client's trust store) and the two paths.
func writeCert(t *testing.T, dir, name string) (*x509.Certificate, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, certFile, keyFile
}

func TestServeOverTLS(t *testing.T) {
	dir := t.TempDir()
	cert, certFile, keyFile := writeCert(t, dir, "server")
	_, _, otherKey := writeCert(t, dir, "other")

	bad := newTestEnv(t, db.SQLite)
	bad["SSO_TLS_CERT_FILE"], bad["SSO_TLS_KEY_FILE"] = certFile, otherKey
	if r := bad.run(t, "", "serve"); r.code == 0 || !strings.Contains(r.stderr, "SSO_TLS_KEY_FILE") {
		t.Fatalf("serve with another certificate's key: exit %d, %q; want a start-up error naming SSO_TLS_KEY_FILE", r.code, r.stderr)
	}

	te := newTestEnv(t, db.SQLite)
	addr := freeAddr(t)
	te["SSO_ADDR"], te["SSO_ISSUER"] = addr, "https://"+addr
	te["SSO_TLS_CERT_FILE"], te["SSO_TLS_KEY_FILE"] = certFile, keyFile
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	logs := &syncBuffer{}
	go func() {
		done <- run(ctx, []string{"serve"}, env{stdin: strings.NewReader(""), stdout: logs, stderr: logs, getenv: func(k string) string { return te[k] }})
	}()
	t.Cleanup(func() { cancel(); <-done })

	roots := x509.NewCertPool()
	roots.AddCert(cert)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	var resp *http.Response
	for range 200 {
		var err error
		if resp, err = client.Get("https://" + addr + "/healthz/ready"); err == nil && resp.StatusCode == http.StatusOK {
			break
		}
		if resp != nil {
			resp.Body.Close()
			resp = nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	if resp == nil {
		t.Fatalf("no ready answer over TLS: %s", logs.String())
	}
	resp.Body.Close()
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Errorf("connection state %+v, want TLS 1.2 or later", resp.TLS)
	}
	if plain, err := http.Get("http://" + addr + "/healthz/ready"); err == nil {
		plain.Body.Close()
		if plain.StatusCode == http.StatusOK {
			t.Error("plain HTTP was served beside TLS")
		}
	}
	if r := te.run(t, "", "healthcheck"); r.code != 0 {
		t.Errorf("healthcheck of a TLS server: exit %d, %s", r.code, r.stderr)
	}
}
