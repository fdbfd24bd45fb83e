package ui

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/govsso/sso/server"
	"github.com/govsso/sso/users"
)

// DeviceRequest is a pending device sign-in (RFC 8628) as the /device page
// shows it.
type DeviceRequest struct {
	UserCode   string   // as people read it: XXXX-XXXX
	ClientName string   // the application on the kiosk
	Scopes     []string // scope names; the page says them in words
}

// ErrUnknownUserCode is what DeviceAuthorizations return for a user code
// that names no pending sign-in: mistyped, expired or already decided.
var ErrUnknownUserCode = errors.New("ui: unknown, expired or used user code")

// DeviceAuthorizations finds and decides the device sign-ins people
// confirm on the /device page.
type DeviceAuthorizations interface {
	// PendingDevice returns the pending sign-in a typed user code names, or
	// an error wrapping ErrUnknownUserCode.
	PendingDevice(ctx context.Context, userCode string) (DeviceRequest, error)
	// DecideDevice approves or denies it for the person signed in with s,
	// or returns an error wrapping ErrUnknownUserCode.
	DecideDevice(ctx context.Context, userCode string, approve bool, s *users.Session, ip, userAgent string) error
}

// FailureCounter counts wrong user codes per client address;
// *users.Lockout satisfies it.
type FailureCounter interface {
	// Check returns when key's lock ends, or the zero time.
	Check(ctx context.Context, key string) (time.Time, error)
	// Fail counts a failure and returns when key's lock ends, or the zero time.
	Fail(ctx context.Context, key string) (time.Time, error)
}

// deviceLockoutPrefix keys the wrong-code counters by client address. User
// codes are short enough to guess with enough tries; the counter makes an
// address that keeps guessing wait.
const deviceLockoutPrefix = "device:"

// maxUserCodeInput bounds what the page reads and shows back of a typed code.
const maxUserCodeInput = 32

const pageDevice = "device.html"

// DevicePages serves /device, where a signed-in person enters the code a
// kiosk shows and approves or denies its sign-in.
type DevicePages struct {
	p        *Pages
	devices  DeviceAuthorizations
	failures FailureCounter
	tmpl     *template.Template
}

// NewDevicePages returns the device page, which uses p's sessions, CSRF
// protection, languages and error pages.
func NewDevicePages(p *Pages, devices DeviceAuthorizations, failures FailureCounter) (*DevicePages, error) {
	if p == nil || devices == nil || failures == nil {
		return nil, errors.New("ui: NewDevicePages needs the pages, device authorizations and a failure counter")
	}
	layout, err := template.ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("ui: parse layout: %w", err)
	}
	tmpl, err := layout.ParseFS(templateFS, "templates/"+pageDevice)
	if err != nil {
		return nil, fmt.Errorf("ui: parse %s: %w", pageDevice, err)
	}
	return &DevicePages{p: p, devices: devices, failures: failures, tmpl: tmpl}, nil
}

// Register adds the device page to mux.
func (d *DevicePages) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /device", d.form)
	mux.HandleFunc("POST /device", d.decide)
}

// The steps of the device page.
const (
	stepEnter    = "enter"    // type the code
	stepConfirm  = "confirm"  // see who asks for what; approve or deny
	stepApproved = "approved" // done: go back to the device
	stepDenied   = "denied"   // done: the device gets nothing
)

// deviceView is the device page: the common view plus its own fields.
type deviceView struct {
	view
	Step     string
	UserCode string // what was typed, or the code being confirmed
}

// form shows the code entry form or, with ?user_code= (the link or QR code
// of verification_uri_complete), what that code asks for.
func (d *DevicePages) form(w http.ResponseWriter, r *http.Request) {
	typed := r.URL.Query().Get("user_code")
	lang := d.p.chooseLang(w, r, "/")
	if _, ok := d.requireSession(w, r, typed); !ok {
		return
	}
	v := d.newView(w, r, lang, typed)
	if typed == "" {
		d.render(w, http.StatusOK, v)
		return
	}
	if !d.notLocked(w, r, v) {
		return
	}
	req, err := d.devices.PendingDevice(r.Context(), typed)
	if err != nil {
		d.lookupFailed(w, r, v, err)
		return
	}
	v.Step, v.UserCode, v.ClientName = stepConfirm, req.UserCode, req.ClientName
	v.Scopes = scopeWords(lang, req.Scopes)
	d.render(w, http.StatusOK, v)
}

