package ui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
)

// Cookie and form field names.
const (
	sessionCookie = "sso_session"
	csrfCookie    = "sso_csrf"
	langCookie    = "sso_lang"
	csrfField     = "csrf_token"
)

// csrfTokenLen is the length of a CSRF token: 32 random bytes, base64url.
var csrfTokenLen = base64.RawURLEncoding.EncodedLen(32)

// setSessionCookie hands the browser its session token.
//
// The cookie has no Max-Age, so it ends when the browser closes: many people
// sign in on shared computers in service halls and libraries, and a
// persistent cookie would outlive them walking away. The server still ends
// the session on its own schedule, because Lookup enforces the lifetime;
// the cookie never extends it. SameSite=Lax (not Strict) because a person
// arrives at /oauth2/auth by a top-level redirect from a department's site,
// and that request must carry the session for single sign-on to work.
func (p *Pages) setSessionCookie(w http.ResponseWriter, token string) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: token, Path: "/",
		HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteLaxMode,
	})
}

// clearSessionCookie tells the browser to forget its session token.
func (p *Pages) clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteLaxMode,
	})
}

// csrfToken returns the browser's CSRF token, issuing a new one when the
// request carries none. The cookie is SameSite=Strict, so a person who
// arrives from another site gets a fresh token; the form they then post
// is same-site and carries it.
func (p *Pages) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == csrfTokenLen {
		return c.Value
	}
	return p.newCSRFToken(w)
}

// newCSRFToken issues a fresh CSRF token, as after signing in, so that a
// token planted before sign-in is worthless afterwards.
func (p *Pages) newCSRFToken(w http.ResponseWriter) string {
	var b [32]byte
	rand.Read(b[:]) // never fails since Go 1.24
	token := base64.RawURLEncoding.EncodeToString(b[:])
	http.SetCookie(w, &http.Cookie{
		Name: csrfCookie, Value: token, Path: "/",
		HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteStrictMode,
	})
	return token
}

// checkCSRF reports whether a POST comes from our own form: its Origin, if
// any, is ours, and the form's token equals the cookie's. The form must
// already be parsed.
func (p *Pages) checkCSRF(r *http.Request) bool {
	if !p.sameOrigin(r) {
		return false
	}
	c, err := r.Cookie(csrfCookie)
	if err != nil || len(c.Value) != csrfTokenLen {
		return false
	}
	field := r.PostForm.Get(csrfField)
	return subtle.ConstantTimeCompare([]byte(field), []byte(c.Value)) == 1
}

// sameOrigin accepts a request without an Origin header (older browsers)
// or with our own. "null", which browsers send from sandboxed or
// cross-origin contexts, is rejected.
func (p *Pages) sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host != r.Host {
		return false
	}
	return u.Scheme == "https" || (!p.secure && u.Scheme == "http")
}
