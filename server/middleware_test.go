package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

var generatedID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// serve runs req through Wrap(h) and returns the response.
func serve(h http.Handler, o Options, req *http.Request) *http.Response {
	rec := httptest.NewRecorder()
	Wrap(h, o).ServeHTTP(rec, req)
	return rec.Result()
}

func TestRequestID(t *testing.T) {
	tests := []struct {
		name     string
		incoming string
		keep     bool
	}{
		{"none sent: generated", "", false},
		{"plain: accepted", "abc-123.DEF_456", true},
		{"64 characters: accepted", strings.Repeat("a", 64), true},
		{"65 characters: replaced", strings.Repeat("a", 65), false},
		{"spaces: replaced", "a b", false},
		{"markup: replaced", "<script>", false},
		{"non-ASCII: replaced", "ünïcode", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen string
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = RequestID(r.Context()) })
			req := httptest.NewRequest("GET", "/", nil)
			if tt.incoming != "" {
				req.Header.Set("X-Request-ID", tt.incoming)
			}
			logger, _ := newTestLogger(t)
			got := serve(h, Options{Logger: logger}, req).Header.Get("X-Request-ID")
			if tt.keep && got != tt.incoming {
				t.Errorf("X-Request-ID = %q, want the incoming %q", got, tt.incoming)
			}
			if !tt.keep && !generatedID.MatchString(got) {
				t.Errorf("X-Request-ID = %q, want 32 generated hex digits", got)
			}
			if seen != got {
				t.Errorf("handler saw request ID %q, response has %q", seen, got)
			}
		})
	}
}

func TestRequestIDsDiffer(t *testing.T) {
	logger, _ := newTestLogger(t)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	a := serve(h, Options{Logger: logger}, httptest.NewRequest("GET", "/", nil)).Header.Get("X-Request-ID")
	b := serve(h, Options{Logger: logger}, httptest.NewRequest("GET", "/", nil)).Header.Get("X-Request-ID")
	if a == b {
		t.Errorf("two requests got the same generated ID %q", a)
	}
}

func TestAccessLog(t *testing.T) {
	logger, buf := newTestLogger(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /x", func(w http.ResponseWriter, r *http.Request) {
		logger.InfoContext(r.Context(), "handler line")
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "hello")
	})
	req := httptest.NewRequest("GET", "/x?code=secret123&state=s", nil)
	req.RemoteAddr = "192.0.2.7:4567"
	resp := serve(mux, Options{Logger: logger}, req)
	id := resp.Header.Get("X-Request-ID")

	if strings.Contains(buf.String(), "secret123") {
		t.Errorf("log contains the query string: %s", buf)
	}
	lines := logLines(t, buf)
	if len(lines) != 2 {
		t.Fatalf("got %d log lines, want handler line and access line: %s", len(lines), buf)
	}
	for _, l := range lines {
		if l["request_id"] != id {
			t.Errorf("line %q has request_id %v, want %s", l["msg"], l["request_id"], id)
		}
	}
	access := lines[1]
	want := map[string]any{
		"level": "INFO", "msg": "http request", "method": "GET", "path": "/x", "route": "GET /x",
		"status": float64(http.StatusTeapot), "bytes": float64(5), "remote_addr": "192.0.2.7",
	}
	for k, v := range want {
		if access[k] != v {
			t.Errorf("access log %s = %v, want %v", k, access[k], v)
		}
	}
	if _, ok := access["duration_ms"].(float64); !ok {
		t.Errorf("access log lacks duration_ms: %v", access)
	}
}

