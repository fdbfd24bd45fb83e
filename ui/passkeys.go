package ui

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/server"
	"github.com/govsso/sso/users"
)

// Passkeys registers WebAuthn passkeys and signs people in with them,
// without a password. *users.Passkeys satisfies it.
type Passkeys interface {
	// BeginRegistration starts adding a passkey to the account.
	BeginRegistration(ctx context.Context, userID string) (*users.PasskeyChallenge, error)
	// FinishRegistration checks the browser's response and stores the passkey under name. Errors:
	// users.ErrPasskeyCeremony, users.ErrPasskeyRejected, users.ErrPasskeyNameValid, users.ErrTooManyPasskeys.
	FinishRegistration(ctx context.Context, userID, token string, response []byte, name string, m users.RequestMeta) (*users.Passkey, error)
	// BeginLogin starts a passwordless sign-in; conditional is the browser's autofill UI.
	BeginLogin(ctx context.Context, conditional bool) (*users.PasskeyChallenge, error)
	// FinishLogin checks the browser's response. Errors: users.ErrPasskeyCeremony, users.ErrPasskeyRejected,
	// users.ErrLocked (maybe a *users.LockedError), users.ErrAccountDisabled.
	FinishLogin(ctx context.Context, token string, response []byte, m users.RequestMeta) (*users.PasskeySignIn, error)
	// BeginSecondFactor starts the passkey step after a right password
	// (users.ErrNoPasskeys when the account has none).
	BeginSecondFactor(ctx context.Context, userID string) (*users.PasskeyChallenge, error)
	// FinishSecondFactor checks the browser's response for userID; errors as FinishLogin.
	FinishSecondFactor(ctx context.Context, userID, token string, response []byte, m users.RequestMeta) (*users.PasskeySignIn, error)
	// List returns the account's passkeys.
	List(ctx context.Context, userID string) ([]*users.Passkey, error)
	// Rename names one of the account's passkeys (db.ErrNotFound if it has no such passkey).
	Rename(ctx context.Context, userID, id, name string, m users.RequestMeta) error
	// Delete removes one of the account's passkeys (db.ErrNotFound if it has no such passkey).
	Delete(ctx context.Context, userID, id string, m users.RequestMeta) error
}

// Passkey cookies: each names the server-side state of one ceremony in
// flight. Separate names, so that the login page's autofill request and an
// account page in another tab do not end each other's ceremony.
const (
	passkeyRegisterCookie = "sso_passkey_register"
	passkeyLoginCookie    = "sso_passkey_login"
	passkeyCookiePath     = "/passkeys/"
	csrfHeader            = "X-CSRF-Token"
	pagePasskeys          = "passkeys.html"
	passkeysPath          = "/account/passkeys"
	// passkeyReauthAfter is how old a sign-in may be for its session to
	// add a passkey: a stolen session cookie must not turn into a
	// credential that outlives the session.
	passkeyReauthAfter = 15 * time.Minute
	// maxPasskeyBody bounds a ceremony request; real responses are a few kilobytes.
	maxPasskeyBody = 64 << 10
)

// passkeyPageCSP is pageCSP plus our own script and its fetch calls, for
// the pages that load passkeys.js and only those.
const passkeyPageCSP = pageCSP + "; script-src 'self'; connect-src 'self'"

// passkeyRow is one passkey as the account page lists it.
type passkeyRow struct {
	ID, Name, Created, LastUsed string
	CloneWarning                bool
}

// passkeyScriptURL is the URL of passkeys.js with a hash of its content,
// like the stylesheet's, so a changed script is a new URL.
func passkeyScriptURL() (string, error) {
	js, err := staticFS.ReadFile("static/passkeys.js")
	if err != nil {
		return "", fmt.Errorf("read passkeys.js: %w", err)
	}
	sum := sha256.Sum256(js)
	return "/static/passkeys.js?v=" + hex.EncodeToString(sum[:6]), nil
}

