package kek

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func newKey(t *testing.T) *KEK {
	t.Helper()
	b := make([]byte, KeySize)
	rand.Read(b)
	k, err := New(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k, other := newKey(t), newKey(t)
	sealed, err := k.Seal([]byte("private key bytes"), []byte("signing_keys:a"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("private key bytes")) {
		t.Fatal("sealed value contains the plaintext")
	}
	tampered := append([]byte(nil), sealed...)
	tampered[len(tampered)-1] ^= 1
	tests := []struct {
		name    string
		key     *KEK
		sealed  []byte
		aad     string
		wantErr bool
	}{
		{"same key and aad", k, sealed, "signing_keys:a", false},
		{"moved to another row", k, sealed, "signing_keys:b", true},
		{"other key", other, sealed, "signing_keys:a", true},
		{"tampered", k, tampered, "signing_keys:a", true},
		{"truncated", k, sealed[:10], "signing_keys:a", true},
		{"empty", k, nil, "signing_keys:a", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pt, err := tc.key.Open(tc.sealed, []byte(tc.aad))
			if tc.wantErr {
				if !errors.Is(err, ErrDecrypt) {
					t.Fatalf("got %v, want ErrDecrypt", err)
				}
				return
			}
			if err != nil || string(pt) != "private key bytes" {
				t.Fatalf("got %q, %v", pt, err)
			}
		})
	}
}

func TestParseEncodings(t *testing.T) {
	raw := make([]byte, KeySize)
	rand.Read(raw)
	want, _ := New(raw)
	for name, s := range map[string]string{
		"hex":           hex.EncodeToString(raw),
		"base64":        base64.StdEncoding.EncodeToString(raw),
		"base64url raw": base64.RawURLEncoding.EncodeToString(raw),
		"with newline":  base64.StdEncoding.EncodeToString(raw) + "\n",
	} {
		k, err := Parse(s)
		if err != nil || k.ID() != want.ID() {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, bad := range []string{"", "short", hex.EncodeToString(raw[:16])} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestLoadOrCreateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", FileName)
	k1, created, err := LoadOrCreateFile(path)
	if err != nil || !created {
		t.Fatalf("first load: created %v, %v", created, err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %o, want 600", fi.Mode().Perm())
	}
	k2, created, err := LoadOrCreateFile(path)
	if err != nil || created || k2.ID() != k1.ID() {
		t.Fatalf("second load: created %v, same key %v, %v", created, k2 != nil && k2.ID() == k1.ID(), err)
	}
	os.Chmod(path, 0o644)
	if _, _, err := LoadOrCreateFile(path); err == nil {
		t.Fatal("a world-readable key file was accepted")
	}
}

func TestDeriveSeparatesPurposes(t *testing.T) {
	k := newKey(t)
	a, b := k.Derive("sso client secret"), k.Derive("sso users phone index")
	if bytes.Equal(a, b) || len(a) != 32 {
		t.Fatal("subkeys for different purposes must differ and be 32 bytes")
	}
	if !bytes.Equal(a, k.Derive("sso client secret")) {
		t.Fatal("Derive is not deterministic")
	}
}
