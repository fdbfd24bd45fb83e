// Package certs is the internal SM2 certificate authority: a self-signed
// root and an issuing CA (the root never signs end entities), user and
// organisation signing certificates whose keys the server may hold sealed
// with SM4-GCM ("cloud signing"), raw SM2 and GB/T 35275 CMS signatures,
// their verification, revocation and the CRL.
//
// All cryptography is github.com/emmansun/gmsm: SM2 signatures use the
// default signer ID 1234567812345678 (GM/T 0009) so that OpenSSL 3 verifies
// them with -pkeyopt distid:1234567812345678.
package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/smx509"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/kek"
)

// DefaultSignerID is the SM2 user ID hashed into Z (GM/T 0009-2012).
const DefaultSignerID = "1234567812345678"

// Kind says what a certificate is for.
type Kind string

// The kinds of certificate the CA keeps.
const (
	KindRoot Kind = "root"
	KindCA   Kind = "ca"
	KindUser Kind = "user"
	KindOrg  Kind = "org"
)

// Status is whether a certificate may still be relied upon.
type Status string

// The statuses of a certificate.
const (
	StatusActive  Status = "active"
	StatusRevoked Status = "revoked"
)

// Errors callers check with errors.Is.
var (
	// ErrNoCA means neither init nor import has created the CA yet.
	ErrNoCA = errors.New("certs: no certificate authority; run 'sso certs init' or 'sso certs import'")
	// ErrCAExists means the CA was already created; it is never replaced silently.
	ErrCAExists = errors.New("certs: the certificate authority already exists")
	// ErrNoKey means the server does not hold the certificate's private key.
	ErrNoKey = errors.New("certs: the server does not hold this certificate's private key")
	// ErrNotUsable means the certificate is revoked, expired or not an end entity.
	ErrNotUsable = errors.New("certs: certificate cannot sign")
	// ErrInvalid means an input (key, certificate, chain) was refused.
	ErrInvalid = errors.New("certs: invalid input")
)

// Certificate is one issued or imported certificate.
type Certificate struct {
	ID               string     `json:"id"`
	Serial           string     `json:"serial"` // lower-case hex
	Kind             Kind       `json:"kind"`
	Subject          string     `json:"subject"`
	Issuer           string     `json:"issuer"`
	NotBefore        time.Time  `json:"not_before"`
	NotAfter         time.Time  `json:"not_after"`
	Status           Status     `json:"status"`
	RevokedAt        *time.Time `json:"revoked_at,omitempty"`
	RevocationReason int        `json:"revocation_reason,omitempty"` // RFC 5280 CRLReason
	DER              []byte     `json:"-"`
	OwnerUserID      string     `json:"owner_user_id,omitempty"`
	CreatedAt        time.Time  `json:"created_at"`
}

// Parsed decodes the certificate's DER.
func (c *Certificate) Parsed() (*smx509.Certificate, error) {
	return smx509.ParseCertificate(c.DER)
}

// Auditor records what the CA does; *audit.Log satisfies it.
type Auditor interface {
	Append(ctx context.Context, e audit.Event) (audit.Event, error)
}

// Config is what the service needs besides the database and the KEK.
type Config struct {
	// BaseURL is the server's public URL; certificates name BaseURL+"/certs/crl".
	BaseURL string
	// Audit receives an event per CA action; nil records nothing.
	Audit Auditor
	// Logger reports failures that cannot reach a caller; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// VerifyLimiter bounds the public verification and status endpoints
	// per client address; nil leaves them unlimited.
	VerifyLimiter RateCounter
}

// Service is the certificate authority and the signing and verification service.
type Service struct {
	store  *store
	sealer *sealer
	cfg    Config
}

// New builds the service over a migrated database.
func New(d *db.DB, k *kek.KEK, cfg Config) (*Service, error) {
	s, err := newSealer(k)
	if err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{store: &store{db: d}, sealer: s, cfg: cfg}, nil
}

// CRLURL is the address named in every certificate's CRLDistributionPoints.
func (s *Service) CRLURL() string { return s.cfg.BaseURL + "/certs/crl" }

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// Get returns a certificate by id.
func (s *Service) Get(ctx context.Context, id string) (*Certificate, error) {
	return s.store.byID(ctx, id)
}

// List returns every certificate, oldest first.
func (s *Service) List(ctx context.Context) ([]*Certificate, error) {
	return s.store.list(ctx)
}

// privateKey opens the sealed key of a certificate.
func (s *Service) privateKey(ctx context.Context, certID string) (*sm2.PrivateKey, error) {
	sealed, err := s.store.sealedKey(ctx, certID)
	if errors.Is(err, db.ErrNotFound) {
		return nil, ErrNoKey
	}
	if err != nil {
		return nil, err
	}
	raw, err := s.sealer.open(certID, sealed)
	if err != nil {
		return nil, err
	}
	return sm2.NewPrivateKey(raw)
}

// sealKey encodes a private key as its 32-byte scalar and seals it.
func (s *Service) sealKey(certID string, k *sm2.PrivateKey) ([]byte, error) {
	raw := k.D.FillBytes(make([]byte, 32))
	return s.sealer.seal(certID, raw)
}

// randomSerial is 16 random bytes with the top bit cleared, so the DER
// INTEGER stays positive and 16 bytes long at most.
func randomSerial() ([]byte, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	b[0] &= 0x7f
	if b[0] == 0 {
		b[0] = 1 // keep the full 16 bytes, as the brief asks of serials
	}
	return b, nil
}

func isSM2Key(pub any) (*ecdsa.PublicKey, bool) {
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok || k.Curve != sm2.P256() {
		return nil, false
	}
	return k, true
}

// record writes the audit event in the caller's transaction, so an action
// and its record stand or fall together.
func (s *Service) record(ctx context.Context, action, subject string, details map[string]string) error {
	if s.cfg.Audit == nil {
		return nil
	}
	_, err := s.cfg.Audit.Append(ctx, audit.Event{Actor: "system", Action: action, Subject: subject, Result: "success", Details: details})
	return err
}

// invalidError carries a message for the caller that names the problem,
// and matches ErrInvalid.
type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

func wrapInvalid(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}
