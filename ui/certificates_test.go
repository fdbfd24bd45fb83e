package ui

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/govsso/sso/users"
)

// fakeCertificates issues for "GOOD", refuses "BAD" as invalid and "LOW"
// for the level, and counts calls.
type fakeCertificates struct{ calls int }

func (f *fakeCertificates) RequestCertificate(_ context.Context, _ *users.Session, csr string, _ users.RequestMeta) (string, string, error) {
	f.calls++
	switch csr {
	case "GOOD":
		return "-----BEGIN CERTIFICATE-----\nLEAF\n", "-----BEGIN CERTIFICATE-----\nCA\n", nil
	case "LOW":
		return "", "", fmt.Errorf("%w: level 1", ErrCertificateLevel)
	}
	return "", "", fmt.Errorf("%w: garbage", ErrCertificateRequest)
}

func TestCertificatePage(t *testing.T) {
	f := newFixture(t, true)
	svc := &fakeCertificates{}
	cp, err := NewCertificatePages(f.pages, svc)
	if err != nil {
		t.Fatal(err)
	}
	cp.Register(f.mux)
	_, token := f.sessions.start(t, f.user.ID)
	cookie := &http.Cookie{Name: sessionCookie, Value: token}

	if resp, body := f.get("/account/certificates", cookie); resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="csr_pem"`) {
		t.Fatalf("form: %d %.500s", resp.StatusCode, body)
	}
	if resp, _ := f.postRaw("/account/certificates", url.Values{"csr_pem": {"GOOD"}}, nil, cookie); resp.StatusCode != http.StatusForbidden || svc.calls != 0 {
		t.Fatalf("without CSRF: %d, %d calls", resp.StatusCode, svc.calls)
	}
	cases := []struct {
		csr    string
		status int
		want   string
	}{
		{"GOOD", http.StatusCreated, "LEAF"},
		{"BAD", http.StatusBadRequest, "The request is not valid"},
		{"LOW", http.StatusForbidden, "/account/verify?return_to=/account/certificates"},
		{strings.Repeat("A", maxCSRField+1), http.StatusBadRequest, "The request is not valid"},
	}
	for _, c := range cases {
		resp, body := f.post("/account/certificates?lang=en", url.Values{"csr_pem": {c.csr}}, cookie)
		if resp.StatusCode != c.status || !strings.Contains(body, c.want) {
			t.Errorf("csr %.8s: %d, want %d with %q: %.600s", c.csr, resp.StatusCode, c.status, c.want, body)
		}
	}
	if svc.calls != 3 {
		t.Fatalf("%d calls, want 3 (the oversized request is refused before)", svc.calls)
	}
}
