package ui

import (
	"html"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"testing"
	"time"
)

// BenchmarkSignInPage renders the sign-in page of an authorization request
// server-side, as a browser first sees it (client name, CSRF token,
// language), and reports the p99 over the run (make bench-ui: 1,000
// requests) and the HTML size. Everything the page loads besides the HTML
// is in static/ and cached by URL.
func BenchmarkSignInPage(b *testing.B) {
	p, err := New(Config{
		Auth: &fakeAuth{}, Sessions: &fakeSessions{byToken: nil}, Consents: &fakeConsents{},
		Clients: fakeClients{testClientID: {ID: testClientID, Name: testClientName}}, SecureCookies: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	p.Register(mux)
	target := "/login?return_to=" + "%2Foauth2%2Fauth%3Fclient_id%3D" + testClientID + "%26response_type%3Dcode%26state%3Dxyz"
	lat := make([]time.Duration, 0, b.N)
	size := 0
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		t0 := time.Now()
		mux.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
		lat = append(lat, time.Since(t0))
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
		size = w.Body.Len()
	}
	// The page's weight: its HTML and every stylesheet, script and image it loads from us.
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
	weight := w.Body.Len()
	for _, m := range assetRef.FindAllStringSubmatch(w.Body.String(), -1) {
		a := httptest.NewRecorder()
		mux.ServeHTTP(a, httptest.NewRequest("GET", html.UnescapeString(m[1]), nil))
		if a.Code != http.StatusOK {
			b.Fatalf("%s: status %d", m[1], a.Code)
		}
		weight += a.Body.Len()
	}
	b.ReportMetric(float64(weight), "page-bytes")
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(size), "html-bytes")
}

// assetRef finds what a page loads from this server.
var assetRef = regexp.MustCompile(`(?:href|src)="(/(?:static|login/qr)/[^"]+)"`)
