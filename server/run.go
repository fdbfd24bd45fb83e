package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// DefaultShutdownTimeout is how long Run lets in-flight requests finish when
// it is given no timeout.
const DefaultShutdownTimeout = 30 * time.Second

// Timeouts bounds each phase of a connection so slow or idle clients cannot
// hold connections forever (slowloris). A zero field takes the default shown.
type Timeouts struct {
	ReadHeader time.Duration // reading the request headers; 5 s
	Read       time.Duration // reading the whole request, body included; 30 s
	Write      time.Duration // from the end of the headers to the end of the response; 30 s
	Idle       time.Duration // a keep-alive connection waiting for its next request; 120 s
}

// maxHeaderBytes caps request headers; real requests need a few KiB.
const maxHeaderBytes = 64 << 10

// NewHTTPServer returns a server for h with the given timeouts, 64 KiB of
// request headers at most, and net/http's own complaints (TLS handshake
// errors, bad requests) logged through logger at warn level.
func NewHTTPServer(h http.Handler, t Timeouts, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: orDefault(t.ReadHeader, 5*time.Second),
		ReadTimeout:       orDefault(t.Read, 30*time.Second),
		WriteTimeout:      orDefault(t.Write, 30*time.Second),
		IdleTimeout:       orDefault(t.Idle, 120*time.Second),
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Run serves srv on ln (over TLS when srv.TLSConfig is set) until ctx is cancelled (the caller ties ctx to
// SIGTERM and SIGINT with signal.NotifyContext), then stops accepting
// connections and gives in-flight requests shutdownTimeout (0 means
// DefaultShutdownTimeout) to finish before closing the rest. It returns nil
// after a clean shutdown, the Shutdown error if requests outlived the
// timeout, or the error that made Serve stop on its own.
func Run(ctx context.Context, srv *http.Server, ln net.Listener, shutdownTimeout time.Duration, logger *slog.Logger) error {
	served := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			// The certificate comes from TLSConfig.GetCertificate; ServeTLS
			// also offers HTTP/2, which Serve over a TLS listener would not.
			served <- srv.ServeTLS(ln, "", "")
			return
		}
		served <- srv.Serve(ln)
	}()

	select {
	case err := <-served:
		if errors.Is(err, http.ErrServerClosed) {
			return nil // someone else shut srv down
		}
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}

	timeout := orDefault(shutdownTimeout, DefaultShutdownTimeout)
	logger.Info("shutting down, letting in-flight requests finish", "timeout", timeout.String())
	// ctx is already cancelled: the deadline must hang off a live context.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-served // Serve has returned http.ErrServerClosed
	if err != nil {
		srv.Close() // cut the requests that outlived the timeout
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
