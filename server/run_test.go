package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRunFinishesInFlightRequests(t *testing.T) {
	logger, _ := newTestLogger(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(300 * time.Millisecond)
		io.WriteString(w, "done")
	})
	srv := NewHTTPServer(Wrap(mux, Options{Logger: logger}), Timeouts{}, logger)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- Run(ctx, srv, ln, 5*time.Second, logger) }()

	type result struct {
		status int
		body   string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		got <- result{resp.StatusCode, string(body), err}
	}()

	<-started
	cancel() // what SIGTERM does through signal.NotifyContext
	if r := <-got; r.err != nil || r.status != http.StatusOK || r.body != "done" {
		t.Errorf("in-flight request: %d %q %v, want 200 \"done\"", r.status, r.body, r.err)
	}
	if err := <-ran; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("server still accepts connections after Run returned")
	}
}

func TestRunShutdownTimeout(t *testing.T) {
	logger, _ := newTestLogger(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	srv := NewHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
	}), Timeouts{}, logger)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- Run(ctx, srv, ln, 10*time.Millisecond, logger) }()
	go func() {
		if resp, err := http.Get("http://" + ln.Addr().String()); err == nil {
			resp.Body.Close()
		}
	}()
	<-started
	cancel()
	if err := <-ran; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run = %v, want a shutdown deadline error", err)
	}
}

func TestRunReturnsServeError(t *testing.T) {
	logger, _ := newTestLogger(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	srv := NewHTTPServer(http.NotFoundHandler(), Timeouts{}, logger)
	err = Run(context.Background(), srv, ln, time.Second, logger)
	if err == nil || errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Run on a closed listener = %v, want the Serve error", err)
	}
}

func TestNewHTTPServer(t *testing.T) {
	tests := []struct {
		name string
		in   Timeouts
		want Timeouts
	}{
		{"defaults", Timeouts{}, Timeouts{ReadHeader: 5 * time.Second, Read: 30 * time.Second, Write: 30 * time.Second, Idle: 120 * time.Second}},
		{"given", Timeouts{1, 2, 3, 4}, Timeouts{1, 2, 3, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, buf := newTestLogger(t)
			srv := NewHTTPServer(http.NotFoundHandler(), tt.in, logger)
			got := Timeouts{srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout}
			if got != tt.want {
				t.Errorf("timeouts = %+v, want %+v", got, tt.want)
			}
			if srv.MaxHeaderBytes != 64<<10 {
				t.Errorf("MaxHeaderBytes = %d, want 64 KiB", srv.MaxHeaderBytes)
			}
			srv.ErrorLog.Print("http: TLS handshake error")
			if !strings.Contains(buf.String(), `"level":"WARN","msg":"http: TLS handshake error"`) {
				t.Errorf("ErrorLog wrote %q, want a warning through the logger", buf)
			}
		})
	}
}
