package ui

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/govsso/sso/users"
)

// The identity-verification page: a person at level 1 confirms their name
// and resident ID number against the population register and reaches level
// 2 (实名认证). An authorization request that demands acr_values=2 of a
// level-1 session is sent here, and comes back once the level is reached.
const (
	verifyPath       = "/account/verify"
	pageVerify       = "verify_identity.html"
	maxVerifyNameLen = 64
)

// IdentityVerification raises an account's assurance level after the
// register confirms the name and ID number.
type IdentityVerification interface {
	VerifyIdentity(ctx context.Context, userID, name, idNumber string) (*users.User, error)
}

// SessionStepUp records a higher level on the browser's session and
// rotates its token.
type SessionStepUp interface {
	StepUp(ctx context.Context, token string, acr int, amr []string) (string, error)
}

// verifyForm is what the verification page shows.
type verifyForm struct {
	Name  string // what the person typed, kept on error
	Level int    // the account's level now
}

func (p *Pages) registerVerify(mux *http.ServeMux) {
	if p.verify == nil || p.stepUp == nil {
		return
	}
	mux.HandleFunc("GET "+verifyPath, p.verifyPage)
	mux.HandleFunc("POST "+verifyPath, p.verifySubmit)
}

func (p *Pages) verifyPage(w http.ResponseWriter, r *http.Request) {
	returnTo := safeReturnTo(r.URL.Query().Get("return_to"))
	lang := p.chooseLang(w, r, returnTo)
	s, ok := p.accountSession(w, r, verifyPath+"?return_to="+url.QueryEscape(returnTo))
	if !ok {
		return
	}
	v := p.newView(verifyPath, lang, returnTo)
	v.CSRF = p.csrfToken(w, r)
	v.Verify = verifyForm{Level: s.ACR}
	p.render(w, http.StatusOK, pageVerify, v)
}

func (p *Pages) verifySubmit(w http.ResponseWriter, r *http.Request) {
	form, ok := p.readForm(w, r)
	if !ok {
		return
	}
	s, ok := p.accountSession(w, r, verifyPath+"?return_to="+url.QueryEscape(form.returnTo))
	if !ok {
		return
	}
	name := strings.TrimSpace(r.PostForm.Get("name"))
	idNumber := strings.TrimSpace(r.PostForm.Get("id_number"))
	again := func(status int, key string) {
		v := p.newView(verifyPath, form.lang, form.returnTo)
		v.CSRF = p.csrfToken(w, r)
		v.Message = msg(form.lang, key)
		v.Verify = verifyForm{Name: name, Level: s.ACR}
		p.render(w, status, pageVerify, v)
	}
	if name == "" || !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxVerifyNameLen || len(idNumber) > 32 {
		again(http.StatusBadRequest, "verify.bad_input")
		return
	}
	if _, err := users.NormalizeIDNumber(idNumber); err != nil {
		again(http.StatusBadRequest, "verify.bad_id_number")
		return
	}
	u, err := p.verify.VerifyIdentity(r.Context(), s.UserID, name, idNumber)
	var ve *users.ValidationError
	switch {
	case errors.Is(err, users.ErrIdentityMismatch):
		again(http.StatusUnprocessableEntity, "verify.mismatch")
		return
	case errors.As(err, &ve):
		again(http.StatusBadRequest, "verify.bad_input")
		return
	case err != nil:
		p.log.Error("ui: identity verification", "err", err)
		again(http.StatusServiceUnavailable, "verify.unavailable")
		return
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		seeOther(w, loginURL(form.returnTo))
		return
	}
	token, err := p.stepUp.StepUp(r.Context(), c.Value, u.AssuranceLevel, nil)
	if err != nil {
		p.failInternal(w, r, form.lang, "step up session", err)
		return
	}
	p.setSessionCookie(w, token)
	seeOther(w, form.returnTo)
}
