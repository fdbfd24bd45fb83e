package ui

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"slices"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/server"
	"github.com/govsso/sso/users"
)

// SecondFactor is two-step verification with an authenticator app.
// *users.TOTP satisfies it.
type SecondFactor interface {
	// HasTOTP reports whether sign-in must ask the account for a code.
	HasTOTP(ctx context.Context, userID string) (bool, error)
	// Verify checks a TOTP code or a recovery code. Errors: users.ErrInvalidCode,
	// users.ErrLocked (maybe a *users.LockedError), users.ErrTOTPNotEnabled.
	Verify(ctx context.Context, userID, code string, m users.RequestMeta) (users.SecondFactor, error)
	// Status says whether it is on and how many recovery codes are left.
	Status(ctx context.Context, userID string) (users.TOTPStatus, error)
	// BeginEnrolment offers a secret (users.ErrTOTPEnabled if already on).
	BeginEnrolment(ctx context.Context, userID string, m users.RequestMeta) (*users.TOTPEnrolment, error)
	// ConfirmEnrolment turns it on with a first code and returns the recovery codes. Errors:
	// users.ErrInvalidCode, users.ErrNoTOTPEnrolment, users.ErrTOTPEnabled.
	ConfirmEnrolment(ctx context.Context, userID, code string, m users.RequestMeta) ([]string, error)
	// Disable turns it off; errors as Verify.
	Disable(ctx context.Context, userID, code string, m users.RequestMeta) error
	// RegenerateRecoveryCodes replaces the recovery codes; errors as Verify.
	RegenerateRecoveryCodes(ctx context.Context, userID, code string, m users.RequestMeta) ([]string, error)
}

// MFAChallenges keeps sign-ins that wait for their second factor.
// *users.MFAChallenges satisfies it.
type MFAChallenges interface {
	// Start stores c and returns the token for the cookie.
	Start(ctx context.Context, c *users.MFAChallenge) (string, error)
	// Lookup returns the live challenge of a token (db.ErrNotFound if none).
	Lookup(ctx context.Context, token string) (*users.MFAChallenge, error)
	// Fail counts a wrong code and returns the count.
	Fail(ctx context.Context, id string) (int, error)
	// Delete ends a challenge (db.ErrNotFound if already ended).
	Delete(ctx context.Context, id string) error
}

// The second-factor step of sign-in.
const (
	mfaCookie = "sso_mfa"
	mfaPath   = "/login/mfa"
	pageMFA   = "mfa.html"
	// maxCode bounds a typed code; real ones are 6 or 11 characters.
	maxCode = 64
)

// mfaView is what the second-factor and account security pages show
// besides the common view.
type mfaView struct {
	// security page
	Enabled   bool
	EnabledAt string // a date
	CodesLeft string // recovery codes left, as a number
	// set-up page
	QRCode template.URL // data: URL of a PNG, built by us from the otpauth URI
	Secret string       // in groups of four, for typing in by hand
	// shown once, after set-up or regeneration
	RecoveryCodes []string
	// set-up needs a recent sign-in; this signs in again
	ReauthURL string
}

// startSecondFactor is the hook of the sign-in form: after a correct
// password it reports whether the account needs a second factor and, if
// so, has parked the sign-in and sent the browser to the code page. No
// session exists until the code is right.
func (p *Pages) startSecondFactor(w http.ResponseWriter, r *http.Request, u *users.User, amr []string, returnTo, lang string) bool {
	if p.totp == nil {
		return false
	}
	on, err := p.totp.HasTOTP(r.Context(), u.ID)
	if err != nil {
		p.failInternal(w, r, lang, "second factor status", err)
		return true
	}
	if !on {
		return false
	}
	acr := u.AssuranceLevel
	if !slices.Contains(amr, "pwd") {
		acr = min(acr, smsLoginMaxACR) // a code by SMS opened it
	}
	ch := &users.MFAChallenge{UserID: u.ID, ReturnTo: returnTo, AMR: amr, ACR: acr}
	token, err := p.mfa.Start(r.Context(), ch)
	if err != nil {
		p.failInternal(w, r, lang, "start second factor", err)
		return true
	}
	p.setMFACookie(w, token, int(users.DefaultMFAChallengeTTL.Seconds()))
	seeOther(w, mfaPath)
	return true
}