// decide records the person's answer.
func (d *DevicePages) decide(w http.ResponseWriter, r *http.Request) {
	form, ok := d.p.readForm(w, r)
	if !ok {
		return
	}
	typed := r.PostForm.Get("user_code")
	s, ok := d.requireSession(w, r, typed)
	if !ok {
		return
	}
	v := d.newView(w, r, form.lang, typed)
	if !d.notLocked(w, r, v) {
		return
	}
	approve := r.PostForm.Get("decision") == "approve"
	if err := d.devices.DecideDevice(r.Context(), typed, approve, s, server.ClientIP(r), r.UserAgent()); err != nil {
		d.lookupFailed(w, r, v, err)
		return
	}
	v.Step, v.UserCode = stepDenied, ""
	if approve {
		v.Step = stepApproved
	}
	d.render(w, http.StatusOK, v)
}

// requireSession returns the browser's session, or sends the browser to
// sign in first and come back to this code.
func (d *DevicePages) requireSession(w http.ResponseWriter, r *http.Request, typed string) (*users.Session, bool) {
	s, err := d.p.CurrentSession(r)
	if err != nil {
		seeOther(w, loginURL(devicePath(typed, nil)))
		return nil, false
	}
	return s, true
}

// devicePath is the device page for a typed code, with extra parameters.
func devicePath(typed string, extra url.Values) string {
	q := url.Values{}
	for k, v := range extra {
		q[k] = v
	}
	if typed != "" {
		q.Set("user_code", typed)
	}
	if len(q) == 0 {
		return "/device"
	}
	return "/device?" + q.Encode()
}

// newView starts the page at the entry step, showing back a typed code
// only if it is short, readable text.
func (d *DevicePages) newView(w http.ResponseWriter, r *http.Request, lang, typed string) deviceView {
	if len(typed) > maxUserCodeInput || !utf8.ValidString(typed) {
		typed = ""
	}
	v := deviceView{view: d.p.newView("/device", lang, "/"), Step: stepEnter, UserCode: typed}
	v.CSRF = d.p.csrfToken(w, r)
	v.SwitchURL = devicePath(typed, url.Values{"lang": {otherLang(lang)}})
	return v
}

// notLocked renders the entry step with a lock message, and returns false,
// when the address has entered too many wrong codes.
func (d *DevicePages) notLocked(w http.ResponseWriter, r *http.Request, v deviceView) bool {
	until, err := d.failures.Check(r.Context(), deviceLockoutPrefix+server.ClientIP(r))
	if err != nil {
		d.p.failInternal(w, r, v.Lang, "device lockout check", err)
		return false
	}
	if until.IsZero() {
		return true
	}
	d.renderLocked(w, v, until)
	return false
}

// lookupFailed counts a wrong or expired code against the address and asks
// for the code again.
func (d *DevicePages) lookupFailed(w http.ResponseWriter, r *http.Request, v deviceView, err error) {
	if !errors.Is(err, ErrUnknownUserCode) {
		d.p.failInternal(w, r, v.Lang, "device authorization", err)
		return
	}
	until, err := d.failures.Fail(r.Context(), deviceLockoutPrefix+server.ClientIP(r))
	if err != nil {
		d.p.failInternal(w, r, v.Lang, "device lockout count", err)
		return
	}
	if !until.IsZero() {
		d.renderLocked(w, v, until)
		return
	}
	v.Step, v.Message = stepEnter, msg(v.Lang, "device.invalid")
	d.render(w, http.StatusBadRequest, v)
}

// renderLocked says how long the address must wait.
func (d *DevicePages) renderLocked(w http.ResponseWriter, v deviceView, until time.Time) {
	v.Step, v.Message = stepEnter, v.T("device.locked_until", unlockTime(until, time.Now()))
	if wait := time.Until(until); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
	}
	d.render(w, http.StatusTooManyRequests, v)
}

// render writes the device page with the headers of every page (see
// Pages.render): it loads no script, so the base policy applies.
func (d *DevicePages) render(w http.ResponseWriter, status int, v deviceView) {
	var buf bytes.Buffer
	if err := d.tmpl.ExecuteTemplate(&buf, "layout", v); err != nil {
		d.p.log.Error("ui: render page", "page", pageDevice, "err", err)
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
