package certs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/emmansun/gmsm/pkcs7"
	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/sm3"
	"github.com/emmansun/gmsm/smx509"
)

// Sign returns the raw SM2 signature (DER SEQUENCE{r, s}) of data, computed
// over SM3(Z‖M) with the default signer ID, by a certificate whose key the
// server holds. It is the caller's job to have authenticated the holder.
func (s *Service) Sign(ctx context.Context, certID string, data []byte) ([]byte, error) {
	rec, _, key, err := s.signer(ctx, certID)
	if err != nil {
		return nil, err
	}
	sig, err := sm2.SignASN1(rand.Reader, key, data, sm2.DefaultSM2SignerOpts)
	if err != nil {
		return nil, err
	}
	sum := sm3.Sum(data)
	if err := s.recordSign(ctx, rec, "raw", sum[:]); err != nil {
		return nil, err
	}
	return sig, nil
}

// SignDigest signs e = SM3(Z‖M) that the caller computed (see Digest): the
// same signature as Sign, for callers that do not send the document.
func (s *Service) SignDigest(ctx context.Context, certID string, e []byte) ([]byte, error) {
	if len(e) != sm3.Size {
		return nil, wrapInvalid("digest must be %d bytes of SM3", sm3.Size)
	}
	rec, _, key, err := s.signer(ctx, certID)
	if err != nil {
		return nil, err
	}
	sig, err := sm2.SignASN1(rand.Reader, key, e, nil)
	if err != nil {
		return nil, err
	}
	if err := s.recordSign(ctx, rec, "raw_digest", e); err != nil {
		return nil, err
	}
	return sig, nil
}

// Digest computes e = SM3(Z‖M) for a certificate's key with the default
// signer ID: what SignDigest signs and what a raw-signature verification
// with sm3_digest_hex expects.
func Digest(cert *smx509.Certificate, data []byte) ([]byte, error) {
	pub, ok := isSM2Key(cert.PublicKey)
	if !ok {
		return nil, wrapInvalid("certificate key is not an SM2 public key")
	}
	return sm2.CalculateSM2Hash(pub, data, []byte(DefaultSignerID))
}

// SignCMS returns a detached GB/T 35275 SignedData over data: SM3 digest,
// SM2 signature over the signed attributes (content type, message digest,
// signing time), and the signer's certificate with the issuing CA and root.
func (s *Service) SignCMS(ctx context.Context, certID string, data []byte) ([]byte, error) {
	return s.signCMS(ctx, certID, data, false)
}

// SignCMSDigest is SignCMS for a caller that holds only SM3(M): the signed
// attributes carry it as the message digest, so the result verifies
// against the document as SignCMS's does.
func (s *Service) SignCMSDigest(ctx context.Context, certID string, digest []byte) ([]byte, error) {
	if len(digest) != sm3.Size {
		return nil, wrapInvalid("digest must be %d bytes of SM3", sm3.Size)
	}
	return s.signCMS(ctx, certID, digest, true)
}

func (s *Service) signCMS(ctx context.Context, certID string, data []byte, isDigest bool) ([]byte, error) {
	rec, cert, key, err := s.signer(ctx, certID)
	if err != nil {
		return nil, err
	}
	ca, err := s.CA(ctx)
	if err != nil {
		return nil, err
	}
	chain, err := parseAll(ca.Issuer.DER, ca.Root.DER)
	if err != nil {
		return nil, err
	}
	newSD, sum := pkcs7.NewSMSignedData, sm3.Sum(data)
	if isDigest {
		newSD, sum = pkcs7.NewSMSignedDataWithDigest, [sm3.Size]byte(data)
	}
	sd, err := newSD(data)
	if err != nil {
		return nil, fmt.Errorf("certs: cms: %w", err)
	}
	if err := sd.AddSignerChain(cert, key, chain, pkcs7.SignerInfoConfig{}); err != nil {
		return nil, fmt.Errorf("certs: cms sign: %w", err)
	}
	sd.Detach()
	der, err := sd.Finish()
	if err != nil {
		return nil, err
	}
	if err := s.recordSign(ctx, rec, "cms", sum[:]); err != nil {
		return nil, err
	}
	return der, nil
}

// recordSign audits every use of a server-held key; a signature whose
// record cannot be written is not handed out.
func (s *Service) recordSign(ctx context.Context, rec *Certificate, form string, digest []byte) error {
	return s.record(ctx, "certs.sign", rec.OwnerUserID, map[string]string{
		"certificate_id": rec.ID, "serial": rec.Serial, "form": form, "digest": hex.EncodeToString(digest)})
}

// signer loads an end-entity certificate usable now and its private key.
func (s *Service) signer(ctx context.Context, certID string) (*Certificate, *smx509.Certificate, *sm2.PrivateKey, error) {
	rec, err := s.store.byID(ctx, certID)
	if err != nil {
		return nil, nil, nil, err
	}
	now := s.now()
	switch {
	case rec.Kind != KindUser && rec.Kind != KindOrg:
		return nil, nil, nil, fmt.Errorf("%w: a %s certificate signs no documents", ErrNotUsable, rec.Kind)
	case rec.Status != StatusActive:
		return nil, nil, nil, fmt.Errorf("%w: revoked", ErrNotUsable)
	case now.Before(rec.NotBefore) || now.After(rec.NotAfter):
		return nil, nil, nil, fmt.Errorf("%w: outside its validity", ErrNotUsable)
	}
	key, err := s.privateKey(ctx, rec.ID)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, err := rec.Parsed()
	if err != nil {
		return nil, nil, nil, err
	}
	return rec, cert, key, nil
}

func parseAll(ders ...[]byte) ([]*smx509.Certificate, error) {
	out := make([]*smx509.Certificate, 0, len(ders))
	for _, d := range ders {
		c, err := smx509.ParseCertificate(d)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}