// setMFACookie hands the browser the token of its pending sign-in; only
// the code page receives it. maxAge < 0 deletes it.
func (p *Pages) setMFACookie(w http.ResponseWriter, token string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: mfaCookie, Value: token, Path: mfaPath, MaxAge: maxAge,
		HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteLaxMode,
	})
}

// pendingSignIn returns the browser's pending sign-in, or nil when it has
// none (or it expired).
func (p *Pages) pendingSignIn(r *http.Request) (*users.MFAChallenge, error) {
	c, err := r.Cookie(mfaCookie)
	if err != nil || c.Value == "" {
		return nil, nil
	}
	ch, err := p.mfa.Lookup(r.Context(), c.Value)
	if errors.Is(err, db.ErrNotFound) {
		return nil, nil
	}
	return ch, err
}

// mfaForm asks for the code of the pending sign-in.
func (p *Pages) mfaForm(w http.ResponseWriter, r *http.Request) {
	ch, err := p.pendingSignIn(r)
	if err != nil {
		p.failInternal(w, r, p.chooseLang(w, r, "/"), "second factor challenge", err)
		return
	}
	if ch == nil {
		seeOther(w, "/login")
		return
	}
	lang := p.chooseLang(w, r, ch.ReturnTo)
	p.renderMFA(w, r, http.StatusOK, lang, ch, "")
}

// renderMFA shows the code form with an optional message key, and the
// passkey button when the account has passkeys.
func (p *Pages) renderMFA(w http.ResponseWriter, r *http.Request, status int, lang string, ch *users.MFAChallenge, msgKey string) {
	v := p.newView(mfaPath, lang, ch.ReturnTo)
	v.CSRF = p.csrfToken(w, r)
	if msgKey != "" {
		v.Message = msg(lang, msgKey)
	}
	if p.passkeys != nil {
		list, err := p.passkeys.List(r.Context(), ch.UserID)
		if err != nil {
			p.failInternal(w, r, lang, "list passkeys", err)
			return
		}
		if len(list) > 0 {
			v.PasskeyJS = p.passkeyJS
		}
	}
	p.render(w, status, pageMFA, v)
}

// mfaSubmit checks the posted code. A right code starts the session; a wrong
// one is counted, and the fifth ends the pending sign-in (the account is
// then locked by the lockout, like after wrong passwords).
func (p *Pages) mfaSubmit(w http.ResponseWriter, r *http.Request) {
	form, ok := p.readForm(w, r)
	if !ok {
		return
	}
	ch, err := p.pendingSignIn(r)
	if err != nil {
		p.failInternal(w, r, form.lang, "second factor challenge", err)
		return
	}
	if ch == nil {
		p.mfaExpired(w, r, form.lang, form.returnTo)
		return
	}
	lang := p.chooseLang(w, r, ch.ReturnTo)
	code, ok := typedCode(r)
	if !ok {
		p.renderMFA(w, r, http.StatusBadRequest, lang, ch, "mfa.missing")
		return
	}
	meta := users.RequestMeta{IP: server.ClientIP(r), UserAgent: r.UserAgent(), ClientID: returnQuery(ch.ReturnTo).Get("client_id")}
	_, err = p.totp.Verify(r.Context(), ch.UserID, code, meta)
	switch {
	case err == nil:
		p.finishSecondFactor(w, r, ch, meta, lang)
	case errors.Is(err, users.ErrInvalidCode):
		p.wrongCode(w, r, ch, lang)
	case errors.Is(err, users.ErrLocked):
		p.endPendingSignIn(w, r, ch)
		p.loginFailed(w, r, p.loginView(w, r, lang, ch.ReturnTo), err)
	case errors.Is(err, users.ErrTOTPNotEnabled):
		// Turned off meanwhile: the password alone now decides; ask for it again.
		p.endPendingSignIn(w, r, ch)
		p.mfaExpired(w, r, lang, ch.ReturnTo)
	default:
		p.failInternal(w, r, lang, "verify second factor", err)
	}
}