// registerPasskeys adds the passkey endpoints and the account page.
func (p *Pages) registerPasskeys(mux *http.ServeMux) {
	mux.HandleFunc("POST /passkeys/register/begin", p.passkeyRegisterBegin)
	mux.HandleFunc("POST /passkeys/register/finish", p.passkeyRegisterFinish)
	mux.HandleFunc("POST /passkeys/login/begin", p.passkeyLoginBegin)
	mux.HandleFunc("POST /passkeys/login/finish", p.passkeyLoginFinish)
	mux.HandleFunc("GET "+passkeysPath, p.passkeysPage)
	mux.HandleFunc("POST "+passkeysPath+"/rename", p.passkeyRename)
	mux.HandleFunc("POST "+passkeysPath+"/delete", p.passkeyDelete)
}

// withPasskeyScript lets the sign-in page offer passkeys when they are on.
func (p *Pages) withPasskeyScript(page string, v view) view {
	if page == pageLogin && p.passkeys != nil {
		v.PasskeyJS = p.passkeyJS
	}
	return v
}

// cspFor is the page's policy: scripts only where passkeys.js runs.
func cspFor(v view) string {
	if v.PasskeyJS != "" {
		return passkeyPageCSP
	}
	if v.QR != nil {
		return qrPageCSP
	}
	return pageCSP
}

// jsonError is the body of a refused ceremony request, shaped like OAuth
// errors; the description is in the person's language, for the page.
type jsonError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (p *Pages) jsonFail(w http.ResponseWriter, r *http.Request, status int, code, msgKey string) {
	lang := p.chooseLang(w, r, "/")
	writeJSON(w, status, jsonError{Error: code, Description: msg(lang, msgKey)})
}

// readPasskeyJSON checks that a ceremony request came from our own page —
// JSON (which a cross-site form cannot send), our Origin, and the CSRF
// token in a header equal to the cookie's — and decodes its body into v.
// On failure it has answered and returns false.
func (p *Pages) readPasskeyJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	c, err := r.Cookie(csrfCookie)
	if mt != "application/json" || !p.sameOrigin(r) || err != nil || len(c.Value) != csrfTokenLen ||
		subtle.ConstantTimeCompare([]byte(r.Header.Get(csrfHeader)), []byte(c.Value)) != 1 {
		p.jsonFail(w, r, http.StatusForbidden, "invalid_request", "csrf.reload")
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPasskeyBody))
	if err == nil && len(body) > 0 {
		err = json.Unmarshal(body, v)
	}
	if err != nil {
		p.jsonFail(w, r, http.StatusBadRequest, "invalid_request", "passkeys.bad_request")
		return false
	}
	return true
}

// setPasskeyCookie hands the browser the name of its ceremony state.
func (p *Pages) setPasskeyCookie(w http.ResponseWriter, name string, ch *users.PasskeyChallenge) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: ch.Token, Path: passkeyCookiePath, Expires: ch.ExpiresAt,
		MaxAge:   max(int(time.Until(ch.ExpiresAt).Seconds()), 1),
		HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteStrictMode,
	})
}

func (p *Pages) clearPasskeyCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: "", Path: passkeyCookiePath, MaxAge: -1,
		HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteStrictMode,
	})
}

func passkeyToken(r *http.Request, name string) string {
	if c, err := r.Cookie(name); err == nil {
		return c.Value
	}
	return ""
}

func requestMeta(r *http.Request, returnTo string) users.RequestMeta {
	return users.RequestMeta{IP: server.ClientIP(r), UserAgent: r.UserAgent(), ClientID: returnQuery(returnTo).Get("client_id")}
}

// freshSession is the browser's session if it signed in recently enough
// to add a passkey; otherwise it has answered 401 and returns nil.
func (p *Pages) freshSession(w http.ResponseWriter, r *http.Request) *users.Session {
	s, err := p.CurrentSession(r)
	if err != nil {
		p.jsonFail(w, r, http.StatusUnauthorized, "login_required", "passkeys.login_required")
		return nil
	}
	if time.Since(s.AuthTime) > passkeyReauthAfter {
		p.jsonFail(w, r, http.StatusUnauthorized, "login_required", "passkeys.reauth")
		return nil
	}
	return s
}

