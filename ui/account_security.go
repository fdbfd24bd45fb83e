package ui

import (
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/skip2/go-qrcode"

	"github.com/govsso/sso/server"
	"github.com/govsso/sso/users"
)

// The account security pages: two-step verification on and off, and
// recovery codes.
const (
	securityPath      = "/account/security"
	totpPath          = "/account/totp"
	totpDisablePath   = "/account/totp/disable"
	recoveryCodesPath = "/account/recovery-codes"
	pageSecurity      = "account_security.html"
	pageTOTPEnrol     = "totp_enrol.html"
	// totpReauthAfter is how old a sign-in may be for its session to set
	// up two-step verification: otherwise someone with a stolen session
	// cookie could tie the account to their own phone and lock its owner out.
	totpReauthAfter = 15 * time.Minute
	// qrSize is the QR code's width and height in pixels.
	qrSize = 256
)

// registerSecondFactor adds the second step of sign-in and the account
// security pages.
func (p *Pages) registerSecondFactor(mux *http.ServeMux) {
	mux.HandleFunc("GET "+mfaPath, p.mfaForm)
	mux.HandleFunc("POST "+mfaPath, p.mfaSubmit)
	mux.HandleFunc("GET "+securityPath, p.securityPage)
	mux.HandleFunc("GET "+totpPath, p.totpEnrolPage)
	mux.HandleFunc("POST "+totpPath, p.totpConfirm)
	mux.HandleFunc("POST "+totpDisablePath, p.totpDisable)
	mux.HandleFunc("POST "+recoveryCodesPath, p.recoveryCodes)
	if p.passkeys != nil {
		p.registerPasskeySecondFactor(mux)
	}
}

// accountSession returns the browser's session, or sends it to sign in
// first and come back to path.
func (p *Pages) accountSession(w http.ResponseWriter, r *http.Request, path string) (*users.Session, bool) {
	s, err := p.CurrentSession(r)
	if err != nil {
		seeOther(w, loginURL(path))
		return nil, false
	}
	return s, true
}

// accountMeta is where an account change came from, for the audit log.
func accountMeta(r *http.Request) users.RequestMeta {
	return users.RequestMeta{IP: server.ClientIP(r), UserAgent: r.UserAgent()}
}

// securityPage shows whether two-step verification is on, with the forms
// to set it up, turn it off or get new recovery codes.
func (p *Pages) securityPage(w http.ResponseWriter, r *http.Request) {
	s, ok := p.accountSession(w, r, securityPath)
	if !ok {
		return
	}
	p.renderSecurity(w, r, http.StatusOK, p.chooseLang(w, r, "/"), s, "")
}

// renderSecurity shows the security page with an optional message.
func (p *Pages) renderSecurity(w http.ResponseWriter, r *http.Request, status int, lang string, s *users.Session, message string) {
	st, err := p.totp.Status(r.Context(), s.UserID)
	if err != nil {
		p.failInternal(w, r, lang, "second factor status", err)
		return
	}
	v := p.newView(securityPath, lang, "/")
	v.CSRF = p.csrfToken(w, r)
	v.Message = message
	v.MFA = &mfaView{Enabled: st.Enabled, CodesLeft: strconv.Itoa(st.RecoveryCodesLeft)}
	if st.Enabled {
		v.MFA.EnabledAt = st.EnabledAt.In(chinaTime).Format("2006-01-02")
	}
	p.render(w, status, pageSecurity, v)
}

// totpEnrolPage shows the QR code and the secret of a new enrolment.
func (p *Pages) totpEnrolPage(w http.ResponseWriter, r *http.Request) {
	s, ok := p.accountSession(w, r, totpPath)
	if !ok {
		return
	}
	p.renderEnrolment(w, r, http.StatusOK, p.chooseLang(w, r, "/"), s, "")
}

// renderEnrolment offers the secret (the same one again while the offer
// lasts) or, if the sign-in is too old, asks to sign in again first.
func (p *Pages) renderEnrolment(w http.ResponseWriter, r *http.Request, status int, lang string, s *users.Session, msgKey string) {
	v := p.newView(totpPath, lang, "/")
	v.CSRF = p.csrfToken(w, r)
	v.MFA = &mfaView{}
	if msgKey != "" {
		v.Message = msg(lang, msgKey)
	}
	if time.Since(s.AuthTime) > totpReauthAfter {
		v.MFA.ReauthURL = loginURL(totpPath)
		p.render(w, http.StatusForbidden, pageTOTPEnrol, v)
		return
	}
	e, err := p.totp.BeginEnrolment(r.Context(), s.UserID, accountMeta(r))
	if errors.Is(err, users.ErrTOTPEnabled) {
		seeOther(w, securityPath)
		return
	}
	if err != nil {
		p.failInternal(w, r, lang, "begin totp enrolment", err)
		return
	}
	if v.MFA.QRCode, err = qrDataURL(e.URI); err != nil {
		p.failInternal(w, r, lang, "totp QR code", err)
		return
	}
	v.MFA.Secret = groupsOfFour(e.Secret)
	p.render(w, status, pageTOTPEnrol, v)
}

