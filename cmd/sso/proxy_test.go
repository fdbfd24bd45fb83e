package main

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
)

// forwarding is a transport that sends X-Forwarded-For on every request,
// as a reverse proxy in front of sso would (or a client forging it).
type forwarding struct{ client string }

// RoundTrip adds the header to a copy of req.
func (f forwarding) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("X-Forwarded-For", f.client)
	return http.DefaultTransport.RoundTrip(req)
}

// TestTrustedProxyClientAddress signs in with wrong passwords through a
// "proxy" on loopback: the audit log must name the forwarded client only
// when loopback is a trusted proxy, and the TCP peer otherwise.
func TestTrustedProxyClientAddress(t *testing.T) {
	const forwarded = "203.0.113.9"
	tests := []struct {
		name, trusted, wantIP string
	}{
		{"trusted proxy", "127.0.0.1/32", forwarded},
		{"no trusted proxy: the header is ignored", "", "127.0.0.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			te := newTestEnv(t, db.SQLite)
			te["SSO_TRUSTED_PROXIES"] = tc.trusted
			if r := te.run(t, "a long test passphrase\n", "user", "create", "--username", "alice", "--password-stdin"); r.code != 0 {
				t.Fatal(r.stderr)
			}
			base := startServer(t, te)
			b := browser(t)
			b.Transport = forwarding{client: forwarded}
			const attempts = 5
			for range attempts {
				resp, err := b.Get(base + "/login")
				if err != nil {
					t.Fatal(err)
				}
				page := body(t, resp)
				body(t, submit(t, b, base, "/login", page, url.Values{"identifier": {"alice"}, "password": {"wrong password " + tc.name}}))
			}

			ctx := context.Background()
			d, err := db.Open(ctx, te["SSO_DATABASE_URL"], db.PoolOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			events, err := audit.NewLog(d).List(ctx, audit.Filter{Action: audit.ActionLogin, Result: audit.ResultFailure})
			if err != nil {
				t.Fatal(err)
			}
			if len(events) != attempts {
				t.Fatalf("%d failed sign-ins audited, want %d", len(events), attempts)
			}
			for _, e := range events {
				if e.IP != tc.wantIP {
					t.Errorf("failed sign-in audited with ip %q, want %q", e.IP, tc.wantIP)
				}
			}
		})
	}
}