func (p *Pages) passkeyRegisterBegin(w http.ResponseWriter, r *http.Request) {
	var in struct{}
	if !p.readPasskeyJSON(w, r, &in) {
		return
	}
	s := p.freshSession(w, r)
	if s == nil {
		return
	}
	ch, err := p.passkeys.BeginRegistration(r.Context(), s.UserID)
	if err != nil {
		p.passkeyFailed(w, r, "begin passkey registration", err)
		return
	}
	p.setPasskeyCookie(w, passkeyRegisterCookie, ch)
	writeJSON(w, http.StatusOK, ch.Options)
}

func (p *Pages) passkeyRegisterFinish(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name       string          `json:"name"`
		Credential json.RawMessage `json:"credential"`
	}
	if !p.readPasskeyJSON(w, r, &in) {
		return
	}
	s := p.freshSession(w, r)
	if s == nil {
		return
	}
	p.clearPasskeyCookie(w, passkeyRegisterCookie)
	lang := p.chooseLang(w, r, "/")
	if in.Name == "" {
		in.Name = msg(lang, "passkeys.default_name") + " " + time.Now().In(chinaTime).Format("2006-01-02")
	}
	pk, err := p.passkeys.FinishRegistration(r.Context(), s.UserID, passkeyToken(r, passkeyRegisterCookie), in.Credential, in.Name, requestMeta(r, "/"))
	if err != nil {
		p.passkeyFailed(w, r, "finish passkey registration", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": pk.ID, "name": pk.Name, "redirect": passkeysPath})
}

func (p *Pages) passkeyLoginBegin(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Conditional bool `json:"conditional"`
	}
	if !p.readPasskeyJSON(w, r, &in) {
		return
	}
	ch, err := p.passkeys.BeginLogin(r.Context(), in.Conditional)
	if err != nil {
		p.passkeyFailed(w, r, "begin passkey sign-in", err)
		return
	}
	p.setPasskeyCookie(w, passkeyLoginCookie, ch)
	writeJSON(w, http.StatusOK, ch.Options)
}

// passkeyLoginFinish signs the person in like a password would: a new
// session replaces any old one (no session fixation) and a new CSRF token
// replaces the old one. The page then goes to the returned address.
func (p *Pages) passkeyLoginFinish(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Credential json.RawMessage `json:"credential"`
		ReturnTo   string          `json:"return_to"`
	}
	if !p.readPasskeyJSON(w, r, &in) {
		return
	}
	returnTo := safeReturnTo(in.ReturnTo)
	p.clearPasskeyCookie(w, passkeyLoginCookie)
	meta := requestMeta(r, returnTo)
	signIn, err := p.passkeys.FinishLogin(r.Context(), passkeyToken(r, passkeyLoginCookie), in.Credential, meta)
	if err != nil {
		p.passkeyFailed(w, r, "passkey sign-in", err)
		return
	}
	if err := p.replaceSession(w, r, signIn.User.ID, signIn.AMR, signIn.ACR, meta); err != nil {
		p.passkeyFailed(w, r, "create session", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"redirect": returnTo})
}

// passkeyFailed answers a refused or failed ceremony. Every kind of
// verification failure gets one answer, so a forger learns nothing.
func (p *Pages) passkeyFailed(w http.ResponseWriter, r *http.Request, what string, err error) {
	var locked *users.LockedError
	switch {
	case errors.As(err, &locked) || errors.Is(err, users.ErrLocked):
		if locked != nil {
			if wait := time.Until(locked.Until); wait > 0 {
				w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds())+1))
			}
		}
		p.jsonFail(w, r, http.StatusTooManyRequests, "temporarily_unavailable", "login.locked")
	case errors.Is(err, users.ErrPasskeyCeremony):
		p.jsonFail(w, r, http.StatusBadRequest, "invalid_request", "passkeys.expired")
	case errors.Is(err, users.ErrPasskeyRejected):
		p.jsonFail(w, r, http.StatusUnauthorized, "access_denied", "passkeys.rejected")
	case errors.Is(err, users.ErrAccountDisabled):
		p.jsonFail(w, r, http.StatusForbidden, "access_denied", "login.disabled")
	case errors.Is(err, users.ErrTooManyPasskeys):
		p.jsonFail(w, r, http.StatusBadRequest, "invalid_request", "passkeys.too_many")
	case errors.Is(err, users.ErrPasskeyNameValid):
		p.jsonFail(w, r, http.StatusBadRequest, "invalid_request", "passkeys.bad_name")
	default:
		p.log.Error("ui: "+what, "err", err)
		p.jsonFail(w, r, http.StatusInternalServerError, "server_error", "error.internal")
	}
}