func TestAccessLogUnmatchedRoute(t *testing.T) {
	logger, buf := newTestLogger(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /x", func(w http.ResponseWriter, r *http.Request) {})
	resp := serve(mux, Options{Logger: logger}, httptest.NewRequest("GET", "/nowhere/at/all", nil))
	lines := logLines(t, buf)
	if resp.StatusCode != http.StatusNotFound || len(lines) != 1 {
		t.Fatalf("status %d, %d log lines; want 404 and one line", resp.StatusCode, len(lines))
	}
	if lines[0]["route"] != "unmatched" || lines[0]["status"] != float64(404) {
		t.Errorf("access log route=%v status=%v, want unmatched 404", lines[0]["route"], lines[0]["status"])
	}
}

func TestSecurityHeaders(t *testing.T) {
	defaults := map[string]string{
		"X-Content-Type-Options":     "nosniff",
		"X-Frame-Options":            "DENY",
		"Referrer-Policy":            "no-referrer",
		"Content-Security-Policy":    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
		"Cross-Origin-Opener-Policy": "same-origin",
	}
	const ownCSP = "default-src 'self'"
	tests := []struct {
		name     string
		url      string
		setCSP   bool
		wantCSP  string
		wantHSTS string
	}{
		{"plain HTTP", "http://sso.example/", false, defaults["Content-Security-Policy"], ""},
		{"TLS adds HSTS", "https://sso.example/", false, defaults["Content-Security-Policy"], "max-age=31536000"},
		{"handler CSP kept", "http://sso.example/", true, ownCSP, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.setCSP {
					w.Header().Set("Content-Security-Policy", ownCSP)
				}
				io.WriteString(w, "<p>hi</p>")
			})
			logger, _ := newTestLogger(t)
			resp := serve(h, Options{Logger: logger}, httptest.NewRequest("GET", tt.url, nil))
			for k, v := range defaults {
				if k == "Content-Security-Policy" {
					v = tt.wantCSP
				}
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if got := resp.Header.Get("Strict-Transport-Security"); got != tt.wantHSTS {
				t.Errorf("Strict-Transport-Security = %q, want %q", got, tt.wantHSTS)
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	const limit = 1024
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			if IsBodyTooLarge(err) {
				WriteError(w, r, http.StatusRequestEntityTooLarge, "invalid_request", "body too large")
				return
			}
			WriteError(w, r, http.StatusBadRequest, "invalid_request", "unreadable body")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	tests := []struct {
		name  string
		limit int64
		size  int
		want  int
	}{
		{"at the limit", limit, limit, http.StatusNoContent},
		{"one byte over", limit, limit + 1, http.StatusRequestEntityTooLarge},
		{"default limit", 0, DefaultMaxBodyBytes + 1, http.StatusRequestEntityTooLarge},
		{"under the default limit", 0, DefaultMaxBodyBytes, http.StatusNoContent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, _ := newTestLogger(t)
			req := httptest.NewRequest("POST", "/", strings.NewReader(strings.Repeat("a", tt.size)))
			resp := serve(h, Options{Logger: logger, MaxBodyBytes: tt.limit}, req)
			if resp.StatusCode != tt.want {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

func TestIsBodyTooLarge(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&http.MaxBytesError{Limit: 1}, true},
		{fmt.Errorf("decode form: %w", &http.MaxBytesError{Limit: 1}), true},
		{io.ErrUnexpectedEOF, false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := IsBodyTooLarge(tt.err); got != tt.want {
			t.Errorf("IsBodyTooLarge(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestPanicRecovery(t *testing.T) {
	logger, buf := newTestLogger(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /panic", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "half-made"})
		panic("boom: internal detail")
	})
	mux.HandleFunc("GET /ok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "fine") })
	srv := httptest.NewServer(Wrap(mux, Options{Logger: logger}))
	defer srv.Close()

	resp, err := srv.Client().Get(srv.URL + "/panic")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("status = %d, want 500", resp.StatusCode)
	}
	var got errorBody
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	id := resp.Header.Get("X-Request-ID")
	want := errorBody{Error: "server_error", ErrorDescription: "internal error", RequestID: id}
	if got != want || id == "" {
		t.Errorf("body = %+v, want %+v", got, want)
	}
	if strings.Contains(string(body), "boom") || resp.Header.Get("Set-Cookie") != "" {
		t.Errorf("500 leaks the handler's state: body %q, Set-Cookie %q", body, resp.Header.Get("Set-Cookie"))
	}
	if resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("500 lacks the security headers: %v", resp.Header)
	}

	resp, err = srv.Client().Get(srv.URL + "/ok")
	if err != nil {
		t.Fatalf("server stopped serving after a panic: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("after a panic: status = %d, want 200", resp.StatusCode)
	}

	var panicLine, accessLine map[string]any
	for _, l := range logLines(t, buf) {
		switch {
		case l["msg"] == "panic serving request":
			panicLine = l
		case l["msg"] == "http request" && l["path"] == "/panic":
			accessLine = l
		}
	}
	if panicLine == nil || panicLine["request_id"] != id || !strings.Contains(fmt.Sprint(panicLine["stack"]), "middleware_test.go") {
		t.Errorf("panic log line = %v, want request_id %s and a stack", panicLine, id)
	}
	if accessLine == nil || accessLine["status"] != float64(500) {
		t.Errorf("access log line = %v, want status 500", accessLine)
	}
}

func TestPanicAfterWriteAbortsResponse(t *testing.T) {
	logger, _ := newTestLogger(t)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("flush through the middleware: %v", err)
		}
		panic("late")
	})
	srv := httptest.NewServer(Wrap(h, Options{Logger: logger}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("a response cut by a panic read as complete")
	}
}
