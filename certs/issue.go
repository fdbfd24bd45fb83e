package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"time"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/smx509"
)

// DefaultValidity is how long an end-entity certificate lasts unless asked otherwise.
const DefaultValidity = 2 * 365 * 24 * time.Hour

// IssueRequest asks the issuing CA for an end-entity signing certificate.
type IssueRequest struct {
	// Subject names the holder: a verified name and a pseudonymous serial,
	// never a raw ID number.
	Subject pkix.Name
	// PublicKey is the holder's SM2 key; nil makes the server generate the
	// key and keep it sealed (cloud signing).
	PublicKey *ecdsa.PublicKey
	// Kind is KindUser or KindOrg.
	Kind Kind
	// OwnerUserID is the account the certificate belongs to.
	OwnerUserID string
	// NotBefore is the start of validity; zero means now.
	NotBefore time.Time
	// Validity is the lifetime; zero means DefaultValidity. The certificate
	// stays within the issuing CA's validity.
	Validity time.Duration
}

// Issue signs an end-entity certificate with the issuing CA (never with the
// root): SM3withSM2, key usages digitalSignature and contentCommitment, a
// random 16-byte serial and the CRL distribution point.
func (s *Service) Issue(ctx context.Context, req IssueRequest) (*Certificate, error) {
	if req.Kind != KindUser && req.Kind != KindOrg {
		return nil, wrapInvalid("kind must be %q or %q", KindUser, KindOrg)
	}
	if req.Subject.CommonName == "" {
		return nil, wrapInvalid("subject needs a common name")
	}
	pub, key, err := holderKey(req.PublicKey)
	if err != nil {
		return nil, err
	}
	caRec, caCert, caKey, err := s.issuingCA(ctx)
	if err != nil {
		return nil, err
	}
	tpl, err := s.leafTemplate(req, caCert)
	if err != nil {
		return nil, err
	}
	der, err := smx509.CreateCertificate(rand.Reader, tpl, caCert, pub, caKey)
	if err != nil {
		return nil, fmt.Errorf("certs: sign certificate: %w", err)
	}
	rec, err := newRecord(der, req.Kind, req.OwnerUserID, s.now())
	if err != nil {
		return nil, err
	}
	var sealed []byte
	if key != nil {
		if sealed, err = s.sealKey(rec.ID, key); err != nil {
			return nil, err
		}
	}
	err = s.store.db.InTx(ctx, func(ctx context.Context) error {
		if err := s.store.insert(ctx, rec, sealed); err != nil {
			return err
		}
		return s.record(ctx, "certs.issue", req.OwnerUserID, map[string]string{
			"certificate_id": rec.ID, "serial": rec.Serial, "kind": string(rec.Kind),
			"issuer_id": caRec.ID, "server_held_key": fmt.Sprint(key != nil)})
	})
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// holderKey checks the submitted key, or makes one for cloud signing.
func holderKey(pub *ecdsa.PublicKey) (*ecdsa.PublicKey, *sm2.PrivateKey, error) {
	if pub != nil {
		if _, ok := isSM2Key(pub); !ok {
			return nil, nil, wrapInvalid("public key is not on the SM2 curve")
		}
		return pub, nil, nil
	}
	key, err := sm2.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	return &key.PublicKey, key, nil
}

func (s *Service) leafTemplate(req IssueRequest, ca *smx509.Certificate) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	notBefore := req.NotBefore
	if notBefore.IsZero() {
		notBefore = s.now().Add(-time.Minute) // tolerate clients whose clocks lag
	}
	validity := req.Validity
	if validity <= 0 {
		validity = DefaultValidity
	}
	if notBefore.Before(ca.NotBefore) {
		notBefore = ca.NotBefore
	}
	notAfter := notBefore.Add(validity)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	return &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(serial),
		Subject:               req.Subject,
		NotBefore:             notBefore.UTC().Truncate(time.Second),
		NotAfter:              notAfter.UTC().Truncate(time.Second),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		BasicConstraintsValid: true,
		IsCA:                  false,
		CRLDistributionPoints: []string{s.CRLURL()},
	}, nil
}
