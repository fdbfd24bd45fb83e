package certs

import (
	"bytes"
	"context"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/emmansun/gmsm/smx509"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/server"
	"github.com/govsso/sso/users"
)

// ScopeCertsRequest lets a person's access token submit a certificate
// signing request for a key the person holds.
const ScopeCertsRequest = "certs:request"

// maxCSRBody bounds POST /certs/api/v1/certificates: a PKCS #10 request
// for an SM2 key is well under 2 KiB.
const maxCSRBody = 16 << 10

// ParseCSR decodes a PKCS #10 request in PEM ("CERTIFICATE REQUEST") or
// DER and checks what a holder-key certificate rests on: an SM2 public key
// and a valid self-signature proving possession of its private key.
func ParseCSR(b []byte) (*smx509.CertificateRequest, error) {
	der := b
	if blk, rest := pem.Decode(b); blk != nil {
		if blk.Type != "CERTIFICATE REQUEST" && blk.Type != "NEW CERTIFICATE REQUEST" {
			return nil, wrapInvalid("csr: PEM block is %q, want CERTIFICATE REQUEST", blk.Type)
		}
		if len(bytes.TrimSpace(rest)) > 0 {
			return nil, wrapInvalid("csr: data after the PEM block")
		}
		der = blk.Bytes
	}
	csr, err := parseCSRDER(der)
	if err != nil {
		return nil, err
	}
	if _, ok := isSM2Key(csr.PublicKey); !ok {
		return nil, wrapInvalid("csr: the public key is not an SM2 key")
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, wrapInvalid("csr: the signature does not verify with the request's key (SM3withSM2, signer ID 1234567812345678): %v", err)
	}
	return csr, nil
}

// parseCSRDER turns a panic in the ASN.1 walk of hostile input into an error.
func parseCSRDER(der []byte) (csr *smx509.CertificateRequest, err error) {
	defer func() {
		if r := recover(); r != nil {
			csr, err = nil, wrapInvalid("csr: not a PKCS #10 certificate request")
		}
	}()
	csr, err = smx509.ParseCertificateRequest(der)
	if err != nil {
		return nil, wrapInvalid("csr: not a PKCS #10 certificate request: %v", err)
	}
	return csr, nil
}