// passkeysPage lists the account's passkeys with forms to rename and
// delete them, and a button (passkeys.js) to add one.
func (p *Pages) passkeysPage(w http.ResponseWriter, r *http.Request) {
	lang := p.chooseLang(w, r, "/")
	s, err := p.CurrentSession(r)
	if err != nil {
		seeOther(w, loginURL(passkeysPath))
		return
	}
	msgKey := ""
	if r.URL.Query().Get("welcome") == "1" {
		msgKey = "passkeys.welcome" // just registered without a password
	}
	p.renderPasskeys(w, r, http.StatusOK, lang, s, msgKey)
}

func (p *Pages) renderPasskeys(w http.ResponseWriter, r *http.Request, status int, lang string, s *users.Session, msgKey string) {
	list, err := p.passkeys.List(r.Context(), s.UserID)
	if err != nil {
		p.failInternal(w, r, lang, "list passkeys", err)
		return
	}
	v := p.newView(passkeysPath, lang, passkeysPath)
	v.CSRF = p.csrfToken(w, r)
	v.PasskeyJS = p.passkeyJS
	v.PasskeysFresh = time.Since(s.AuthTime) <= passkeyReauthAfter
	v.ReauthURL = loginURL(passkeysPath)
	if msgKey != "" {
		v.Message = msg(lang, msgKey)
	}
	never := msg(lang, "passkeys.never_used")
	for _, pk := range list {
		row := passkeyRow{ID: pk.ID, Name: pk.Name, Created: pk.CreatedAt.In(chinaTime).Format("2006-01-02 15:04"), LastUsed: never, CloneWarning: pk.CloneWarning}
		if !pk.LastUsedAt.IsZero() {
			row.LastUsed = pk.LastUsedAt.In(chinaTime).Format("2006-01-02 15:04")
		}
		v.Passkeys = append(v.Passkeys, row)
	}
	p.render(w, status, pagePasskeys, v)
}

func (p *Pages) passkeyRename(w http.ResponseWriter, r *http.Request) {
	p.passkeyChange(w, r, func(s *users.Session, m users.RequestMeta) error {
		return p.passkeys.Rename(r.Context(), s.UserID, r.PostForm.Get("id"), r.PostForm.Get("name"), m)
	})
}

func (p *Pages) passkeyDelete(w http.ResponseWriter, r *http.Request) {
	p.passkeyChange(w, r, func(s *users.Session, m users.RequestMeta) error {
		return p.passkeys.Delete(r.Context(), s.UserID, r.PostForm.Get("id"), m)
	})
}

// passkeyChange runs a posted change of the account page and goes back to it.
func (p *Pages) passkeyChange(w http.ResponseWriter, r *http.Request, change func(*users.Session, users.RequestMeta) error) {
	form, ok := p.readForm(w, r)
	if !ok {
		return
	}
	s, err := p.CurrentSession(r)
	if err != nil {
		seeOther(w, loginURL(passkeysPath))
		return
	}
	switch err := change(s, requestMeta(r, "/")); {
	case err == nil:
		seeOther(w, passkeysPath)
	case errors.Is(err, users.ErrPasskeyNameValid):
		p.renderPasskeys(w, r, http.StatusBadRequest, form.lang, s, "passkeys.bad_name")
	case errors.Is(err, db.ErrNotFound):
		p.renderPasskeys(w, r, http.StatusNotFound, form.lang, s, "passkeys.not_found")
	default:
		p.failInternal(w, r, form.lang, "change passkey", err)
	}
}