// totpConfirm turns two-step verification on with the first code from the
// app and shows the recovery codes, once.
func (p *Pages) totpConfirm(w http.ResponseWriter, r *http.Request) {
	form, ok := p.readForm(w, r)
	if !ok {
		return
	}
	s, ok := p.accountSession(w, r, totpPath)
	if !ok {
		return
	}
	if time.Since(s.AuthTime) > totpReauthAfter {
		p.renderEnrolment(w, r, http.StatusForbidden, form.lang, s, "")
		return
	}
	code, ok := typedCode(r)
	if !ok {
		p.renderEnrolment(w, r, http.StatusBadRequest, form.lang, s, "mfa.missing")
		return
	}
	codes, err := p.totp.ConfirmEnrolment(r.Context(), s.UserID, code, accountMeta(r))
	switch {
	case err == nil:
		p.renderRecoveryCodes(w, r, form.lang, codes, true)
	case errors.Is(err, users.ErrInvalidCode):
		p.renderEnrolment(w, r, http.StatusUnauthorized, form.lang, s, "totp.invalid")
	case errors.Is(err, users.ErrNoTOTPEnrolment):
		p.renderEnrolment(w, r, http.StatusConflict, form.lang, s, "totp.expired")
	case errors.Is(err, users.ErrTOTPEnabled):
		seeOther(w, securityPath)
	default:
		p.failInternal(w, r, form.lang, "confirm totp enrolment", err)
	}
}

// renderRecoveryCodes shows a fresh set of recovery codes. The page is
// not cached (render sends no-store) and the codes are never shown again.
func (p *Pages) renderRecoveryCodes(w http.ResponseWriter, r *http.Request, lang string, codes []string, justEnabled bool) {
	v := p.newView(securityPath, lang, "/")
	v.MFA = &mfaView{RecoveryCodes: codes, Enabled: justEnabled}
	p.render(w, http.StatusOK, pageTOTPEnrol, v)
}

// totpDisable turns two-step verification off, given a current code or a
// recovery code.
func (p *Pages) totpDisable(w http.ResponseWriter, r *http.Request) {
	p.securityChange(w, r, func(s *users.Session, code string) error {
		if err := p.totp.Disable(r.Context(), s.UserID, code, accountMeta(r)); err != nil {
			return err
		}
		seeOther(w, securityPath)
		return nil
	})
}

// recoveryCodes replaces the recovery codes, given a current code or a
// recovery code, and shows the new ones once.
func (p *Pages) recoveryCodes(w http.ResponseWriter, r *http.Request) {
	p.securityChange(w, r, func(s *users.Session, code string) error {
		codes, err := p.totp.RegenerateRecoveryCodes(r.Context(), s.UserID, code, accountMeta(r))
		if err != nil {
			return err
		}
		p.renderRecoveryCodes(w, r, p.chooseLang(w, r, "/"), codes, false)
		return nil
	})
}

// securityChange runs a posted change of the security page that needs a
// code; do answers the request when it succeeds. Refusals are shown on the
// security page.
func (p *Pages) securityChange(w http.ResponseWriter, r *http.Request, do func(s *users.Session, code string) error) {
	form, ok := p.readForm(w, r)
	if !ok {
		return
	}
	s, ok := p.accountSession(w, r, securityPath)
	if !ok {
		return
	}
	code, ok := typedCode(r)
	if !ok {
		p.renderSecurity(w, r, http.StatusBadRequest, form.lang, s, msg(form.lang, "mfa.missing"))
		return
	}
	var locked *users.LockedError
	switch err := do(s, code); {
	case err == nil:
	case errors.Is(err, users.ErrInvalidCode):
		p.renderSecurity(w, r, http.StatusUnauthorized, form.lang, s, msg(form.lang, "mfa.invalid"))
	case errors.As(err, &locked) && !locked.Until.IsZero():
		p.renderSecurity(w, r, http.StatusTooManyRequests, form.lang, s,
			fmt.Sprintf(msg(form.lang, "login.locked_until"), unlockTime(locked.Until, time.Now())))
	case errors.Is(err, users.ErrLocked):
		p.renderSecurity(w, r, http.StatusTooManyRequests, form.lang, s, msg(form.lang, "login.locked"))
	case errors.Is(err, users.ErrTOTPNotEnabled):
		seeOther(w, securityPath)
	default:
		p.failInternal(w, r, form.lang, "change second factor", err)
	}
}

// typedCode is the posted code, if it is plausible at all.
func typedCode(r *http.Request) (string, bool) {
	code := strings.TrimSpace(r.PostForm.Get("code"))
	return code, code != "" && len(code) <= maxCode && utf8.ValidString(code)
}

// qrDataURL is a PNG QR code of s as a data: URL, which the pages' CSP
// allows for images. template.URL is safe here: the URL is built by us
// from base64 only.
func qrDataURL(s string) (template.URL, error) {
	png, err := qrcode.Encode(s, qrcode.Medium, qrSize)
	if err != nil {
		return "", err
	}
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png)), nil
}

// groupsOfFour spaces a secret for reading aloud and typing: "ABCD EFGH …".
func groupsOfFour(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}