// IssueFromCSR issues a user signing certificate for the key in a CSR the
// person submitted. The CSR's subject and extensions are ignored: the
// subject is the verified name and the pseudonymous serial, as for a
// server-held key. The person must be active and at level 2.
func (s *SignRequests) IssueFromCSR(ctx context.Context, userID, clientID string, csrBytes []byte, m users.RequestMeta) (*Certificate, error) {
	csr, err := ParseCSR(csrBytes)
	if err != nil {
		return nil, err
	}
	pub, _ := isSM2Key(csr.PublicKey)
	u, err := s.cfg.Users.Get(ctx, userID)
	if err != nil {
		return nil, err
	}
	if u.Status != users.StatusActive {
		return nil, fmt.Errorf("%w: the account is not active", ErrNotUsable)
	}
	if u.AssuranceLevel < SignLevel {
		return nil, ErrSignLevel
	}
	name := u.DisplayName
	if name == "" {
		name = u.Username
	}
	var rec *Certificate
	err = s.ca.store.db.InTx(ctx, func(ctx context.Context) error {
		rec, err = s.ca.Issue(ctx, IssueRequest{Subject: pkix.Name{CommonName: name, SerialNumber: s.pseudonym(u.ID)},
			PublicKey: pub, Kind: KindUser, OwnerUserID: u.ID})
		if err != nil {
			return err
		}
		if s.ca.cfg.Audit == nil {
			return nil
		}
		_, err = s.ca.cfg.Audit.Append(ctx, audit.Event{Actor: u.ID, Subject: u.ID, ClientID: clientID,
			Action: "certs.csr_issue", Result: audit.ResultSuccess, IP: m.IP, UserAgent: m.UserAgent,
			Details: map[string]string{"certificate_id": rec.ID, "serial": rec.Serial,
				"csr_subject_ignored": csr.Subject.String()}})
		return err
	})
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// IssueFromCSRWithChain is IssueFromCSR that also returns the chain in
// PEM: the issuing CA, then the root.
func (s *SignRequests) IssueFromCSRWithChain(ctx context.Context, userID, clientID string, csrBytes []byte, m users.RequestMeta) (*Certificate, string, error) {
	rec, err := s.IssueFromCSR(ctx, userID, clientID, csrBytes, m)
	if err != nil {
		return nil, "", err
	}
	ca, err := s.ca.CA(ctx)
	if err != nil {
		return nil, "", err
	}
	return rec, string(PEM(ca.Issuer.DER)) + string(PEM(ca.Root.DER)), nil
}

// CertificateJSON is the answer of POST /certs/api/v1/certificates.
type CertificateJSON struct {
	ID             string    `json:"id"`
	Serial         string    `json:"serial"`
	Subject        string    `json:"subject"`
	Issuer         string    `json:"issuer"`
	NotBefore      time.Time `json:"not_before"`
	NotAfter       time.Time `json:"not_after"`
	CertificatePEM string    `json:"certificate_pem"`
	ChainPEM       string    `json:"chain_pem"` // issuing CA, then root
	CRLURL         string    `json:"crl_url"`
}

func (s *SignRequests) handleCSR(w http.ResponseWriter, r *http.Request) {
	if s.cfg.AuthenticatePerson == nil {
		writeProblem(w, http.StatusUnauthorized, "person authentication is not configured")
		return
	}
	clientID, userID, scopes, err := s.cfg.AuthenticatePerson(r)
	if err != nil || clientID == "" {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeProblem(w, http.StatusUnauthorized, "a valid access token is required")
		return
	}
	if !slices.Contains(scopes, ScopeCertsRequest) {
		w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="`+ScopeCertsRequest+`"`)
		writeProblem(w, http.StatusForbidden, "the access token lacks the scope "+ScopeCertsRequest)
		return
	}
	if userID == "" {
		writeProblem(w, http.StatusForbidden, "the access token was issued to a client, not to a person")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxCSRBody))
	if err != nil {
		writeProblem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", maxCSRBody))
		return
	}
	var in struct {
		CSRPEM string `json:"csr_pem"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeProblem(w, http.StatusBadRequest, "request body is not the expected JSON object {\"csr_pem\": …}: "+err.Error())
		return
	}
	if in.CSRPEM == "" {
		writeProblem(w, http.StatusBadRequest, "csr_pem is required")
		return
	}
	rec, err := s.IssueFromCSR(r.Context(), userID, clientID, []byte(in.CSRPEM), users.RequestMeta{IP: server.ClientIP(r), UserAgent: r.UserAgent(), ClientID: clientID})
	switch {
	case errors.Is(err, ErrSignLevel):
		writeProblem(w, http.StatusForbidden, "a signing certificate needs identity verified to level 2; verify your identity in the account centre first")
		return
	case errors.Is(err, ErrNotUsable):
		writeProblem(w, http.StatusForbidden, "the account is not active")
		return
	case errors.Is(err, db.ErrNotFound):
		writeProblem(w, http.StatusForbidden, "the account no longer exists")
		return
	case err != nil:
		s.fail(w, err)
		return
	}
	ca, err := s.ca.CA(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set("Location", "/certs/api/v1/certificates/"+rec.Serial+"/status")
	writeJSON(w, http.StatusCreated, CertificateJSON{ID: rec.ID, Serial: rec.Serial, Subject: rec.Subject, Issuer: rec.Issuer,
		NotBefore: rec.NotBefore, NotAfter: rec.NotAfter, CertificatePEM: string(PEM(rec.DER)),
		ChainPEM: string(PEM(ca.Issuer.DER)) + string(PEM(ca.Root.DER)), CRLURL: s.ca.CRLURL()})
}
