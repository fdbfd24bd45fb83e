package ui

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/skip2/go-qrcode"

	"github.com/govsso/sso/server"
	"github.com/govsso/sso/users"
)

// QR-code sign-in (扫码登录). The sign-in page shows a QR code image; loading
// the image starts a sign-in and gives the desktop browser a cookie with its
// secret. A phone signed in to this server scans the code, opens /qr?t={token},
// sees which browser, address and time asks, and approves or declines. The
// desktop page polls /login/qr/status with its cookie (qrlogin.js) and, once
// approved, posts /login/qr/complete, which starts the desktop's own session.
// Without JavaScript the person presses "I have approved, continue", which
// posts the same form.

// QRLogins keeps QR sign-ins; *users.QRLogins satisfies it. Every error for
// an unknown, expired, decided or used sign-in wraps users.ErrQRLoginNotFound.
type QRLogins interface {
	// Start records a sign-in for the desktop browser m describes and returns
	// the token for the QR code and the secret for the desktop's cookie.
	Start(ctx context.Context, m users.RequestMeta) (token, browserSecret string, err error)
	// Status returns the sign-in a browser secret names, with its state.
	Status(ctx context.Context, browserSecret string) (*users.QRLogin, error)
	// Pending returns the undecided sign-in a token names.
	Pending(ctx context.Context, token string) (*users.QRLogin, error)
	// Decide approves or declines it for the person signed in with s.
	Decide(ctx context.Context, token string, approve bool, s *users.Session, m users.RequestMeta) error
	// Complete collects an approval once; users.ErrAccountDisabled if the account was disabled since.
	Complete(ctx context.Context, browserSecret string, m users.RequestMeta) (*users.QRLogin, error)
}

// QR sign-in paths and cookie.
const (
	qrImagePath    = "/login/qr/code.png"
	qrStatusPath   = "/login/qr/status"
	qrCompletePath = "/login/qr/complete"
	// qrPhonePath is the phone's page; the token rides in the query
	// (?t=), which the access log leaves out, not in the logged path.
	qrPhonePath = "/qr"
	// qrCookie holds the desktop browser's secret. It is sent only to the
	// /login/qr/ endpoints, and SameSite=Strict: no other site can make the
	// browser poll or complete.
	qrCookie     = "sso_qr"
	qrCookiePath = "/login/qr/"
	// qrURLHeader carries the code's URL with the image.
	qrURLHeader = "X-Sso-Qr-Url"
	// qrImageSize is the PNG's width and height in pixels: enough for a
	// phone camera at arm's length, small enough for the page weight.
	qrImageSize = 240
	// qrLimitPrefix keys the per-address count of QR codes made.
	qrLimitPrefix = "qr:"
	// qrPollMillis is how often qrlogin.js asks for the state, so the
	// desktop follows an approval within a second.
	qrPollMillis = 800
	pageQR       = "qr.html"
)

// qrPageCSP is pageCSP plus our own script and its polling.
const qrPageCSP = pageCSP + "; script-src 'self'; connect-src 'self'"

// qrLoginView is the QR part of the sign-in page.
type qrLoginView struct {
	Message     string // why the last code did not sign in, shown beside the new one
	ImageURL    string // the code's image; each load is a new code
	Script      string // qrlogin.js with its content hash
	StatusURL   string
	PollMillis  int
	CompleteURL string
}

// qrPhoneView is the phone's page: what asks to sign in, and the answer.
type qrPhoneView struct {
	view
	Step      string // confirm, approved, declined or invalid
	Token     string
	Browser   string // the desktop's browser and system in a few words
	IP        string
	CreatedAt string // China time
	ExpiresIn int    // whole seconds left
}

// RateLimiter counts requests per client address and says until when one
// is refused, or the zero time; a ratelimit.Limiter does it with counters
// every node shares, in the database or in Redis.
type RateLimiter interface {
	Count(ctx context.Context, key string) (time.Time, error)
}

