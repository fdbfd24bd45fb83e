package ui

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/govsso/sso/users"
)

// fakeCertificates issues for "GOOD", refuses "BAD" as invalid and "LOW"
// for the level, and counts calls.
type fakeCertificates struct {
	calls   int
	owned   map[string][]OwnCertificate // by user id
	revoked []string
}

func (f *fakeCertificates) OwnCertificates(_ context.Context, userID string) ([]OwnCertificate, error) {
	return f.owned[userID], nil
}

func (f *fakeCertificates) RevokeOwnCertificate(_ context.Context, userID, serial string, _ users.RequestMeta) error {
	for i, c := range f.owned[userID] {
		if c.Serial == serial {
			f.owned[userID] = append(f.owned[userID][:i], f.owned[userID][i+1:]...)
			f.revoked = append(f.revoked, serial)
			return nil
		}
	}
	return ErrCertificateNotYours
}

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

func TestHolderRevokesOwnCertificate(t *testing.T) {
	f := newFixture(t, true)
	svc := &fakeCertificates{owned: map[string][]OwnCertificate{
		f.user.ID: {{Serial: "0a1b", Subject: "CN=Alice", NotAfter: time.Now().Add(24 * time.Hour)}},
		"someone": {{Serial: "ffee", Subject: "CN=Someone", NotAfter: time.Now().Add(24 * time.Hour)}},
	}}
	cp, err := NewCertificatePages(f.pages, svc)
	if err != nil {
		t.Fatal(err)
	}
	cp.Register(f.mux)
	_, token := f.sessions.start(t, f.user.ID)
	cookie := &http.Cookie{Name: sessionCookie, Value: token}
	if _, body := f.get("/account/certificates?lang=en", cookie); !strings.Contains(body, "0a1b") || strings.Contains(body, "ffee") {
		t.Fatalf("list: %.800s", visibleText(body))
	}
	if resp, _ := f.postRaw(certificatesRevokePath, url.Values{"serial": {"0a1b"}}, nil, cookie); resp.StatusCode != http.StatusForbidden || len(svc.revoked) != 0 {
		t.Fatalf("without CSRF: %d", resp.StatusCode)
	}
	if resp, body := f.post(certificatesRevokePath+"?lang=en", url.Values{"serial": {"ffee"}}, cookie); resp.StatusCode != http.StatusNotFound || len(svc.revoked) != 0 {
		t.Fatalf("someone else's serial: %d %s", resp.StatusCode, visibleText(body))
	}
	resp, body := f.post(certificatesRevokePath+"?lang=en", url.Values{"serial": {"0a1b"}}, cookie)
	if resp.StatusCode != http.StatusOK || !strings.Contains(visibleText(body), "The certificate was revoked") || len(svc.revoked) != 1 {
		t.Fatalf("revoke: %d %s", resp.StatusCode, visibleText(body))
	}
	if resp, _ := f.post(certificatesRevokePath, url.Values{"serial": {"0a1b"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("without a session: %d, want a redirect to sign in", resp.StatusCode)
	}
}