// wrongCode counts a wrong code against the pending sign-in and asks
// again, or ends it after the last allowed attempt.
func (p *Pages) wrongCode(w http.ResponseWriter, r *http.Request, ch *users.MFAChallenge, lang string) {
	n, err := p.mfa.Fail(r.Context(), ch.ID)
	if errors.Is(err, db.ErrNotFound) {
		p.mfaExpired(w, r, lang, ch.ReturnTo)
		return
	}
	if err != nil {
		p.failInternal(w, r, lang, "count second factor attempt", err)
		return
	}
	if n >= users.MaxMFAAttempts {
		p.endPendingSignIn(w, r, ch)
		p.loginFailed(w, r, p.loginView(w, r, lang, ch.ReturnTo), users.ErrLocked)
		return
	}
	p.renderMFA(w, r, http.StatusUnauthorized, lang, ch, "mfa.invalid")
}

// finishSecondFactor ends the pending sign-in and starts the session, like
// a password sign-in does: any session the browser had is replaced (no
// session fixation) and the CSRF token renewed.
func (p *Pages) finishSecondFactor(w http.ResponseWriter, r *http.Request, ch *users.MFAChallenge, meta users.RequestMeta, lang string) {
	if err := p.mfa.Delete(r.Context(), ch.ID); err != nil {
		if errors.Is(err, db.ErrNotFound) { // another request finished it first
			p.mfaExpired(w, r, lang, ch.ReturnTo)
			return
		}
		p.failInternal(w, r, lang, "end second factor challenge", err)
		return
	}
	if err := p.startSessionAfterSecondFactor(w, r, ch, withSecondFactor(ch.AMR), ch.ACR, meta); err != nil {
		p.failInternal(w, r, lang, "create session", err)
		return
	}
	seeOther(w, ch.ReturnTo)
}

// startSessionAfterSecondFactor starts the session of the pending sign-in
// and forgets its cookie; the pending sign-in must already be deleted.
func (p *Pages) startSessionAfterSecondFactor(w http.ResponseWriter, r *http.Request, ch *users.MFAChallenge, amr []string, acr int, meta users.RequestMeta) error {
	p.setMFACookie(w, "", -1)
	return p.replaceSession(w, r, ch.UserID, amr, acr, meta)
}

// withSecondFactor is amr after a one-time code (RFC 8176): "otp", and
// "mfa" since the password came first. A recovery code is a one-time
// code too; the audit log tells them apart.
func withSecondFactor(amr []string) []string {
	out := slices.Clone(amr)
	for _, m := range []string{"otp", "mfa"} {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// endPendingSignIn forgets the pending sign-in on both sides.
func (p *Pages) endPendingSignIn(w http.ResponseWriter, r *http.Request, ch *users.MFAChallenge) {
	if err := p.mfa.Delete(r.Context(), ch.ID); err != nil && !errors.Is(err, db.ErrNotFound) {
		p.log.Warn("ui: end second factor challenge", "err", err)
	}
	p.setMFACookie(w, "", -1)
}

// mfaExpired sends the person back to the password form, saying why.
func (p *Pages) mfaExpired(w http.ResponseWriter, r *http.Request, lang, returnTo string) {
	p.setMFACookie(w, "", -1)
	v := p.loginView(w, r, lang, returnTo)
	v.Message = msg(lang, "mfa.expired")
	p.render(w, http.StatusBadRequest, pageLogin, v)
}
