package certs

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/smx509"
	"github.com/google/uuid"

	"github.com/govsso/sso/db"
)

// Validity of the CA certificates created by Init.
const (
	RootValidity = 20 * 365 * 24 * time.Hour
	CAValidity   = 10 * 365 * 24 * time.Hour
)

// CA is the root and the issuing CA.
type CA struct {
	Root   *Certificate
	Issuer *Certificate
}

// Init creates the SM2 root CA (self-signed, path length 1) and the issuing
// CA it signs (path length 0), named after name. It refuses with
// ErrCAExists, returning the existing CA, when one exists.
func (s *Service) Init(ctx context.Context, name string) (*CA, error) {
	if existing, err := s.CA(ctx); err == nil {
		return existing, ErrCAExists
	} else if !errors.Is(err, ErrNoCA) {
		return nil, err
	}
	now := s.now().Truncate(time.Second)
	rootKey, err := sm2.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	caKey, err := sm2.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	rootTpl, err := caTemplate(pkix.Name{CommonName: name + " Root CA", Organization: []string{name}}, now, RootValidity, 1)
	if err != nil {
		return nil, err
	}
	rootDER, err := smx509.CreateCertificate(rand.Reader, rootTpl, rootTpl, rootKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("certs: create root: %w", err)
	}
	root, err := smx509.ParseCertificate(rootDER)
	if err != nil {
		return nil, err
	}
	caTpl, err := caTemplate(pkix.Name{CommonName: name + " Issuing CA", Organization: []string{name}}, now, CAValidity, 0)
	if err != nil {
		return nil, err
	}
	caDER, err := smx509.CreateCertificate(rand.Reader, caTpl, root, caKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("certs: create issuing ca: %w", err)
	}
	return s.storeCA(ctx, rootDER, caDER, rootKey, caKey, "certs.ca_init")
}

// Import stores a root and an issuing CA made elsewhere, from PEM: the
// issuing CA must chain to the root, both must be SM2 CA certificates, and
// caKeyPEM (PKCS#8 or SEC 1, unencrypted) must match the issuing CA. The
// root's key is not needed: the root signs nothing here.
func (s *Service) Import(ctx context.Context, rootPEM, caPEM, caKeyPEM []byte) (*CA, error) {
	if existing, err := s.CA(ctx); err == nil {
		return existing, ErrCAExists
	} else if !errors.Is(err, ErrNoCA) {
		return nil, err
	}
	root, err := ParseCertificatePEM(rootPEM)
	if err != nil {
		return nil, fmt.Errorf("root certificate: %w", err)
	}
	ca, err := ParseCertificatePEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("issuing CA certificate: %w", err)
	}
	key, err := parsePrivateKeyPEM(caKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("issuing CA key: %w", err)
	}
	if err := checkImportedChain(root, ca, key, s.now()); err != nil {
		return nil, err
	}
	return s.storeCA(ctx, root.Raw, ca.Raw, nil, key, "certs.ca_import")
}

func checkImportedChain(root, ca *smx509.Certificate, key *sm2.PrivateKey, now time.Time) error {
	if !root.IsCA || !ca.IsCA {
		return wrapInvalid("both certificates must be CA certificates (basicConstraints cA)")
	}
	if err := root.CheckSignatureFrom(root); err != nil {
		return wrapInvalid("root is not self-signed with SM3withSM2: %v", err)
	}
	if err := ca.CheckSignatureFrom(root); err != nil {
		return wrapInvalid("issuing CA is not signed by the root: %v", err)
	}
	if ca.KeyUsage&x509.KeyUsageCertSign == 0 || ca.KeyUsage&x509.KeyUsageCRLSign == 0 {
		return wrapInvalid("issuing CA lacks the keyCertSign and cRLSign key usages")
	}
	if len(ca.SubjectKeyId) == 0 {
		return wrapInvalid("issuing CA has no subject key identifier (needed to sign CRLs)")
	}
	if now.After(ca.NotAfter) || now.Before(ca.NotBefore) {
		return wrapInvalid("issuing CA is not valid now (%s to %s)", ca.NotBefore.Format(time.RFC3339), ca.NotAfter.Format(time.RFC3339))
	}
	pub, ok := isSM2Key(ca.PublicKey)
	if !ok || !pub.Equal(key.Public()) {
		return wrapInvalid("the key does not match the issuing CA certificate")
	}
	return nil
}

