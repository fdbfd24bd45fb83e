package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// readyCheckTimeout bounds the readiness check so a hung database makes the
// probe fail rather than hang past the orchestrator's own timeout.
const readyCheckTimeout = 2 * time.Second

type status struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// LiveHandler answers 200 {"status":"ok"} while the process can serve HTTP
// at all; it checks nothing else, so a database outage does not get the
// process restarted.
func LiveHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, status{Status: "ok"})
	})
}

// ReadyHandler answers 200 {"status":"ok"} when check succeeds within 2 s,
// and otherwise 503 {"status":"unavailable","error":…} with Retry-After: 5,
// so load balancers stop sending traffic. The error field is a fixed short
// reason, never check's error text, which may name hosts or users; a check
// that wants its cause logged logs it itself.
func ReadyHandler(check func(ctx context.Context) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyCheckTimeout)
		defer cancel()
		err := check(ctx)
		if err == nil {
			WriteJSON(w, http.StatusOK, status{Status: "ok"})
			return
		}
		reason := "check failed"
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			reason = "check timed out"
		}
		w.Header().Set("Retry-After", "5")
		WriteJSON(w, http.StatusServiceUnavailable, status{Status: "unavailable", Error: reason})
	})
}

// WriteJSON writes v as JSON with the given status. Responses are marked
// no-store because many carry tokens or personal data; a handler whose
// answer may be cached writes it itself.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"error":"server_error","error_description":"internal error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// errorBody is the shape of every error answer, the OAuth 2.0 one (RFC 6749
// section 5.2) plus the request ID a user can quote to support.
type errorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description,omitempty"`
	RequestID        string `json:"request_id,omitempty"`
}

// WriteError writes {"error":code,"error_description":description,
// "request_id":…} with the given status. description is shown to clients:
// it must not carry internal error text.
func WriteError(w http.ResponseWriter, r *http.Request, status int, code, description string) {
	WriteJSON(w, status, errorBody{Error: code, ErrorDescription: description, RequestID: RequestID(r.Context())})
}
