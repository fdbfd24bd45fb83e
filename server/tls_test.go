package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a log sink the server's goroutines and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// selfSigned returns PEM certificate and key for a localhost certificate
// whose common name is cn.
func selfSigned(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// writePair writes the files and stamps them with mod, so that a change is
// seen even on file systems with coarse timestamps.
func writePair(t *testing.T, certFile, keyFile string, certPEM, keyPEM []byte, mod time.Time) {
	t.Helper()
	for _, f := range []struct {
		path string
		data []byte
	}{{certFile, certPEM}, {keyFile, keyPEM}} {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(f.path, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
}

// servedCN connects to addr and returns the common name of the certificate
// the server presented.
func servedCN(t *testing.T, addr string) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) // the test checks the certificate itself
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}

func TestTLSCertificateReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	base := time.Now().Add(-time.Hour)
	c1, k1 := selfSigned(t, "first")
	writePair(t, certFile, keyFile, c1, k1, base)

	var logs lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	r, err := NewCertReloader(certFile, keyFile, logger)
	if err != nil {
		t.Fatal(err)
	}
	var clockMu sync.Mutex
	clock := time.Now()
	r.now = func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock }
	advance := func() { clockMu.Lock(); clock = clock.Add(DefaultCertCheckInterval); clockMu.Unlock() }

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }), Timeouts{}, logger)
	srv.TLSConfig = r.TLSConfig()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- Run(ctx, srv, ln, time.Second, logger) }()
	t.Cleanup(func() { cancel(); <-ran })
	addr := ln.Addr().String()

	if got := servedCN(t, addr); got != "first" {
		t.Fatalf("served %q, want the first certificate", got)
	}

	c2, k2 := selfSigned(t, "second")
	writePair(t, certFile, keyFile, c2, k2, base.Add(time.Minute))
	if got := servedCN(t, addr); got != "first" {
		t.Errorf("served %q before the check interval passed, want the first certificate still", got)
	}
	advance()
	if got := servedCN(t, addr); got != "second" {
		t.Fatalf("served %q after replacing the files, want the second certificate", got)
	}

	// A certificate whose key is another's, then garbage: the second stays.
	c3, _ := selfSigned(t, "third")
	writePair(t, certFile, keyFile, c3, k2, base.Add(2*time.Minute))
	advance()
	if got := servedCN(t, addr); got != "second" {
		t.Errorf("served %q after a mismatched replacement, want the second certificate kept", got)
	}
	writePair(t, certFile, keyFile, []byte("not a certificate"), k2, base.Add(3*time.Minute))
	advance()
	if got := servedCN(t, addr); got != "second" {
		t.Errorf("served %q after a garbage replacement, want the second certificate kept", got)
	}
	if !strings.Contains(logs.String(), "TLS certificate not reloaded") {
		t.Errorf("a bad replacement was not logged as an error: %s", logs.String())
	}

	// Fixing the files is picked up again.
	c4, k4 := selfSigned(t, "fourth")
	writePair(t, certFile, keyFile, c4, k4, base.Add(4*time.Minute))
	advance()
	if got := servedCN(t, addr); got != "fourth" {
		t.Errorf("served %q after a good replacement, want the fourth certificate", got)
	}

	// HTTP still works over the connection, and TLS 1.1 is refused.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET over TLS = %d, want 200", resp.StatusCode)
	}
	if conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil {
		conn.Close()
		t.Error("a TLS 1.1 handshake succeeded, want TLS 1.2 at least")
	}
}

func TestNewCertReloaderRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	c1, k1 := selfSigned(t, "one")
	_, k2 := selfSigned(t, "two")
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cert, key, otherKey := write("c.pem", c1), write("k.pem", k1), write("k2.pem", k2)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	tests := []struct {
		name      string
		cert, key string
	}{
		{"missing certificate", filepath.Join(dir, "none.pem"), key},
		{"missing key", cert, filepath.Join(dir, "none.pem")},
		{"key of another certificate", cert, otherKey},
		{"certificate given as key", cert, cert},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewCertReloader(tt.cert, tt.key, logger); err == nil {
				t.Error("NewCertReloader succeeded, want an error")
			}
		})
	}
	if _, err := NewCertReloader(cert, key, logger); err != nil {
		t.Errorf("a matching pair: %v", err)
	}
}