// qrScriptURL is the URL of qrlogin.js with a hash of its content.
func qrScriptURL() (string, error) {
	js, err := staticFS.ReadFile("static/qrlogin.js")
	if err != nil {
		return "", fmt.Errorf("read qrlogin.js: %w", err)
	}
	sum := sha256.Sum256(js)
	return "/static/qrlogin.js?v=" + hex.EncodeToString(sum[:6]), nil
}

// parseQRTemplate parses the phone's page into its own layout copy.
func parseQRTemplate() (*template.Template, error) {
	layout, err := template.ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("parse layout: %w", err)
	}
	t, err := layout.ParseFS(templateFS, "templates/"+pageQR)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", pageQR, err)
	}
	return t, nil
}

// setupQR checks the QR part of c and prepares its page and script.
func (p *Pages) setupQR(c Config) error {
	if c.QR == nil {
		return nil
	}
	if c.QRLimiter == nil {
		return errors.New("ui: Config.QR needs QRLimiter")
	}
	tmpl, err := parseQRTemplate()
	if err != nil {
		return fmt.Errorf("ui: %w", err)
	}
	js, err := qrScriptURL()
	if err != nil {
		return fmt.Errorf("ui: %w", err)
	}
	p.qr, p.qrLimit, p.qrTmpl, p.qrJS, p.issuer = c.QR, c.QRLimiter, tmpl, js, strings.TrimSuffix(c.Issuer, "/")
	return nil
}

// registerQR adds the QR sign-in endpoints when QR sign-in is on.
func (p *Pages) registerQR(mux *http.ServeMux) {
	if p.qr == nil {
		return
	}
	mux.HandleFunc("GET "+qrImagePath, p.qrImage)
	mux.HandleFunc("GET "+qrStatusPath, p.qrStatus)
	mux.HandleFunc("POST "+qrCompletePath, p.qrComplete)
	mux.HandleFunc("GET "+qrPhonePath, p.qrPhoneForm)
	mux.HandleFunc("POST "+qrPhonePath, p.qrPhoneDecide)
}

// withQR adds the QR code to the sign-in page when QR sign-in is on.
func (p *Pages) withQR(page string, v view) view {
	// A phone sent to sign in on its way to approve a code needs no code.
	if page == pageLogin && p.qr != nil && !strings.HasPrefix(v.ReturnTo, qrPhonePath+"?") {
		q := &qrLoginView{ImageURL: qrImagePath, Script: p.qrJS, StatusURL: qrStatusPath, PollMillis: qrPollMillis, CompleteURL: qrCompletePath}
		if v.QR != nil {
			q.Message = v.QR.Message
		}
		v.QR = q
	}
	return v
}

// qrURL is what the code encodes: the phone page on the issuer, so that a
// phone's camera app opens it in the browser where the person is signed in.
func (p *Pages) qrURL(r *http.Request, token string) string {
	base := p.issuer
	if base == "" {
		scheme := "https"
		if !p.secure {
			scheme = "http"
		}
		base = scheme + "://" + r.Host
	}
	return base + qrPhoneURL(token)
}

// qrPhoneURL is the phone's page for a token.
func qrPhoneURL(token string) string {
	return qrPhonePath + "?" + url.Values{"t": {token}}.Encode()
}

// qrImage starts a sign-in and answers with its code as a PNG, handing the
// browser the secret that collects it. Each address may make a bounded
// number of codes, since every one is a database row.
func (p *Pages) qrImage(w http.ResponseWriter, r *http.Request) {
	ip := server.ClientIP(r)
	until, err := p.qrLimit.Count(r.Context(), qrLimitPrefix+ip)
	if err != nil {
		p.log.Error("ui: QR sign-in rate limit", "err", err)
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	if !until.IsZero() {
		if wait := time.Until(until); wait > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		}
		http.Error(w, http.StatusText(http.StatusTooManyRequests), http.StatusTooManyRequests)
		return
	}
	token, secret, err := p.qr.Start(r.Context(), users.RequestMeta{IP: ip, UserAgent: r.UserAgent()})
	if err != nil {
		p.log.Error("ui: start QR sign-in", "err", err)
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	png, err := qrcode.Encode(p.qrURL(r, token), qrcode.Medium, qrImageSize)
	if err != nil {
		p.log.Error("ui: encode QR code", "err", err)
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: qrCookie, Value: secret, Path: qrCookiePath, MaxAge: int((users.QRLoginTTL + time.Minute).Seconds()),
		HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteStrictMode,
	})
	h := w.Header()
	// The header says in text what the image says to a camera, for
	// programs (browser tests, assistive tools). It gives away nothing the
	// image does not: collecting the sign-in needs this browser's cookie.
	h.Set(qrURLHeader, p.qrURL(r, token))
	h.Set("Content-Type", "image/png")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(png)))
	w.Write(png)
}

