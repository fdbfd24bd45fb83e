// Package kek holds the key-encryption key: the one secret that protects
// everything else at rest (signing keys, personal data, session data) and from
// which the server's other keys are derived. Lose it and those are lost too;
// it must be backed up apart from the database.
package kek

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the length of the key-encryption key in bytes.
const KeySize = 32

// FileName is the key file created in the data directory when no key is configured.
const FileName = "key-encryption.key"

// formatAESGCM is the first byte of a sealed value: AES-256-GCM, 8-byte key id, 12-byte nonce.
const formatAESGCM = 1

// ErrDecrypt means a sealed value was altered, or sealed under another key.
var ErrDecrypt = errors.New("cannot decrypt: data altered or sealed under a different key-encryption key")

// KEK seals and opens values and derives purpose-bound subkeys.
type KEK struct {
	key  []byte
	id   [8]byte
	aead cipher.AEAD
}

// New wraps a 32-byte key.
func New(key []byte) (*KEK, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("key-encryption key must be %d bytes, got %d", KeySize, len(key))
	}
	k := &KEK{key: append([]byte(nil), key...)}
	block, err := aes.NewCipher(k.Derive("sso seal aes-256-gcm"))
	if err != nil {
		return nil, err
	}
	if k.aead, err = cipher.NewGCM(block); err != nil {
		return nil, err
	}
	copy(k.id[:], k.Derive("sso key id"))
	return k, nil
}

// Parse decodes a configured key: 32 bytes as base64 (standard or URL
// alphabet, padded or not) or as 64 hex digits.
func Parse(s string) (*KEK, error) {
	s = strings.TrimSpace(s)
	for _, dec := range []func(string) ([]byte, error){
		hex.DecodeString,
		base64.StdEncoding.DecodeString, base64.RawStdEncoding.DecodeString,
		base64.URLEncoding.DecodeString, base64.RawURLEncoding.DecodeString,
	} {
		if b, err := dec(s); err == nil && len(b) == KeySize {
			return New(b)
		}
	}
	return nil, fmt.Errorf("must be %d bytes encoded as base64 or hex (generate one with: openssl rand -base64 32)", KeySize)
}

// LoadOrCreateFile reads the key file at path, or creates it (mode 0600) with
// a random key when it does not exist. A file readable by group or others is
// refused, since it would expose every secret at rest.
func LoadOrCreateFile(path string) (k *KEK, created bool, err error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, KeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, false, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, false, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, false, fmt.Errorf("create key file %s: %w", path, err)
		}
		_, werr := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return nil, false, fmt.Errorf("write key file %s: %w", path, werr)
		}
		k, err := New(key)
		return k, true, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("key file %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, false, fmt.Errorf("key file %s has mode %o; it must not be readable by group or others (chmod 600)", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("key file %s: %w", path, err)
	}
	k, err = Parse(string(b))
	if err != nil {
		return nil, false, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, false, nil
}

// Derive returns a 32-byte subkey bound to purpose (HKDF-SHA-256), so that no
// two uses ever share a key.
func (k *KEK) Derive(purpose string) []byte {
	out, err := hkdf.Key(sha256.New, k.key, nil, purpose, 32)
	if err != nil {
		panic(err) // only for lengths HKDF cannot produce; 32 always works
	}
	return out
}

// Seal encrypts plaintext. aad binds the ciphertext to where it is stored
// (for example "signing_keys:"+kid), so that it cannot be moved to another row.
func (k *KEK) Seal(plaintext, aad []byte) ([]byte, error) {
	out := make([]byte, 1+8+12, 1+8+12+len(plaintext)+16)
	out[0] = formatAESGCM
	copy(out[1:9], k.id[:])
	if _, err := rand.Read(out[9:21]); err != nil {
		return nil, err
	}
	return k.aead.Seal(out, out[9:21], plaintext, aad), nil
}

// Open decrypts what Seal produced with the same aad.
func (k *KEK) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < 1+8+12+16 || sealed[0] != formatAESGCM {
		return nil, ErrDecrypt
	}
	if !hmac.Equal(sealed[1:9], k.id[:]) {
		return nil, fmt.Errorf("%w (key id %x, this key is %x)", ErrDecrypt, sealed[1:9], k.id[:])
	}
	pt, err := k.aead.Open(nil, sealed[9:21], sealed[21:], aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// ID identifies the key (a hash, safe to log), so that an operator can tell
// which key a database needs.
func (k *KEK) ID() string { return hex.EncodeToString(k.id[:]) }
