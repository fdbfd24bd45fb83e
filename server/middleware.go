package server

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"regexp"
	"runtime/debug"
	"time"
)

// DefaultMaxBodyBytes is the request body limit when Options.MaxBodyBytes
// is not set: 1 MiB, far above any form or token request.
const DefaultMaxBodyBytes = 1 << 20

// RequestIDHeader carries the request ID in both directions.
const RequestIDHeader = "X-Request-ID"

// Options configures Wrap.
type Options struct {
	// Logger receives the access log and panic reports; nil means slog.Default().
	Logger *slog.Logger
	// Metrics records request counts and latencies; nil records nothing.
	Metrics *Metrics
	// MaxBodyBytes limits request bodies; 0 or less means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// TrustedProxies are the peers whose X-Forwarded-For and
	// X-Forwarded-Proto are believed (see ClientIP); empty trusts no one.
	TrustedProxies []netip.Prefix
}

// Wrap returns h behind the middleware every request goes through, from the
// outermost: client address (trusted proxies), panic recovery, request ID,
// security headers, body limit, access log and metrics.
//
// The route label of the access log and metrics is the pattern of the
// http.ServeMux route that served the request. The mux sets it on the
// *http.Request it receives, so h must be the mux itself, or hand the mux
// the very request it got (no r.WithContext in between); otherwise every
// request is labelled "unmatched".
func Wrap(h http.Handler, o Options) http.Handler {
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	limit := o.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	h = observe(h, logger, o.Metrics)
	h = limitBody(h, limit)
	h = securityHeaders(h)
	h = requestID(h)
	h = recoverPanics(h, logger)
	return trustProxies(h, o.TrustedProxies)
}

// recoverPanics turns a panicking handler into a 500 answer and a logged
// stack, so one bad request neither kills the connection silently nor
// leaks the panic text to the client.
func recoverPanics(next http.Handler, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w}
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler {
				panic(p) // the handler's way to abort the response on purpose
			}
			// The request ID middleware runs inside this one; its header is how we learn the ID.
			id := w.Header().Get(RequestIDHeader)
			r = r.WithContext(WithRequestID(r.Context(), id))
			logger.ErrorContext(r.Context(), "panic serving request",
				"panic", fmt.Sprint(p), "method", r.Method, "path", r.URL.Path, "stack", string(debug.Stack()))
			if rec.wrote {
				panic(http.ErrAbortHandler) // half a response is out: only closing the connection tells the client
			}
			// Drop whatever the handler had set (cookies, content type) before answering.
			clear(w.Header())
			setSecurityHeaders(w.Header(), r)
			w.Header().Set(RequestIDHeader, id)
			WriteError(w, r, http.StatusInternalServerError, "server_error", "internal error")
		}()
		next.ServeHTTP(rec, r)
	})
}

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// requestID gives every request an ID: the caller's X-Request-ID when it is
// short and plain (so proxies can correlate), otherwise a random one (so a
// client cannot inject text into logs). The ID is echoed in the response.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !validRequestID.MatchString(id) {
			id = newRequestID()
		}
		w.Header().Set(RequestIDHeader, id)
		next.ServeHTTP(w, r.WithContext(WithRequestID(r.Context(), id)))
	})
}

// newRequestID returns 16 random bytes in hex.
func newRequestID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails since Go 1.24
	return hex.EncodeToString(b[:])
}

// securityHeaders sets strict defaults before the handler runs, so a handler
// that needs another policy (a login page loading its own stylesheet, say)
// simply sets its own Content-Security-Policy.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setSecurityHeaders(w.Header(), r)
		next.ServeHTTP(w, r)
	})
}

// setSecurityHeaders sets the security headers of every response.
// Strict-Transport-Security is only sent over TLS, as RFC 6797 requires;
// behind a TLS-terminating proxy r.TLS is nil, so a trusted proxy's
// X-Forwarded-Proto: https counts too (never anyone else's).
func setSecurityHeaders(h http.Header, r *http.Request) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if r.TLS != nil || forwardedHTTPS(r) {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
}

// limitBody caps request bodies at limit bytes; reading past it fails with
// an error IsBodyTooLarge recognises.
func limitBody(next http.Handler, limit int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			r2 := new(http.Request)
			*r2 = *r // handlers must not modify the request they are given
			r2.Body = http.MaxBytesReader(w, r.Body, limit)
			r = r2
		}
		next.ServeHTTP(w, r)
	})
}

// IsBodyTooLarge reports whether err comes from reading a request body past
// the limit Wrap sets; handlers answer it with 413 Request Entity Too Large.
func IsBodyTooLarge(err error) bool {
	var tooLarge *http.MaxBytesError
	return errors.As(err, &tooLarge)
}

// observe writes the access log line and the metrics of each request. The
// path is logged without its query string, which can carry authorization
// codes and tokens.
func observe(next http.Handler, logger *slog.Logger, m *Metrics) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		done := false
		defer func() {
			d := time.Since(start)
			code := rec.statusCode()
			if !done {
				code = http.StatusInternalServerError // panicking: the recovery above answers 500
			}
			route := routeLabel(r)
			logger.LogAttrs(r.Context(), slog.LevelInfo, "http request",
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.String("route", route),
				slog.Int("status", code),
				slog.Int64("bytes", rec.bytes),
				slog.Float64("duration_ms", float64(d.Microseconds())/1000),
				slog.String("remote_addr", ClientIP(r)),
			)
			if m != nil {
				m.observe(route, r.Method, code, d)
			}
		}()
		next.ServeHTTP(rec, r) // the same r: the mux sets r.Pattern on it
		done = true
	})
}

// routeLabel names the mux route that served r, or "unmatched", so labels
// stay bounded. CONNECT redirects put a request-derived path in r.Pattern,
// and sso serves no CONNECT routes, so those count as unmatched too.
func routeLabel(r *http.Request) string {
	if r.Pattern == "" || r.Method == http.MethodConnect {
		return "unmatched"
	}
	return r.Pattern
}

// recorder remembers the status and size of a response.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool // headers are out: the status can no longer change
}

// WriteHeader records the status and passes it on.
func (rec *recorder) WriteHeader(code int) {
	if !rec.wrote && code >= 200 { // 1xx answers are interim
		rec.status, rec.wrote = code, true
	}
	rec.ResponseWriter.WriteHeader(code)
}

// Write counts the bytes written, the first write implying status 200.
func (rec *recorder) Write(b []byte) (int, error) {
	if !rec.wrote {
		rec.status, rec.wrote = http.StatusOK, true
	}
	n, err := rec.ResponseWriter.Write(b)
	rec.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's writer (for
// Flush, deadlines, …) through the recorder.
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

// statusCode is the status sent, 200 if the handler wrote nothing at all.
func (rec *recorder) statusCode() int {
	if !rec.wrote {
		return http.StatusOK
	}
	return rec.status
}