// qrStatusAnswer is what the desktop's polling reads.
type qrStatusAnswer struct {
	Status string `json:"status"`
}

// qrStatus tells the desktop browser how its sign-in stands; a browser
// without the cookie learns nothing.
func (p *Pages) qrStatus(w http.ResponseWriter, r *http.Request) {
	lang := p.chooseLang(w, r, "/")
	c, err := r.Cookie(qrCookie)
	if err != nil {
		writeJSON(w, http.StatusNotFound, jsonError{Error: "not_found", Description: msg(lang, "qr.expired")})
		return
	}
	l, err := p.qr.Status(r.Context(), c.Value)
	switch {
	case errors.Is(err, users.ErrQRLoginNotFound):
		writeJSON(w, http.StatusNotFound, jsonError{Error: "not_found", Description: msg(lang, "qr.expired")})
	case err != nil:
		p.log.Error("ui: QR sign-in status", "err", err)
		writeJSON(w, http.StatusInternalServerError, jsonError{Error: "server_error", Description: msg(lang, "error.internal")})
	default:
		writeJSON(w, http.StatusOK, qrStatusAnswer{Status: l.Status})
	}
}

// qrComplete starts the desktop's session once the phone has approved. Like
// a password sign-in it replaces any session the browser had, so nothing
// planted before is promoted; the new session records "qr" and the level
// the approval carried (see users.QRMaxACR).
func (p *Pages) qrComplete(w http.ResponseWriter, r *http.Request) {
	form, ok := p.readForm(w, r)
	if !ok {
		return
	}
	returnTo, lang := form.returnTo, form.lang
	meta := users.RequestMeta{IP: server.ClientIP(r), UserAgent: r.UserAgent(), ClientID: returnQuery(returnTo).Get("client_id")}
	secret := ""
	if c, err := r.Cookie(qrCookie); err == nil {
		secret = c.Value
	}
	l, err := p.qr.Complete(r.Context(), secret, meta)
	if err != nil {
		p.qrNotCompleted(w, r, lang, returnTo, l, err)
		return
	}
	if old, err := p.CurrentSession(r); err == nil {
		if err := p.sessions.Revoke(r.Context(), old.ID); err != nil {
			p.log.Warn("ui: revoke previous session", "err", err)
		}
	}
	_, token, err := p.sessions.Create(r.Context(), l.UserID, l.AMR, l.ACR, meta.IP, meta.UserAgent)
	if err != nil {
		p.failInternal(w, r, lang, "create session", err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: qrCookie, Value: "", Path: qrCookiePath, MaxAge: -1, HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteStrictMode})
	p.setSessionCookie(w, token)
	p.newCSRFToken(w)
	seeOther(w, returnTo)
}

// qrNotCompleted shows the sign-in page again, with a new code and why the
// old one did not sign the browser in.
func (p *Pages) qrNotCompleted(w http.ResponseWriter, r *http.Request, lang, returnTo string, l *users.QRLogin, err error) {
	v := p.loginView(w, r, lang, returnTo)
	status, key := http.StatusBadRequest, "qr.expired"
	switch {
	case errors.Is(err, users.ErrAccountDisabled):
		status, key = http.StatusForbidden, "login.disabled"
	case !errors.Is(err, users.ErrQRLoginNotFound):
		p.failInternal(w, r, lang, "complete QR sign-in", err)
		return
	case l != nil && l.Status == users.QRPending:
		status, key = http.StatusConflict, "qr.not_yet"
	case l != nil && l.Status == users.QRDeclined:
		status, key = http.StatusForbidden, "qr.declined"
	}
	// The reason goes beside the new code, where the person looks.
	v.QR = &qrLoginView{Message: msg(lang, key)}
	p.render(w, status, pageLogin, v)
}

