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
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v3"
)

// Algorithms of the signing keys, as they appear in "alg".
const (
	RS256 = "RS256"
	ES256 = "ES256"
)

// Algorithms lists every algorithm for which a key is kept active.
var Algorithms = []string{RS256, ES256}

// rsaBits is the size of RS256 keys. 2048 bits is what every OpenID Connect
// library accepts and keeps signing and verification cheap for us and for
// relying parties; a key lives for months, not decades, so 3072 bits would
// buy a margin it does not need at about three times the signing cost. It is
// the one number to change if policy asks for 3072.
const rsaBits = 2048

// Key is one signing key. Its JSON form (used by `sso keys list --json`)
// never holds private material.
type Key struct {
	// ID is the kid: the RFC 7638 SHA-256 thumbprint of the public key, base64url.
	ID string `json:"kid"`
	// Algorithm is RS256 or ES256.
	Algorithm string `json:"alg"`
	// Active means the key signs new tokens.
	Active bool `json:"active"`
	// CreatedAt is when the key was stored.
	CreatedAt time.Time `json:"created_at"`
	// RetiredAt is when a rotation replaced the key; zero while active.
	RetiredAt time.Time `json:"retired_at,omitzero"`
	// RetireAfter is when the key leaves the JWKS; zero while active.
	RetireAfter time.Time `json:"retire_after,omitzero"`
	// PublicJWK is the public key as published: kty, kid, alg, use and the
	// public parameters.
	PublicJWK json.RawMessage `json:"public_jwk"`

	private crypto.Signer // nil unless loaded by Manager.Active
}

// Signer returns the private key, or nil when the key was loaded without it.
func (k *Key) Signer() crypto.Signer { return k.private }

// JSONWebKey returns the private key in the form fosite's JWT signer takes,
// so that tokens carry the key's alg and kid in their header.
func (k *Key) JSONWebKey() *jose.JSONWebKey {
	return &jose.JSONWebKey{Key: k.private, KeyID: k.ID, Algorithm: k.Algorithm, Use: "sig"}
}

// generate makes a new active key of alg and returns it with its private key
// as PKCS#8 DER, ready to be sealed. CreatedAt is set when it is stored.
func generate(alg string) (*Key, []byte, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case RS256:
		priv, err = rsa.GenerateKey(rand.Reader, rsaBits)
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, nil, fmt.Errorf("unsupported signing algorithm %q", alg)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("generate %s key: %w", alg, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("encode %s key: %w", alg, err)
	}
	kid, err := thumbprint(priv.Public())
	if err != nil {
		return nil, nil, err
	}
	pub, err := jose.JSONWebKey{Key: priv.Public(), KeyID: kid, Algorithm: alg, Use: "sig"}.MarshalJSON()
	if err != nil {
		return nil, nil, fmt.Errorf("encode %s public key: %w", alg, err)
	}
	return &Key{ID: kid, Algorithm: alg, Active: true, PublicJWK: pub, private: priv}, der, nil
}

// thumbprint is the kid of a public key (RFC 7638, SHA-256, base64url).
func thumbprint(pub crypto.PublicKey) (string, error) {
	t, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(t), nil
}

// parsePrivate turns PKCS#8 DER back into a signer and checks that it is of
// alg and that kid is its thumbprint, so that a row whose columns were
// swapped or edited is refused rather than used.
func parsePrivate(der []byte, alg, kid string) (crypto.Signer, error) {
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("decode private key: %w", err)
	}
	var signer crypto.Signer
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if alg == RS256 {
			signer = k
		}
	case *ecdsa.PrivateKey:
		if alg == ES256 && k.Curve == elliptic.P256() {
			signer = k
		}
	}
	if signer == nil {
		return nil, fmt.Errorf("stored private key is a %T, not an %s key", key, alg)
	}
	if t, err := thumbprint(signer.Public()); err != nil || t != kid {
		return nil, errors.New("kid does not match the stored private key")
	}
	return signer, nil
}

// checkPublic refuses a stored JWK that carries private parameters, the last
// guard before a key set goes out to the world.
func checkPublic(kid string, raw json.RawMessage) error {
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil {
		return fmt.Errorf("signing key %s: stored public JWK: %w", kid, err)
	}
	if !jwk.IsPublic() {
		return fmt.Errorf("signing key %s: stored public JWK holds private parameters", kid)
	}
	if t, err := thumbprint(jwk.Key); err != nil || t != kid || jwk.KeyID != kid {
		return fmt.Errorf("signing key %s: stored public JWK is not the key of that kid", kid)
	}
	return nil
}

// aad binds a sealed private key to its row, so it cannot be moved to another.
func aad(kid string) []byte { return []byte("signing_keys:" + kid) }
