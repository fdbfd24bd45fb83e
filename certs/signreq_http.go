package certs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/govsso/sso/db"
)

// maxSignBody bounds a sign request body: a MaxSignDocument document in
// base64 and the other fields.
const maxSignBody = MaxSignDocument/3*4 + 64<<10

// UserSignPath is the account-centre page where a person answers a request.
const UserSignPath = "/account/sign-requests/"

// Register adds the client endpoints of signature requests (scope sign:request):
//
//	POST /certs/api/v1/sign-requests        create
//	GET  /certs/api/v1/sign-requests/{id}   status and, once signed, the signature
//	POST /certs/api/v1/certificates         a person's CSR (scope certs:request)
func (s *SignRequests) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /certs/api/v1/sign-requests", s.handleCreate)
	mux.HandleFunc("GET /certs/api/v1/sign-requests/{id}", s.handleGet)
	mux.HandleFunc("POST /certs/api/v1/certificates", s.handleCSR)
}

// SignRequestJSON is a request as its client sees it.
type SignRequestJSON struct {
	ID           string            `json:"id"`
	Status       SignRequestStatus `json:"status"`
	Title        string            `json:"title"`
	Sub          string            `json:"sub"`
	SM3DigestHex string            `json:"sm3_digest_hex"`
	CreatedAt    time.Time         `json:"created_at"`
	ExpiresAt    time.Time         `json:"expires_at"`
	ApprovalURL  string            `json:"approval_url"`
	DecidedAt    *time.Time        `json:"decided_at,omitempty"`
	// Set once signed.
	CMSBase64        []byte `json:"cms_base64,omitempty"`
	SignatureBase64  []byte `json:"signature_base64,omitempty"`
	RawSignedMessage string `json:"raw_signed_message,omitempty"` // "data" or "sm3_digest"
	SignerID         string `json:"signer_id,omitempty"`
	CertificatePEM   string `json:"certificate_pem,omitempty"`
}

func (s *SignRequests) handleCreate(w http.ResponseWriter, r *http.Request) {
	clientID, ok := s.authorize(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSignBody))
	if err != nil {
		writeProblem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes; send sm3_digest_hex for large documents", maxSignBody))
		return
	}
	var in CreateSignRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeProblem(w, http.StatusBadRequest, "request body is not the expected JSON object: "+err.Error())
		return
	}
	req, err := s.Create(r.Context(), clientID, in)
	if err != nil {
		s.fail(w, err)
		return
	}
	out, err := s.toJSON(r, req)
	if err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set("Location", "/certs/api/v1/sign-requests/"+req.ID)
	writeJSON(w, http.StatusCreated, out)
}

func (s *SignRequests) handleGet(w http.ResponseWriter, r *http.Request) {
	clientID, ok := s.authorize(w, r)
	if !ok {
		return
	}
	req, err := s.ForClient(r.Context(), clientID, r.PathValue("id"))
	if err != nil {
		s.fail(w, err)
		return
	}
	out, err := s.toJSON(r, req)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *SignRequests) toJSON(r *http.Request, req *SignRequest) (*SignRequestJSON, error) {
	out := &SignRequestJSON{ID: req.ID, Status: req.Status, Title: req.Title, Sub: req.Subject,
		SM3DigestHex: fmt.Sprintf("%x", req.Digest), CreatedAt: req.CreatedAt, ExpiresAt: req.ExpiresAt,
		ApprovalURL: s.ca.cfg.BaseURL + UserSignPath + req.ID, DecidedAt: req.DecidedAt}
	if req.Status != SignSigned {
		return out, nil
	}
	cert, err := s.Certificate(r.Context(), req)
	if err != nil {
		return nil, err
	}
	out.CMSBase64 = req.CMS
	out.SignatureBase64 = req.Signature
	out.RawSignedMessage = "data"
	if req.DigestOnly {
		out.RawSignedMessage = "sm3_digest"
	}
	out.SignerID = DefaultSignerID
	out.CertificatePEM = string(PEM(cert.DER))
	return out, nil
}

// authorize answers 401 for an unauthenticated caller and 403 for a client
// without the sign:request scope.
func (s *SignRequests) authorize(w http.ResponseWriter, r *http.Request) (string, bool) {
	if s.cfg.Authenticate == nil {
		writeProblem(w, http.StatusUnauthorized, "client authentication is not configured")
		return "", false
	}
	clientID, scopes, err := s.cfg.Authenticate(r)
	if err != nil || clientID == "" {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeProblem(w, http.StatusUnauthorized, "a valid client access token is required")
		return "", false
	}
	if !slices.Contains(scopes, ScopeSignRequest) {
		w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="`+ScopeSignRequest+`"`)
		writeProblem(w, http.StatusForbidden, "the client lacks the scope "+ScopeSignRequest)
		return "", false
	}
	return clientID, true
}

func (s *SignRequests) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrInvalid):
		writeProblem(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, db.ErrNotFound):
		writeProblem(w, http.StatusNotFound, "no such sign request for this client")
	case errors.Is(err, ErrNoCA):
		writeProblem(w, http.StatusServiceUnavailable, "no certificate authority has been set up")
	default:
		s.ca.serverError(w, err)
	}
}