// storeCA saves both CA certificates and their keys (rootKey may be nil)
// and publishes the first, empty CRL.
func (s *Service) storeCA(ctx context.Context, rootDER, caDER []byte, rootKey, caKey *sm2.PrivateKey, action string) (*CA, error) {
	rootRec, err := newRecord(rootDER, KindRoot, "", s.now())
	if err != nil {
		return nil, err
	}
	caRec, err := newRecord(caDER, KindCA, "", s.now())
	if err != nil {
		return nil, err
	}
	var rootSealed []byte
	if rootKey != nil {
		if rootSealed, err = s.sealKey(rootRec.ID, rootKey); err != nil {
			return nil, err
		}
	}
	caSealed, err := s.sealKey(caRec.ID, caKey)
	if err != nil {
		return nil, err
	}
	err = s.store.db.InTx(ctx, func(ctx context.Context) error {
		if err := s.store.insert(ctx, rootRec, rootSealed); err != nil {
			return err
		}
		if err := s.store.insert(ctx, caRec, caSealed); err != nil {
			return err
		}
		if err := s.publishCRL(ctx, caRec, caKey); err != nil {
			return err
		}
		return s.record(ctx, action, caRec.ID, map[string]string{"root": rootRec.Subject, "issuing_ca": caRec.Subject})
	})
	if errors.Is(err, db.ErrConflict) {
		return nil, ErrCAExists
	}
	if err != nil {
		return nil, err
	}
	return &CA{Root: rootRec, Issuer: caRec}, nil
}

// CA returns the root and the issuing CA, or ErrNoCA.
func (s *Service) CA(ctx context.Context) (*CA, error) {
	root, err := s.store.byKind(ctx, KindRoot)
	if errors.Is(err, db.ErrNotFound) {
		return nil, ErrNoCA
	}
	if err != nil {
		return nil, err
	}
	ca, err := s.store.byKind(ctx, KindCA)
	if errors.Is(err, db.ErrNotFound) {
		return nil, ErrNoCA
	}
	if err != nil {
		return nil, err
	}
	return &CA{Root: root, Issuer: ca}, nil
}

// issuingCA returns the issuing CA parsed, with its private key.
func (s *Service) issuingCA(ctx context.Context) (*Certificate, *smx509.Certificate, *sm2.PrivateKey, error) {
	ca, err := s.CA(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, err := ca.Issuer.Parsed()
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := s.privateKey(ctx, ca.Issuer.ID)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("certs: issuing CA key: %w", err)
	}
	return ca.Issuer, cert, key, nil
}

func caTemplate(subject pkix.Name, now time.Time, validity time.Duration, pathLen int) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(serial),
		Subject:               subject,
		NotBefore:             now.Add(-time.Minute), // tolerate clients whose clocks lag
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            pathLen,
		MaxPathLenZero:        pathLen == 0,
	}, nil
}

// newRecord describes a freshly made or imported certificate for the store.
func newRecord(der []byte, kind Kind, owner string, now time.Time) (*Certificate, error) {
	c, err := smx509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	return &Certificate{
		ID: id.String(), Serial: serialHex(c.SerialNumber), Kind: kind,
		Subject: c.Subject.String(), Issuer: c.Issuer.String(),
		NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(), Status: StatusActive,
		DER: der, OwnerUserID: owner, CreatedAt: now,
	}, nil
}

func serialHex(n *big.Int) string { return hex.EncodeToString(n.Bytes()) }

// PEM encodes a certificate's DER as a PEM block.
func PEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// ParseCertificatePEM decodes exactly one PEM CERTIFICATE block holding an
// SM2 certificate; the errors name what is wrong.
func ParseCertificatePEM(data []byte) (*smx509.Certificate, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, wrapInvalid("no PEM block found")
	}
	if block.Type != "CERTIFICATE" {
		return nil, wrapInvalid("PEM block is %q, want CERTIFICATE", block.Type)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, wrapInvalid("more than one PEM block; send only the signer's certificate")
	}
	c, err := smx509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, wrapInvalid("certificate DER: %v", err)
	}
	if _, ok := isSM2Key(c.PublicKey); !ok {
		return nil, wrapInvalid("certificate key is not an SM2 public key")
	}
	return c, nil
}

func parsePrivateKeyPEM(data []byte) (*sm2.PrivateKey, error) {
	block, rest := pem.Decode(data)
	for block != nil && block.Type == "EC PARAMETERS" { // openssl ecparam -genkey writes this first
		block, rest = pem.Decode(rest)
	}
	if block == nil {
		return nil, wrapInvalid("no PEM block found")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = smx509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = smx509.ParseSM2PrivateKey(block.Bytes)
	default:
		return nil, wrapInvalid("PEM block is %q, want PRIVATE KEY or EC PRIVATE KEY (unencrypted)", block.Type)
	}
	if err != nil {
		return nil, wrapInvalid("private key: %v", err)
	}
	k, ok := key.(*sm2.PrivateKey)
	if !ok {
		return nil, wrapInvalid("private key is not an SM2 key")
	}
	return k, nil
}
