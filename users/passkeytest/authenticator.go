// Package passkeytest is a software WebAuthn authenticator for tests: it
// answers the options a relying party sends to navigator.credentials.create
// and .get the way a browser and a passkey provider would, with an ES256 key
// and "none" attestation. It encodes its CBOR by hand, independently of the
// library under test.
package passkeytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// Authenticator flags (WebAuthn §6.1).
const (
	flagUP = 0x01
	flagUV = 0x04
	flagBE = 0x08
	flagBS = 0x10
	flagAT = 0x40
)

// Authenticator holds one discoverable ES256 credential once Create has run.
// Tests change its exported fields to misbehave.
type Authenticator struct {
	Origin         string // put in clientDataJSON
	UserVerified   bool   // sets the UV flag; default true
	BackupEligible bool
	BackupState    bool
	Attachment     string // "platform" or "cross-platform"
	Counter        uint32 // the next signature uses Counter+1; 0 keeps it at 0

	key        *ecdsa.PrivateKey
	credID     []byte
	userHandle []byte
	rpID       string
}

// New returns an authenticator that answers as if on a page of origin.
func New(origin string) *Authenticator {
	return &Authenticator{Origin: origin, UserVerified: true, Attachment: "platform"}
}

// CredentialID is the credential's id, base64url, once created.
func (a *Authenticator) CredentialID() string { return b64(a.credID) }

// UserHandle is the user handle the relying party gave at creation.
func (a *Authenticator) UserHandle() []byte { return a.userHandle }

// creationOptions is the part of PublicKeyCredentialCreationOptions we read.
type creationOptions struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RP        struct {
			ID string `json:"id"`
		} `json:"rp"`
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	} `json:"publicKey"`
}

// requestOptions is the part of PublicKeyCredentialRequestOptions we read.
type requestOptions struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RPID      string `json:"rpId"`
	} `json:"publicKey"`
}

// Create makes a new credential for options (the JSON a relying party
// sends for navigator.credentials.create) and returns the JSON a browser
// would post back.
func (a *Authenticator) Create(options []byte) ([]byte, error) {
	var o creationOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, fmt.Errorf("creation options: %w", err)
	}
	handle, err := base64.RawURLEncoding.DecodeString(o.PublicKey.User.ID)
	if err != nil || o.PublicKey.Challenge == "" || o.PublicKey.RP.ID == "" {
		return nil, errors.New("creation options lack challenge, rp.id or user.id")
	}
	if a.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	a.credID = make([]byte, 16)
	rand.Read(a.credID)
	a.userHandle, a.rpID = handle, o.PublicKey.RP.ID

	authData := a.authData(flagAT)
	authData = append(authData, make([]byte, 16)...) // AAGUID: none
	authData = binary.BigEndian.AppendUint16(authData, uint16(len(a.credID)))
	authData = append(authData, a.credID...)
	authData = append(authData, a.coseKey()...)

	att := []byte{0xa3}
	att = appendText(att, "fmt")
	att = appendText(att, "none")
	att = appendText(att, "attStmt")
	att = append(att, 0xa0)
	att = appendText(att, "authData")
	att = appendBytes(att, authData)

	return json.Marshal(map[string]any{
		"id": b64(a.credID), "rawId": b64(a.credID), "type": "public-key",
		"authenticatorAttachment": a.Attachment,
		"response": map[string]any{
			"clientDataJSON":    b64(a.clientData("webauthn.create", o.PublicKey.Challenge)),
			"attestationObject": b64(att),
			"transports":        []string{"internal", "hybrid"},
		},
		"clientExtensionResults": map[string]any{},
	})
}

// Get signs options (the JSON a relying party sends for
// navigator.credentials.get) and returns the JSON a browser would post back.
func (a *Authenticator) Get(options []byte) ([]byte, error) {
	if a.key == nil {
		return nil, errors.New("no credential: call Create first")
	}
	var o requestOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, fmt.Errorf("request options: %w", err)
	}
	if o.PublicKey.Challenge == "" {
		return nil, errors.New("request options lack a challenge")
	}
	if a.Counter > 0 {
		a.Counter++
	}
	authData := a.authData(0)
	clientData := a.clientData("webauthn.get", o.PublicKey.Challenge)
	sum := sha256.Sum256(clientData)
	digest := sha256.Sum256(append(append([]byte{}, authData...), sum[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, digest[:])
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"id": b64(a.credID), "rawId": b64(a.credID), "type": "public-key",
		"authenticatorAttachment": a.Attachment,
		"response": map[string]any{
			"clientDataJSON":    b64(clientData),
			"authenticatorData": b64(authData),
			"signature":         b64(sig),
			"userHandle":        b64(a.userHandle),
		},
		"clientExtensionResults": map[string]any{},
	})
}

// authData is rpIdHash, flags and the signature counter.
func (a *Authenticator) authData(extra byte) []byte {
	rpHash := sha256.Sum256([]byte(a.rpID))
	flags := byte(flagUP) | extra
	if a.UserVerified {
		flags |= flagUV
	}
	if a.BackupEligible {
		flags |= flagBE
	}
	if a.BackupState {
		flags |= flagBS
	}
	out := append(rpHash[:], flags)
	return binary.BigEndian.AppendUint32(out, a.Counter)
}

func (a *Authenticator) clientData(typ, challenge string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": a.Origin, "crossOrigin": false})
	return b
}

// coseKey is the public key as a COSE_Key map {1:2, 3:-7, -1:1, -2:x, -3:y}
// (EC2, ES256, P-256), in CTAP2 canonical order.
func (a *Authenticator) coseKey() []byte {
	pub, _ := a.key.PublicKey.ECDH()
	raw := pub.Bytes() // 0x04 || x || y
	out := []byte{0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21}
	out = appendBytes(out, raw[1:33])
	out = append(out, 0x22)
	return appendBytes(out, raw[33:65])
}

// appendText appends a CBOR text string shorter than 24 bytes.
func appendText(b []byte, s string) []byte {
	return append(append(b, 0x60|byte(len(s))), s...)
}

// appendBytes appends a CBOR byte string shorter than 65536 bytes.
func appendBytes(b, v []byte) []byte {
	switch n := len(v); {
	case n < 24:
		b = append(b, 0x40|byte(n))
	case n < 256:
		b = append(b, 0x58, byte(n))
	default:
		b = append(b, 0x59, byte(n>>8), byte(n))
	}
	return append(b, v...)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
