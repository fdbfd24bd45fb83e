package certs

import (
	"bytes"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"time"

	"github.com/emmansun/gmsm/pkcs7"
	"github.com/emmansun/gmsm/sm3"

	"github.com/govsso/sso/db"
)

// MaxVerifyBody bounds a verification request (documents travel base64-encoded).
const MaxVerifyBody = 8 << 20

// Register adds the public endpoints: the CRL, signature verification and
// certificate status.
func (s *Service) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /certs/crl", s.handleCRL)
	mux.HandleFunc("POST /certs/api/v1/verify", s.rateLimited(s.handleVerify))
	mux.HandleFunc("GET /certs/api/v1/certificates/{serial}/status", s.rateLimited(s.handleStatus))
}

func (s *Service) handleCRL(w http.ResponseWriter, r *http.Request) {
	der, err := s.CRL(r.Context())
	switch {
	case errors.Is(err, ErrNoCA), errors.Is(err, db.ErrNotFound):
		http.Error(w, "no certificate authority", http.StatusNotFound)
		return
	case err != nil:
		s.serverError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(der)
}

func (s *Service) handleVerify(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxVerifyBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", MaxVerifyBody))
			return
		}
		writeError(w, http.StatusBadRequest, "cannot read the request body")
		return
	}
	req, err := ParseVerifyRequest(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var res *Result
	if req.CMS != nil {
		res, err = s.VerifyCMS(r.Context(), req.CMS, req.CMSContent, req.CMSContentIsDigest)
	} else {
		res, err = s.Verify(r.Context(), req.Raw)
	}
	if errors.Is(err, ErrInvalid) {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err != nil {
		s.serverError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// VerifyRequest is a decoded POST /certs/api/v1/verify body: either Raw or
// CMS is set.
type VerifyRequest struct {
	Raw                RawSignature
	CMS                *pkcs7.PKCS7
	CMSContent         []byte
	CMSContentIsDigest bool
}

// verifyJSON is the wire form of a verification request.
type verifyJSON struct {
	DataBase64      *string `json:"data_base64"`
	SM3DigestHex    *string `json:"sm3_digest_hex"`
	SignatureBase64 *string `json:"signature_base64"`
	CertificatePEM  *string `json:"certificate_pem"`
	CMSBase64       *string `json:"cms_base64"`
	SignedAt        *string `json:"signed_at"`
}

// ParseVerifyRequest decodes and checks a verification request; every
// error names the field and what is wrong with it. With a raw signature,
// sm3_digest_hex is e = SM3(Z‖M); with a CMS it is SM3(M), the message
// digest the signed attributes carry.
func ParseVerifyRequest(body []byte) (*VerifyRequest, error) {
	var in verifyJSON
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, wrapInvalid("request body is not the expected JSON object: %v", err)
	}
	if dec.More() {
		return nil, wrapInvalid("request body holds more than one JSON value")
	}
	content, isDigest, err := parseContent(in)
	if err != nil {
		return nil, err
	}
	if in.CMSBase64 != nil {
		if in.SignatureBase64 != nil || in.CertificatePEM != nil || in.SignedAt != nil {
			return nil, wrapInvalid("cms_base64 excludes signature_base64, certificate_pem and signed_at (the CMS carries them)")
		}
		return parseCMSRequest(*in.CMSBase64, content, isDigest)
	}
	return parseRawRequest(in, content, isDigest)
}

func parseContent(in verifyJSON) ([]byte, bool, error) {
	switch {
	case in.DataBase64 != nil && in.SM3DigestHex != nil:
		return nil, false, wrapInvalid("send either data_base64 or sm3_digest_hex, not both")
	case in.DataBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*in.DataBase64)
		if err != nil {
			return nil, false, wrapInvalid("data_base64 is not standard base64: %v", err)
		}
		return b, false, nil
	case in.SM3DigestHex != nil:
		b, err := hex.DecodeString(*in.SM3DigestHex)
		if err != nil || len(b) != sm3.Size {
			return nil, false, wrapInvalid("sm3_digest_hex must be %d hexadecimal digits", 2*sm3.Size)
		}
		return b, true, nil
	}
	return nil, false, wrapInvalid("data_base64 or sm3_digest_hex is required")
}

func parseCMSRequest(b64 string, content []byte, isDigest bool) (*VerifyRequest, error) {
	der, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, wrapInvalid("cms_base64 is not standard base64: %v", err)
	}
	p7, err := parseCMS(der)
	if err != nil {
		return nil, err
	}
	if len(p7.Signers) != 1 || p7.GetOnlySigner() == nil {
		return nil, wrapInvalid("cms_base64 must hold exactly one signer whose certificate is included")
	}
	if len(p7.Content) > 0 {
		return nil, wrapInvalid("cms_base64 must be a detached signature (no embedded content)")
	}
	return &VerifyRequest{CMS: p7, CMSContent: content, CMSContentIsDigest: isDigest}, nil
}

// parseCMS turns a panic in the ASN.1 walk of hostile input into an error.
func parseCMS(der []byte) (p7 *pkcs7.PKCS7, err error) {
	defer func() {
		if r := recover(); r != nil {
			p7, err = nil, wrapInvalid("cms_base64 is not a CMS SignedData")
		}
	}()
	p7, err = pkcs7.Parse(der)
	if err != nil {
		return nil, wrapInvalid("cms_base64 is not a CMS SignedData: %v", err)
	}
	return p7, nil
}

func parseRawRequest(in verifyJSON, content []byte, isDigest bool) (*VerifyRequest, error) {
	if in.SignatureBase64 == nil || in.CertificatePEM == nil {
		return nil, wrapInvalid("signature_base64 and certificate_pem are required (or cms_base64)")
	}
	sig, err := base64.StdEncoding.DecodeString(*in.SignatureBase64)
	if err != nil {
		return nil, wrapInvalid("signature_base64 is not standard base64: %v", err)
	}
	if err := checkSignatureDER(sig); err != nil {
		return nil, err
	}
	cert, err := ParseCertificatePEM([]byte(*in.CertificatePEM))
	if err != nil {
		return nil, wrapInvalid("certificate_pem: %v", err)
	}
	raw := RawSignature{Signature: sig, Certificate: cert}
	if isDigest {
		raw.Digest = content
	} else {
		raw.Data = content
	}
	if in.SignedAt != nil {
		t, err := time.Parse(time.RFC3339, *in.SignedAt)
		if err != nil {
			return nil, wrapInvalid("signed_at must be an RFC 3339 time: %v", err)
		}
		raw.SignedAt = t
	}
	return &VerifyRequest{Raw: raw}, nil
}

// checkSignatureDER insists on SEQUENCE{r INTEGER, s INTEGER} with both
// positive and nothing after it.
func checkSignatureDER(sig []byte) error {
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(sig, &rs)
	switch {
	case err != nil:
		return wrapInvalid("signature_base64 is not a DER SEQUENCE{r, s}: %v", err)
	case len(rest) > 0:
		return wrapInvalid("signature_base64 has %d trailing bytes after the DER signature", len(rest))
	case rs.R.Sign() <= 0 || rs.S.Sign() <= 0:
		return wrapInvalid("signature_base64: r and s must be positive")
	}
	return nil
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": "invalid_request", "error_description": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (s *Service) serverError(w http.ResponseWriter, err error) {
	s.cfg.Logger.Error("certs: request failed", "err", err)
	if errors.Is(err, db.ErrUnavailable) {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return
	}
	http.Error(w, "internal error", http.StatusInternalServerError)
}