// qrPhoneForm shows the phone what asks to sign in, after signing the
// phone in first if it is not.
func (p *Pages) qrPhoneForm(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("t")
	lang := p.chooseLang(w, r, "/")
	if _, err := p.CurrentSession(r); err != nil {
		seeOther(w, loginURL(qrPhoneURL(clipToken(token))))
		return
	}
	v := p.qrPhoneView(w, r, lang, token)
	l, err := p.qr.Pending(r.Context(), token)
	if err != nil {
		p.qrInvalid(w, r, v, err)
		return
	}
	v.Step, v.Token = "confirm", token
	v.Browser = deviceName(l.UserAgent)
	if v.Browser == "" {
		v.Browser = msg(lang, "qr.unknown_browser")
	}
	v.IP, v.CreatedAt = l.IP, localTime(l.CreatedAt)
	v.ExpiresIn = max(int(time.Until(l.ExpiresAt).Seconds()), 0)
	p.renderQR(w, http.StatusOK, v)
}

// qrPhoneDecide records the phone's answer.
func (p *Pages) qrPhoneDecide(w http.ResponseWriter, r *http.Request) {
	form, ok := p.readForm(w, r)
	if !ok {
		return
	}
	token := r.PostForm.Get("t")
	s, err := p.CurrentSession(r)
	if err != nil {
		seeOther(w, loginURL(qrPhoneURL(clipToken(token))))
		return
	}
	v := p.qrPhoneView(w, r, form.lang, token)
	decision := r.PostForm.Get("decision")
	if decision != "approve" && decision != "decline" {
		p.fail(w, r, http.StatusBadRequest, form.lang, "error.title", "error.form")
		return
	}
	m := users.RequestMeta{IP: server.ClientIP(r), UserAgent: r.UserAgent()}
	if err := p.qr.Decide(r.Context(), token, decision == "approve", s, m); err != nil {
		p.qrInvalid(w, r, v, err)
		return
	}
	v.Step = "declined"
	if decision == "approve" {
		v.Step = "approved"
	}
	p.renderQR(w, http.StatusOK, v)
}

// qrPhoneView starts the phone page.
func (p *Pages) qrPhoneView(w http.ResponseWriter, r *http.Request, lang, token string) qrPhoneView {
	path := qrPhoneURL(clipToken(token))
	v := qrPhoneView{view: p.newView(path, lang, "/")}
	v.SwitchURL = withParam(path, "lang", otherLang(lang))
	v.CSRF = p.csrfToken(w, r)
	return v
}

// clipToken drops a token too long to be ours, so that links built from
// it stay short.
func clipToken(token string) string {
	if len(token) > 64 {
		return ""
	}
	return token
}

// qrInvalid says the code cannot be used any more, and what to do.
func (p *Pages) qrInvalid(w http.ResponseWriter, r *http.Request, v qrPhoneView, err error) {
	if !errors.Is(err, users.ErrQRLoginNotFound) {
		p.failInternal(w, r, v.Lang, "QR sign-in", err)
		return
	}
	v.Step, v.Token, v.Message = "invalid", "", msg(v.Lang, "qr.invalid")
	p.renderQR(w, http.StatusNotFound, v)
}

// renderQR writes the phone page with the headers of every page (see
// Pages.render); it loads no script.
func (p *Pages) renderQR(w http.ResponseWriter, status int, v qrPhoneView) {
	var buf bytes.Buffer
	if err := p.qrTmpl.ExecuteTemplate(&buf, "layout", v); err != nil {
		p.log.Error("ui: render page", "page", pageQR, "err", err)
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Language", v.Lang)
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}
