package certs

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/emmansun/gmsm/pkcs7"
	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/smx509"

	"github.com/govsso/sso/db"
)

// Reason codes in a verification Result. Those marked informational leave
// the signature valid.
const (
	CodeSignatureInvalid     = "signature_invalid"
	CodeMessageDigestInvalid = "message_digest_mismatch"
	CodeUntrustedChain       = "untrusted_chain"
	CodeNotYetValid          = "not_yet_valid_at_signing"
	CodeExpired              = "expired_at_signing"
	CodeKeyUsage             = "key_usage"
	CodeUnknownCertificate   = "unknown_certificate"
	CodeRevokedBeforeSigning = "revoked_before_signing"
	CodeRevokedAfterSigning  = "revoked_after_signing" // informational
	CodeSigningTimeClaimed   = "signing_time_claimed"  // informational
)

// Reason is one finding of a verification.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Signer describes the certificate that made a signature.
type Signer struct {
	Subject   string     `json:"subject"`
	Issuer    string     `json:"issuer"`
	Serial    string     `json:"serial"`
	NotBefore time.Time  `json:"not_before"`
	NotAfter  time.Time  `json:"not_after"`
	Status    Status     `json:"status,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// Result is the answer of Verify and VerifyCMS.
type Result struct {
	Valid    bool      `json:"valid"`
	Reasons  []Reason  `json:"reasons"`
	Signer   *Signer   `json:"signer,omitempty"`
	SignedAt time.Time `json:"signed_at"`
}

// RawSignature is a raw SM2 signature to check against a certificate.
type RawSignature struct {
	// Data is the signed document; or Digest is e = SM3(Z‖M) (see Digest).
	Data   []byte
	Digest []byte
	// Signature is DER SEQUENCE{r, s}.
	Signature   []byte
	Certificate *smx509.Certificate
	// SignedAt is when the caller says the signature was made; a raw
	// signature carries no time. Zero means now.
	SignedAt time.Time
}

// Verify checks a raw SM2 signature (default signer ID), the certificate's
// chain to our root, its validity and revocation at the signing time.
func (s *Service) Verify(ctx context.Context, in RawSignature) (*Result, error) {
	res := &Result{SignedAt: s.now()}
	if !in.SignedAt.IsZero() {
		res.SignedAt = in.SignedAt.UTC()
		res.add(CodeSigningTimeClaimed, "the signing time was given by the caller; a raw signature does not carry one")
	}
	pub, ok := isSM2Key(in.Certificate.PublicKey)
	if !ok {
		return nil, wrapInvalid("certificate key is not an SM2 public key")
	}
	var good bool
	if in.Digest != nil {
		good = sm2.VerifyASN1(pub, in.Digest, in.Signature)
	} else {
		good = sm2.VerifyASN1WithSM2(pub, nil, in.Data, in.Signature)
	}
	if !good {
		res.add(CodeSignatureInvalid, "the SM2 signature does not match the data and the certificate's key (signer ID 1234567812345678)")
	}
	return s.finish(ctx, res, in.Certificate)
}

// VerifyCMS checks a detached GB/T 35275 SignedData over data (or, when
// digest is true, over the SM3 digest of the document given in data):
// the signer's signature over the signed attributes, then the signer's
// certificate as Verify does, at the signing time the CMS carries.
func (s *Service) VerifyCMS(ctx context.Context, p7 *pkcs7.PKCS7, data []byte, digest bool) (*Result, error) {
	signer := p7.GetOnlySigner()
	if signer == nil {
		return nil, wrapInvalid("the CMS must hold exactly one signer and its certificate")
	}
	if _, ok := isSM2Key(signer.PublicKey); !ok {
		return nil, wrapInvalid("the signer's key is not an SM2 public key")
	}
	res := &Result{SignedAt: s.now()}
	var at time.Time
	if err := p7.UnmarshalSignedAttribute(pkcs7.OIDAttributeSigningTime, &at); err == nil {
		res.SignedAt = at.UTC()
	}
	p7.Content = data
	// pkcs7 stops at a signing time outside the certificate's validity
	// before checking the signature; validity is judged in finish with the
	// other reasons, so the signature is checked against an unbounded copy.
	unbounded := *signer
	unbounded.NotBefore, unbounded.NotAfter = time.Time{}, time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	for i, c := range p7.Certificates {
		if c == signer {
			p7.Certificates[i] = &unbounded
			defer func() { p7.Certificates[i] = signer }()
		}
	}
	check := p7.Verify
	if digest {
		check = p7.VerifyAsDigest
	}
	var mismatch *pkcs7.MessageDigestMismatchError
	switch err := check(); {
	case err == nil:
	case errors.As(err, &mismatch):
		res.add(CodeMessageDigestInvalid, "the document's SM3 digest differs from the one signed")
	default:
		res.add(CodeSignatureInvalid, "the signer's SM2 signature over the signed attributes does not verify: "+err.Error())
	}
	return s.finish(ctx, res, signer)
}

// finish adds what the certificate says: chain, validity, key usage and
// revocation at the signing time.
func (s *Service) finish(ctx context.Context, res *Result, cert *smx509.Certificate) (*Result, error) {
	res.Signer = &Signer{Subject: cert.Subject.String(), Issuer: cert.Issuer.String(), Serial: serialHex(cert.SerialNumber),
		NotBefore: cert.NotBefore.UTC(), NotAfter: cert.NotAfter.UTC()}
	at := res.SignedAt
	if at.Before(cert.NotBefore) {
		res.add(CodeNotYetValid, "the certificate was not yet valid when the signature was made")
	}
	if at.After(cert.NotAfter) {
		res.add(CodeExpired, "the certificate had expired when the signature was made")
	}
	if cert.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 || cert.IsCA {
		res.add(CodeKeyUsage, "the certificate is not an end-entity signing certificate")
	}
	trusted, err := s.checkChain(ctx, res, cert)
	if err != nil {
		return nil, err
	}
	if trusted {
		if err := s.checkRevocation(ctx, res, cert); err != nil {
			return nil, err
		}
	}
	res.Valid = true
	for _, r := range res.Reasons {
		if r.Code != CodeRevokedAfterSigning && r.Code != CodeSigningTimeClaimed {
			res.Valid = false
		}
	}
	if res.Reasons == nil {
		res.Reasons = []Reason{}
	}
	return res, nil
}

// checkChain builds the chain to our root at a time inside the leaf's
// validity, since validity at the signing time is reported on its own.
func (s *Service) checkChain(ctx context.Context, res *Result, cert *smx509.Certificate) (bool, error) {
	ca, err := s.CA(ctx)
	if errors.Is(err, ErrNoCA) {
		res.add(CodeUntrustedChain, "this server has no certificate authority")
		return false, nil
	}
	if err != nil {
		return false, err
	}
	chain, err := parseAll(ca.Root.DER, ca.Issuer.DER)
	if err != nil {
		return false, err
	}
	roots, inter := smx509.NewCertPool(), smx509.NewCertPool()
	roots.AddCert(chain[0])
	inter.AddCert(chain[1])
	at := res.SignedAt
	if at.Before(cert.NotBefore) {
		at = cert.NotBefore
	}
	if at.After(cert.NotAfter) {
		at = cert.NotAfter
	}
	_, err = cert.Verify(smx509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		res.add(CodeUntrustedChain, "the certificate does not chain to this server's root: "+err.Error())
		return false, nil
	}
	return true, nil
}

func (s *Service) checkRevocation(ctx context.Context, res *Result, cert *smx509.Certificate) error {
	rec, err := s.store.bySerial(ctx, serialHex(cert.SerialNumber))
	if errors.Is(err, db.ErrNotFound) {
		res.add(CodeUnknownCertificate, "the certificate chains to our root but was not issued here; its revocation status is unknown")
		return nil
	}
	if err != nil {
		return err
	}
	res.Signer.Status, res.Signer.RevokedAt = rec.Status, rec.RevokedAt
	if rec.Status != StatusRevoked || rec.RevokedAt == nil {
		return nil
	}
	when := rec.RevokedAt.Format(time.RFC3339)
	if !rec.RevokedAt.After(res.SignedAt) {
		res.add(CodeRevokedBeforeSigning, fmt.Sprintf("the certificate was revoked at %s, before the signature was made", when))
	} else {
		res.add(CodeRevokedAfterSigning, fmt.Sprintf("the signature was valid when made; the certificate was revoked at %s", when))
	}
	return nil
}

func (r *Result) add(code, msg string) {
	r.Reasons = append(r.Reasons, Reason{Code: code, Message: msg})
}
