package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/govsso/sso/db"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pageCSP lets pages load their own stylesheet and nothing else: no
// scripts at all, no inline styles. It has no form-action: browsers apply
// form-action to every redirect that answers a form, and the sign-in and
// consent forms end in a redirect to the department system's callback,
// whose origin the page cannot know (a pushed request names none).
const pageCSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"

// The pages, each a template in templates/ rendered inside layout.html.
const (
	pageLogin     = "login.html"
	pageLogout    = "logout.html"
	pageSignedOut = "signed_out.html"
	pageConsent   = "consent.html"
	pageError     = "error.html"
)

// templates maps a page name to its template (layout plus page).
type templates map[string]*template.Template

// parseTemplates parses the layout once per page, since every page
// defines the same "title" and "content" blocks.
func parseTemplates() (templates, error) {
	layout, err := template.ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("parse layout: %w", err)
	}
	t := templates{}
	for _, name := range []string{pageLogin, pageLogout, pageSignedOut, pageConsent, pageError, pagePasskeys, pageMFA, pageSecurity, pageTOTPEnrol, pageRegister, pageReset, pageVerify, pageActing, pageAccount, pagePassword, pageSMSLogin} {
		clone, err := layout.Clone()
		if err != nil {
			return nil, fmt.Errorf("clone layout: %w", err)
		}
		if t[name], err = clone.ParseFS(templateFS, append([]string{"templates/" + name}, pageParts[name]...)...); err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, err)
		}
	}
	return t, nil
}

// view is everything a page shows. Strings are plain text; the templates
// escape them.
type view struct {
	Lang      string // zh-CN or en
	CSS       string // stylesheet URL
	SwitchURL string // this page in the other language
	OtherLang string // the language SwitchURL leads to
	CSRF      string
	Message   string // an error or notice, already translated
	ReturnTo  string

	Identifier string // login: what the person typed
	ClientName string // login, consent: the client's display name
	// login, consent: the client's logo (a data URI) and department
	ClientLogo       template.URL
	ClientDepartment string
	Scopes           []string // consent: what the client asks for, in words
	ContinueURL      string   // signed out: where to go next
	Heading          string   // error page: its title, already translated

	PasskeyJS     string       // passkeys.js URL on pages that use it ("" elsewhere: no scripts)
	Passkeys      []passkeyRow // account passkeys page
	PasskeysFresh bool         // passkeys page: signed in recently enough to add one
	ReauthURL     string       // passkeys page: sign in again

	MFA *mfaView // second-factor step and account security pages

	Account  accountForm  // registration and password reset pages
	Verify   verifyForm   // identity verification page
	Password passwordForm // change-password page
	Acting   actingForm   // acting-for page
	Centre   *centreView  // account centre

	QR *qrLoginView // sign-in page: the QR code, when QR sign-in is on
}

// T returns the catalogue text for key in the page's language, with args
// filled in.
func (v view) T(key string, args ...any) string {
	s := msg(v.Lang, key)
	if len(args) > 0 {
		return fmt.Sprintf(s, args...)
	}
	return s
}

// newView starts the view of a page at path in lang.
func (p *Pages) newView(path, lang, returnTo string) view {
	return view{
		Lang: lang, CSS: p.cssURL, ReturnTo: returnTo,
		SwitchURL: switchURL(path, returnTo, lang), OtherLang: otherLang(lang),
	}
}

// render writes a page with the headers every page carries: its own CSP
// (replacing the server's stricter default, which would block the
// stylesheet), no caching, and Referrer-Policy same-origin, because under
// no-referrer browsers send "Origin: null" with form posts and the origin
// check would refuse our own forms.
func (p *Pages) render(w http.ResponseWriter, status int, page string, v view) {
	v = p.withPasskeyScript(page, v)
	v = p.withAccountLinks(page, v)
	v = p.withQR(page, v)
	p.writePage(w, p.tmpl[page], page, status, v.Lang, cspFor(v), v)
}

// writePage executes tmpl's layout with data and writes it with the headers
// every page carries; render and the pages of other features (licences,
// signature requests, certificates) share it.
func (p *Pages) writePage(w http.ResponseWriter, tmpl *template.Template, page string, status int, lang, csp string, data any) {
	var buf bytes.Buffer
	if err := tmpl.ExecuteTemplate(&buf, "layout", data); err != nil {
		p.log.Error("ui: render page", "page", page, "err", err)
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", csp)
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Language", lang)
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// fail renders the error page with a catalogue title and message.
func (p *Pages) fail(w http.ResponseWriter, r *http.Request, status int, lang, titleKey, msgKey string) {
	v := p.newView(r.URL.Path, lang, "/")
	v.Message = msg(lang, msgKey)
	v.Heading = msg(lang, titleKey)
	p.render(w, status, pageError, v)
}

// failCSRF answers a POST that did not come from our own form.
func (p *Pages) failCSRF(w http.ResponseWriter, r *http.Request, lang string) {
	p.fail(w, r, http.StatusForbidden, lang, "csrf.title", "csrf.reload")
}

// failInternal answers a failure of a service the pages call.
func (p *Pages) failInternal(w http.ResponseWriter, r *http.Request, lang, what string, err error) {
	p.log.Error("ui: "+what, "err", err)
	if errors.Is(err, db.ErrUnavailable) { // the database is down or full: try again shortly
		w.Header().Set("Retry-After", "5")
		p.fail(w, r, http.StatusServiceUnavailable, lang, "error.title", "error.internal")
		return
	}
	p.fail(w, r, http.StatusInternalServerError, lang, "error.title", "error.internal")
}

// staticHandler serves the embedded static files with a year-long cache;
// the stylesheet URL carries a hash of its content, so a changed file is
// a new URL. It returns that URL and the handler.
func staticHandler() (string, http.Handler, error) {
	css, err := staticFS.ReadFile("static/sso.css")
	if err != nil {
		return "", nil, fmt.Errorf("read stylesheet: %w", err)
	}
	sum := sha256.Sum256(css)
	cssURL := "/static/sso.css?v=" + hex.EncodeToString(sum[:6])

	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return "", nil, fmt.Errorf("static files: %w", err)
	}
	files := http.StripPrefix("/static/", http.FileServerFS(sub))
	return cssURL, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/static/")
		if info, err := fs.Stat(sub, name); err != nil || info.IsDir() { // no listings
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		files.ServeHTTP(w, r)
	}), nil
}
