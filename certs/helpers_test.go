package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/smx509"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/kek"
)

// testClock is a clock tests move by hand.
type testClock struct{ t time.Time }

func (c *testClock) now() time.Time { return c.t }

func newTestService(t testing.TB, d *db.DB) (*Service, *testClock) {
	t.Helper()
	key := make([]byte, kek.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	k, err := kek.New(key)
	if err != nil {
		t.Fatal(err)
	}
	clock := &testClock{t: time.Now().UTC()}
	s, err := New(d, k, Config{BaseURL: "https://sso.example.test", Audit: audit.NewLog(d), Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	return s, clock
}

func initCA(t testing.TB, s *Service) *CA {
	t.Helper()
	ca, err := s.Init(context.Background(), "Test City")
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	return ca
}

func issueUser(t testing.TB, s *Service, pub *ecdsa.PublicKey) *Certificate {
	t.Helper()
	c, err := s.Issue(context.Background(), IssueRequest{
		Subject:   pkix.Name{CommonName: "Test Person", SerialNumber: "P" + randomHex(t)},
		PublicKey: pub, Kind: KindUser, OwnerUserID: "user-" + randomHex(t),
	})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return c
}

func randomHex(t testing.TB) string {
	b, err := randomSerial()
	if err != nil {
		t.Fatal(err)
	}
	return strings.ToUpper(serialHex(new(big.Int).SetBytes(b[:6])))
}

func newKey(t testing.TB) *sm2.PrivateKey {
	t.Helper()
	k, err := sm2.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func parsed(t testing.TB, c *Certificate) *smx509.Certificate {
	t.Helper()
	p, err := c.Parsed()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// openssl runs the real binary and returns its combined output.
func openssl(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func needOpenSSL(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl binary not installed; CI must run the interoperability tests")
		}
		t.Skip("openssl binary not installed")
	}
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func publicKeyPEM(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := smx509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func pemEncode(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func pemBytes(t *testing.T, data []byte) []byte {
	t.Helper()
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatal("no PEM block")
	}
	return b.Bytes
}

func ecdsaP256(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func errorsIsInvalid(err error) bool { return errors.Is(err, ErrInvalid) }
