package ui

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestEveryPageCarriesCSPAndNoStore(t *testing.T) {
	f := newFixture(t, true)
	// A fresh session per page, since signing out ends one.
	session := func() *http.Cookie {
		_, token := f.sessions.start(t, f.user.ID)
		return &http.Cookie{Name: sessionCookie, Value: token}
	}
	pages := map[string]func() *http.Response{
		"login":  func() *http.Response { r, _ := f.get("/login"); return r },
		"logout": func() *http.Response { r, _ := f.get("/logout"); return r },
		"consent": func() *http.Response {
			r, _ := f.get("/consent?return_to="+url.QueryEscape(authRequest), session())
			return r
		},
		"login error": func() *http.Response {
			r, _ := f.post("/login", url.Values{"identifier": {"x"}, "password": {"y"}})
			return r
		},
		"csrf error": func() *http.Response { r, _ := f.postRaw("/login", url.Values{}, nil); return r },
		"signed out": func() *http.Response { r, _ := f.post("/logout", url.Values{}, session()); return r },
	}
	for name, get := range pages {
		t.Run(name, func(t *testing.T) {
			resp := get()
			csp := resp.Header.Get("Content-Security-Policy")
			if csp != pageCSP {
				t.Errorf("CSP %q, want %q", csp, pageCSP)
			}
			if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "script-src") {
				t.Errorf("CSP %q allows scripts or inline code", csp)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", cc)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func TestStaticFiles(t *testing.T) {
	f := newFixture(t, true)
	_, body := f.get("/login")
	if !strings.Contains(body, `href="`+f.pages.cssURL+`"`) {
		t.Fatalf("page does not link %s", f.pages.cssURL)
	}
	resp, css := f.get(f.pages.cssURL)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") {
		t.Fatalf("stylesheet: status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !strings.Contains(resp.Header.Get("Cache-Control"), "max-age=31536000") {
		t.Errorf("Cache-Control %q, want a long cache", resp.Header.Get("Cache-Control"))
	}
	if !strings.Contains(css, ":focus-visible") {
		t.Error("stylesheet has no focus style")
	}
	for _, path := range []string{"/static/", "/static/missing.css", "/static/../ui.go"} {
		resp, _ := f.get(path)
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode/100 != 3 {
			t.Errorf("%s: status %d, want 404", path, resp.StatusCode)
		}
		if strings.Contains(resp.Header.Get("Cache-Control"), "max-age") {
			t.Errorf("%s: a miss is cached", path)
		}
	}
}

func TestNewNeedsItsServices(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("New accepted a Config without services")
	}
}
