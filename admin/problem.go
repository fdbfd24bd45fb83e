package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/oauth"
	"github.com/govsso/sso/users"
)

// ProblemBase prefixes every problem type URI; the URIs are stable and name
// the kind of error, so clients can branch on them.
const ProblemBase = "https://sso/problems/"

// Problem is an RFC 9457 problem document.
type Problem struct {
	Type   string       `json:"type"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Detail string       `json:"detail,omitempty"`
	Errors []FieldError `json:"errors,omitempty"`
	// retryAfter, when set, is sent as Retry-After (seconds): the failure
	// is passing, as when the database cannot be reached.
	retryAfter int
}

// FieldError names one invalid field of a request.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// Error makes a Problem usable as an error inside handlers.
func (p *Problem) Error() string { return p.Title + ": " + p.Detail }

// problem builds a Problem of a kind ("validation", "not-found", …).
func problem(status int, kind, title, detail string) *Problem {
	return &Problem{Type: ProblemBase + kind, Title: title, Status: status, Detail: detail}
}

// errTryAgain answers a request the database could not serve: the
// client should retry shortly rather than take it as refused.
var errTryAgain = &Problem{Type: ProblemBase + "unavailable", Title: "Service unavailable", Status: http.StatusServiceUnavailable,
	Detail: "try again shortly", retryAfter: 5}

func validationProblem(fields []FieldError) *Problem {
	p := problem(http.StatusBadRequest, "validation", "Invalid request", "one or more fields are invalid")
	p.Errors = fields
	return p
}

// writeProblem answers with p as application/problem+json.
func writeProblem(w http.ResponseWriter, p *Problem) {
	body, _ := json.Marshal(p)
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	if p.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(p.retryAfter))
	}
	w.WriteHeader(p.Status)
	w.Write(append(body, '\n'))
}

// writeError turns a store or decoding error into a problem; unexpected
// errors are logged and answered without their text.
func (api *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	writeProblem(w, api.problemFor(r, err))
}

func (api *API) problemFor(r *http.Request, err error) *Problem {
	var p *Problem
	var uv *users.ValidationError
	var ov *oauth.ValidationError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &p):
		return p
	case errors.As(err, &uv):
		return validationProblem(fromUserFields(uv.Fields))
	case errors.As(err, &ov):
		return validationProblem(fromClientFields(ov.Fields))
	case errors.As(err, &tooBig):
		return problem(http.StatusRequestEntityTooLarge, "body-too-large", "Request body too large", fmt.Sprintf("the body must be at most %d bytes", tooBig.Limit))
	case errors.Is(err, users.ErrOrgUnitNotEmpty):
		return problem(http.StatusConflict, "not-empty", "Org unit not empty", "move or remove its members and sub-units first")
	case errors.Is(err, users.ErrDeleted):
		return problem(http.StatusConflict, "deleted", "Account deleted", "the account is deleted; it can no longer be changed")
	case errors.Is(err, users.ErrOTPRateLimited):
		return problem(http.StatusTooManyRequests, "rate-limited", "Too many messages", "the destination had too many messages lately; try again later")
	case errors.Is(err, users.ErrOTPNoSender):
		return problem(http.StatusServiceUnavailable, "unavailable", "No sender", "no sender is configured for this channel")
	case errors.Is(err, db.ErrNotFound):
		return problem(http.StatusNotFound, "not-found", "Not found", err.Error())
	case errors.Is(err, db.ErrConflict):
		return problem(http.StatusConflict, "conflict", "Conflict", err.Error())
	case errors.Is(err, db.ErrUnavailable), errors.Is(err, db.ErrSerialization):
		return errTryAgain
	}
	api.log.ErrorContext(r.Context(), "admin api", "method", r.Method, "path", r.URL.Path, "err", err)
	return problem(http.StatusInternalServerError, "internal", "Internal error", "")
}

func fromUserFields(in []users.FieldError) []FieldError {
	out := make([]FieldError, len(in))
	for i, f := range in {
		out[i] = FieldError{Field: f.Field, Reason: f.Reason}
	}
	return out
}

func fromClientFields(in []oauth.FieldError) []FieldError {
	out := make([]FieldError, len(in))
	for i, f := range in {
		out[i] = FieldError{Field: f.Field, Reason: f.Reason}
	}
	return out
}

// maxBody bounds every request body; the largest legitimate one is a client
// registration with an inline JWKS.
const maxBody = 64 << 10

// decode reads a JSON object strictly into v: unknown fields, wrong types,
// trailing data and oversized bodies are refused with a problem naming the
// field.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return err
	}
	return decodeBytes(body, v)
}

func decodeBytes(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("data after the JSON object")
	}
	if err == nil {
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typeErr):
		p := problem(http.StatusBadRequest, "wrong-type", "Wrong type", "a field has the wrong JSON type")
		p.Errors = []FieldError{{Field: typeErr.Field, Reason: "must be a " + typeErr.Type.String()}}
		return p
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		p := problem(http.StatusBadRequest, "unknown-field", "Unknown field", "the request names a field this endpoint does not take")
		p.Errors = []FieldError{{Field: field, Reason: "is not a known field"}}
		return p
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return err
	}
	return problem(http.StatusBadRequest, "malformed-json", "Malformed JSON", "the body must be one JSON object")
}

// writeJSON answers with v; admin answers carry personal data, so they are
// never cached.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeProblem(w, problem(http.StatusInternalServerError, "internal", "Internal error", ""))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}
