package server

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("127.0.0.1/32"),
		netip.MustParsePrefix("2001:db8:1::/48"),
	}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		peer    string
		xff     []string // one element per header line
		want    string
	}{
		{"no proxies configured", nil, "192.0.2.7:4567", nil, "192.0.2.7"},
		{"header ignored when nothing is trusted", nil, "192.0.2.7:4567", []string{"203.0.113.9"}, "192.0.2.7"},
		{"untrusted peer forges the header", trusted, "192.0.2.7:4567", []string{"203.0.113.9"}, "192.0.2.7"},
		{"trusted peer without header", trusted, "10.1.2.3:80", nil, "10.1.2.3"},
		{"trusted peer, one proxy", trusted, "10.1.2.3:80", []string{"203.0.113.9"}, "203.0.113.9"},
		{"chain of trusted proxies", trusted, "10.1.2.3:80", []string{"203.0.113.9, 10.9.9.9, 127.0.0.1"}, "203.0.113.9"},
		{"forged entries left of the client are skipped", trusted, "10.1.2.3:80", []string{"198.51.100.1, 203.0.113.9, 10.9.9.9"}, "203.0.113.9"},
		{"several header lines form one list", trusted, "10.1.2.3:80", []string{"198.51.100.1", "203.0.113.9", "10.9.9.9"}, "203.0.113.9"},
		{"all hops trusted: the leftmost", trusted, "10.1.2.3:80", []string{"10.4.4.4, 10.5.5.5"}, "10.4.4.4"},
		{"IPv6 peer and client", trusted, "[2001:db8:1::5]:443", []string{"2001:db8:2::9"}, "2001:db8:2::9"},
		{"IPv6 peer untrusted", trusted, "[2001:db8:2::5]:443", []string{"203.0.113.9"}, "2001:db8:2::5"},
		{"IPv4-mapped peer counts as IPv4", trusted, "[::ffff:10.1.2.3]:80", []string{"203.0.113.9"}, "203.0.113.9"},
		{"entry with a port", trusted, "10.1.2.3:80", []string{"203.0.113.9:51234"}, "203.0.113.9"},
		{"malformed header: the proxy is the client", trusted, "10.1.2.3:80", []string{"not-an-ip"}, "10.1.2.3"},
		{"malformed entry stops the walk", trusted, "10.1.2.3:80", []string{"198.51.100.1, unknown, 10.9.9.9"}, "10.9.9.9"},
		{"empty entries are malformed", trusted, "10.1.2.3:80", []string{"203.0.113.9,,"}, "10.1.2.3"},
		{"peer without port", trusted, "192.0.2.7", nil, "192.0.2.7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got string
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = ClientIP(r) })
			req := httptest.NewRequest("GET", "/", nil)
			req.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			logger, _ := newTestLogger(t)
			serve(h, Options{Logger: logger, TrustedProxies: tc.trusted}, req)
			if got != tc.want {
				t.Fatalf("ClientIP = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestClientIPOutsideWrap(t *testing.T) {
	req := httptest.NewRequest("GET", "/", nil)
	req.RemoteAddr = "[2001:db8::7]:4567"
	if got := ClientIP(req); got != "2001:db8::7" {
		t.Fatalf("ClientIP = %q, want the peer address", got)
	}
}

func TestForwardedProtoHSTS(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name, peer, proto, want string
	}{
		{"trusted proxy terminated TLS", "10.1.2.3:80", "https", "max-age=31536000"},
		{"nearest proxy's value counts", "10.1.2.3:80", "http, HTTPS", "max-age=31536000"},
		{"trusted proxy spoke http", "10.1.2.3:80", "http", ""},
		{"untrusted peer claims https", "192.0.2.7:4567", "https", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
			req := httptest.NewRequest("GET", "http://sso.example/", nil)
			req.RemoteAddr = tc.peer
			req.Header.Set("X-Forwarded-Proto", tc.proto)
			logger, _ := newTestLogger(t)
			resp := serve(h, Options{Logger: logger, TrustedProxies: trusted}, req)
			if got := resp.Header.Get("Strict-Transport-Security"); got != tc.want {
				t.Fatalf("Strict-Transport-Security = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAccessLogUsesClientIP(t *testing.T) {
	logger, buf := newTestLogger(t)
	req := httptest.NewRequest("GET", "/", nil)
	req.RemoteAddr = "10.1.2.3:80"
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	serve(http.NotFoundHandler(), Options{Logger: logger, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, req)
	lines := logLines(t, buf)
	if len(lines) != 1 || lines[0]["remote_addr"] != "203.0.113.9" {
		t.Fatalf("access log %v, want remote_addr 203.0.113.9", lines)
	}
}
