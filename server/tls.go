package server

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// DefaultCertCheckInterval is how often, at most, CertReloader looks at the
// files' modification times: often enough that a renewed certificate is
// served within seconds, rarely enough that handshakes do not stat files.
const DefaultCertCheckInterval = 5 * time.Second

// CertReloader serves a certificate and key read from files, and reads them
// again when either file's modification time changes, so that a renewed
// certificate (cert-manager, certbot) is served without a restart. A new
// pair that does not load is logged and the previous one kept: a half-written
// renewal must not take the server off the air.
type CertReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	interval          time.Duration
	now               func() time.Time

	mu        sync.Mutex
	cert      *tls.Certificate
	certMod   time.Time
	keyMod    time.Time
	lastCheck time.Time
}

// NewCertReloader loads the pair once and fails if it does not load, so that
// a wrong path or a mismatched key stops the start-up instead of the first
// handshake.
func NewCertReloader(certFile, keyFile string, logger *slog.Logger) (*CertReloader, error) {
	r := &CertReloader{certFile: certFile, keyFile: keyFile, log: logger, interval: DefaultCertCheckInterval, now: time.Now}
	certMod, keyMod, err := r.modTimes()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate %s and key %s: %w", certFile, keyFile, err)
	}
	r.cert, r.certMod, r.keyMod, r.lastCheck = &cert, certMod, keyMod, r.now()
	return r, nil
}

func (r *CertReloader) modTimes() (cert, key time.Time, err error) {
	ci, err := os.Stat(r.certFile)
	if err != nil {
		return cert, key, fmt.Errorf("TLS certificate: %w", err)
	}
	ki, err := os.Stat(r.keyFile)
	if err != nil {
		return cert, key, fmt.Errorf("TLS key: %w", err)
	}
	return ci.ModTime(), ki.ModTime(), nil
}

// GetCertificate is tls.Config.GetCertificate: it returns the current pair,
// first reloading it if the interval has passed and a file changed.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.now(); now.Sub(r.lastCheck) >= r.interval {
		r.lastCheck = now
		if err := r.reloadLocked(); err != nil {
			r.log.Error("TLS certificate not reloaded; still serving the previous one", "cert_file", r.certFile, "key_file", r.keyFile, "err", err)
		}
	}
	return r.cert, nil
}

// reloadLocked reads the pair again if a file changed since the last load.
// The times are remembered even when loading fails, so a bad file is
// reported once rather than on every check until it is fixed.
func (r *CertReloader) reloadLocked() error {
	certMod, keyMod, err := r.modTimes()
	if err != nil {
		return err
	}
	if certMod.Equal(r.certMod) && keyMod.Equal(r.keyMod) {
		return nil
	}
	r.certMod, r.keyMod = certMod, keyMod
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return err
	}
	r.cert = &cert
	r.log.Info("reloaded TLS certificate", "cert_file", r.certFile)
	return nil
}

// TLSConfig is the server's TLS configuration: TLS 1.2 at least, with the
// reloader's certificate.
func (r *CertReloader) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}
}
