package certs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/govsso/sso/db"
)

// ScopeLicencesIssue lets a department client issue and manage its licences.
const ScopeLicencesIssue = "licences:issue"

// maxLicenceBody bounds a licence request body.
const maxLicenceBody = 256 << 10

// Register adds the licence endpoints: issue and lifecycle (client with
// scope licences:issue), status and verification (public).
//
//	POST /certs/api/v1/licences                         issue
//	GET  /certs/api/v1/licences/{identifier}/status     status
//	POST /certs/api/v1/licences/verify                  verify {signed_data, signature} (base64)
//	POST /certs/api/v1/licences/{identifier}:suspend    {reason}
//	POST /certs/api/v1/licences/{identifier}:revoke     {status_code: 03|04|07, reason}
//	POST /certs/api/v1/licences/{identifier}:renew      RenewRequest
//	GET  /certs/api/v1/licences                         the holder's consented licences (person token, licences:read)
//	GET  /certs/api/v1/licences/{identifier}            one of them
//	POST /certs/api/v1/licences/{identifier}:qr         a short-lived QR payload for the holder's app
//
// The lifecycle paths take one segment since net/http wildcards cannot
// share a segment with the ":action" suffix.
func (l *Licences) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /certs/api/v1/licences", l.handleIssue)
	mux.HandleFunc("GET /certs/api/v1/licences/{identifier}/status", l.ca.rateLimited(l.handleStatus))
	mux.HandleFunc("POST /certs/api/v1/licences/verify", l.ca.rateLimited(l.handleVerify))
	mux.HandleFunc("POST /certs/api/v1/licences/{op}", l.handleLifecycle)
	mux.HandleFunc("GET /certs/api/v1/licences", l.handleHolderList)
	mux.HandleFunc("GET /certs/api/v1/licences/{identifier}", l.handleHolderGet)
}

func (l *Licences) handleIssue(w http.ResponseWriter, r *http.Request) {
	clientID, ok := l.authorize(w, r)
	if !ok {
		return
	}
	var req IssueLicenceRequest
	if !decodeBody(w, r, &req) {
		return
	}
	req.ClientID = clientID
	lic, err := l.IssueLicence(r.Context(), req)
	if err != nil {
		l.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, lic)
}

func (l *Licences) handleStatus(w http.ResponseWriter, r *http.Request) {
	rep, err := l.LicenceStatusOf(r.Context(), r.PathValue("identifier"))
	if err != nil {
		l.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// licenceVerifyJSON is the body of a verification: what issuing returned.
type licenceVerifyJSON struct {
	SignedData []byte `json:"signed_data"` // base64 of the canonical JSON
	Signature  []byte `json:"signature"`   // base64 of the raw SM2 DER
	// QRPayload is what a holder's QR code carries, instead of the above.
	QRPayload string `json:"qr_payload"`
}

func (l *Licences) handleVerify(w http.ResponseWriter, r *http.Request) {
	var in licenceVerifyJSON
	if !decodeBody(w, r, &in) {
		return
	}
	if in.QRPayload != "" {
		if len(in.SignedData) > 0 || len(in.Signature) > 0 {
			writeProblem(w, http.StatusBadRequest, "send either qr_payload or signed_data and signature, not both")
			return
		}
		res, err := l.VerifyLicenceQR(r.Context(), in.QRPayload)
		if err != nil {
			l.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
		return
	}
	if len(in.SignedData) == 0 || len(in.Signature) == 0 {
		writeProblem(w, http.StatusBadRequest, "signed_data and signature (base64), or qr_payload, are required")
		return
	}
	res, err := l.VerifyLicence(r.Context(), in.SignedData, in.Signature)
	if err != nil {
		l.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// lifecycleJSON carries the optional parts of suspend, revoke and renew.
type lifecycleJSON struct {
	Reason     string `json:"reason"`
	StatusCode string `json:"status_code"`
	RenewRequest
}

func (l *Licences) handleLifecycle(w http.ResponseWriter, r *http.Request) {
	identifier, action, found := strings.Cut(r.PathValue("op"), ":")
	if found && action == "qr" {
		l.handleHolderQR(w, r, identifier)
		return
	}
	if !found || (action != "suspend" && action != "revoke" && action != "renew") {
		writeProblem(w, http.StatusNotFound, "expected {identifier}:suspend, :revoke, :renew or :qr")
		return
	}
	clientID, ok := l.authorize(w, r)
	if !ok {
		return
	}
	var in lifecycleJSON
	if !decodeBody(w, r, &in) {
		return
	}
	var lic *Licence
	var err error
	switch action {
	case "suspend":
		lic, err = l.SuspendLicence(r.Context(), clientID, identifier, in.Reason)
	case "revoke":
		lic, err = l.RevokeLicence(r.Context(), clientID, identifier, in.StatusCode, in.Reason)
	case "renew":
		lic, err = l.RenewLicence(r.Context(), clientID, identifier, in.RenewRequest)
	}
	if err != nil {
		l.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, lic)
}

// authorize answers 401 for an unauthenticated caller and 403 for a client
// without the licences:issue scope.
func (l *Licences) authorize(w http.ResponseWriter, r *http.Request) (string, bool) {
	if l.cfg.Authenticate == nil {
		writeProblem(w, http.StatusUnauthorized, "client authentication is not configured")
		return "", false
	}
	clientID, scopes, err := l.cfg.Authenticate(r)
	if err != nil || clientID == "" {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeProblem(w, http.StatusUnauthorized, "a valid client access token is required")
		return "", false
	}
	if !slices.Contains(scopes, ScopeLicencesIssue) {
		w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="`+ScopeLicencesIssue+`"`)
		writeProblem(w, http.StatusForbidden, "the client lacks the scope "+ScopeLicencesIssue)
		return "", false
	}
	return clientID, true
}

// decodeBody reads one JSON object; an empty body decodes as {}.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxLicenceBody))
	if err != nil {
		writeProblem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", maxLicenceBody))
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeProblem(w, http.StatusBadRequest, "request body is not the expected JSON object: "+err.Error())
		return false
	}
	return true
}

// fail maps a service error to its HTTP status.
func (l *Licences) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrLicenceIdentifier), errors.Is(err, ErrInvalid):
		writeProblem(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, db.ErrNotFound):
		writeProblem(w, http.StatusNotFound, "no such licence")
	case errors.Is(err, ErrForbidden):
		writeProblem(w, http.StatusForbidden, err.Error())
	case errors.Is(err, ErrLicenceState), errors.Is(err, db.ErrConflict):
		writeProblem(w, http.StatusConflict, err.Error())
	case errors.Is(err, ErrNoCA):
		writeProblem(w, http.StatusServiceUnavailable, "no certificate authority has been set up")
	default:
		l.ca.serverError(w, err)
	}
}

// writeProblem answers with an RFC 9457 problem document.
func writeProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail})
}
