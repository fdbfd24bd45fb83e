package certs

import (
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/emmansun/gmsm/sm4"

	"github.com/govsso/sso/kek"
)

// sealFormatSM4GCM is the first byte of a sealed key: SM4-GCM, 12-byte nonce.
const sealFormatSM4GCM = 1

// errUnseal means a sealed key was altered, bound to another certificate, or
// sealed under another key-encryption key.
var errUnseal = errors.New("certs: cannot open sealed private key")

// sealer encrypts private keys at rest with SM4-GCM, as the national
// standards ask of keys used for SM2 signatures; the rest of the server
// keeps the KEK's AES-GCM.
type sealer struct{ aead cipher.AEAD }

func newSealer(k *kek.KEK) (*sealer, error) {
	block, err := sm4.NewCipher(k.Derive("sso certs sm4")[:sm4.BlockSize])
	if err != nil {
		return nil, fmt.Errorf("certs: sm4 key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("certs: sm4-gcm: %w", err)
	}
	return &sealer{aead: aead}, nil
}

// seal binds the ciphertext to the certificate id, so a sealed key copied
// onto another row does not open.
func (s *sealer) seal(certID string, plaintext []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := append([]byte{sealFormatSM4GCM}, nonce...)
	return s.aead.Seal(out, nonce, plaintext, aad(certID)), nil
}

func (s *sealer) open(certID string, sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n || sealed[0] != sealFormatSM4GCM {
		return nil, errUnseal
	}
	plain, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], aad(certID))
	if err != nil {
		return nil, errUnseal
	}
	return plain, nil
}

func aad(certID string) []byte { return []byte("certs:" + certID) }
