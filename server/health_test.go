package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestLiveHandler(t *testing.T) {
	rec := httptest.NewRecorder()
	LiveHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz/live", nil))
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"status":"ok"}` {
		t.Errorf("live = %d %q, want 200 {\"status\":\"ok\"}", rec.Code, rec.Body)
	}
}

func TestReadyHandler(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantBody   string
	}{
		{"database up", nil, http.StatusOK, `{"status":"ok"}`},
		{"database down", errors.New("dial tcp db.internal:5432: password authentication failed for user sso"),
			http.StatusServiceUnavailable, `{"status":"unavailable","error":"check failed"}`},
		{"check timed out", context.DeadlineExceeded,
			http.StatusServiceUnavailable, `{"status":"unavailable","error":"check timed out"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var deadline time.Time
			check := func(ctx context.Context) error {
				deadline, _ = ctx.Deadline()
				return tt.err
			}
			start := time.Now()
			rec := httptest.NewRecorder()
			ReadyHandler(check).ServeHTTP(rec, httptest.NewRequest("GET", "/healthz/ready", nil))
			end := time.Now()
			if rec.Code != tt.wantStatus || strings.TrimSpace(rec.Body.String()) != tt.wantBody {
				t.Errorf("ready = %d %q, want %d %q", rec.Code, rec.Body, tt.wantStatus, tt.wantBody)
			}
			wantRetry := ""
			if tt.wantStatus == http.StatusServiceUnavailable {
				wantRetry = "5"
			}
			if got := rec.Header().Get("Retry-After"); got != wantRetry {
				t.Errorf("Retry-After = %q, want %q", got, wantRetry)
			}
			if deadline.Before(start.Add(readyCheckTimeout)) || deadline.After(end.Add(readyCheckTimeout)) {
				t.Errorf("check deadline %v, want %v after the request", deadline, readyCheckTimeout)
			}
		})
	}
}

func TestWriteJSON(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		v          any
		wantStatus int
		wantBody   string
	}{
		{"value", http.StatusCreated, map[string]int{"n": 1}, http.StatusCreated, `{"n":1}`},
		{"unencodable", http.StatusOK, map[string]any{"c": make(chan int)}, http.StatusInternalServerError,
			`{"error":"server_error","error_description":"internal error"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			WriteJSON(rec, tt.status, tt.v)
			if rec.Code != tt.wantStatus || strings.TrimSpace(rec.Body.String()) != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", rec.Code, rec.Body, tt.wantStatus, tt.wantBody)
			}
			if ct, cc := rec.Header().Get("Content-Type"), rec.Header().Get("Cache-Control"); ct != "application/json" || cc != "no-store" {
				t.Errorf("Content-Type %q, Cache-Control %q; want application/json, no-store", ct, cc)
			}
		})
	}
}

func TestWriteError(t *testing.T) {
	req := httptest.NewRequest("POST", "/token", nil)
	req = req.WithContext(WithRequestID(req.Context(), "req-9"))
	rec := httptest.NewRecorder()
	WriteError(rec, req, http.StatusBadRequest, "invalid_request", "missing grant_type")
	body, _ := io.ReadAll(rec.Body)
	var got map[string]string
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("%q: %v", body, err)
	}
	want := map[string]string{"error": "invalid_request", "error_description": "missing grant_type", "request_id": "req-9"}
	if rec.Code != http.StatusBadRequest || len(got) != len(want) {
		t.Fatalf("got %d %v, want 400 %v", rec.Code, got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}
