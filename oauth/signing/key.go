// Package signing holds the keys that sign ID tokens and JWT access tokens:
// generating them (RS256 for interoperability, ES256 for clients that ask for
// it), storing the private halves sealed under the key-encryption key,
// rotating them, and publishing the public halves as a JWK set.
//
// A rotated key stays published until every token it signed has expired, so
// relying parties never meet a signature they cannot check.
package signing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v3"
)

// Algorithms of the signing keys.
const (
	RS256 = "RS256"
	ES256 = "ES256"
)

// Algorithms lists every algorithm for which a key is kept active.
var Algorithms = []string{RS256, ES256}

// Key is one signing key. Its JSON form never holds private material.
type Key struct {
	ID          string          `json:"kid"`
	Algorithm   string          `json:"alg"`
	Active      bool            `json:"active"`
	CreatedAt   time.Time       `json:"created_at"`
	RetiredAt   time.Time       `json:"retired_at,omitzero"`
	RetireAfter time.Time       `json:"retire_after,omitzero"`
	PublicJWK   json.RawMessage `json:"public_jwk"`

	private crypto.Signer
}

// Signer returns the private key, or nil when the key was loaded without it.
func (k *Key) Signer() crypto.Signer { return k.private }

// JSONWebKey returns the private key in the form fosite's JWT signer takes:
// it signs with the key's algorithm and puts the kid in the header.
func (k *Key) JSONWebKey() *jose.JSONWebKey {
	return &jose.JSONWebKey{Key: k.private, KeyID: k.ID, Algorithm: k.Algorithm, Use: "sig"}
}

// generate makes a new key of alg. RSA keys are 2048 bits: every OpenID
// Connect library verifies them, and verification stays cheap for relying
// parties; 3072 bits would cost signing time on every token for a margin the
// key's short publication life does not need.
func generate(alg string, now time.Time) (*Key, []byte, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case RS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, nil, fmt.Errorf("unsupported signing algorithm %q", alg)
	}
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, err
	}
	pub := jose.JSONWebKey{Key: priv.Public(), Algorithm: alg, Use: "sig"}
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, nil, err
	}
	pub.KeyID = base64.RawURLEncoding.EncodeToString(thumb)
	pubJSON, err := pub.MarshalJSON()
	if err != nil {
		return nil, nil, err
	}
	k := &Key{ID: pub.KeyID, Algorithm: alg, Active: true, CreatedAt: now.UTC().Truncate(time.Microsecond), PublicJWK: pubJSON, private: priv}
	return k, der, nil
}

// parsePrivate turns PKCS#8 DER back into a signer of the expected algorithm.
func parsePrivate(der []byte, alg string) (crypto.Signer, error) {
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if alg == RS256 {
			return k, nil
		}
	case *ecdsa.PrivateKey:
		if alg == ES256 && k.Curve == elliptic.P256() {
			return k, nil
		}
	}
	return nil, fmt.Errorf("stored key does not match algorithm %s", alg)
}

// aad binds a sealed private key to its row.
func aad(kid string) []byte { return []byte("signing_keys:" + kid) }

// thumbprintOK reports whether kid is the SHA-256 thumbprint of the public key,
// a cheap check that a row was not swapped.
func thumbprintOK(kid string, pub crypto.PublicKey) bool {
	t, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	return err == nil && base64.RawURLEncoding.EncodeToString(t) == kid
}
