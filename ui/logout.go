package ui

import (
	"errors"
	"net/http"

	"github.com/govsso/sso/users"
)

// logoutForm asks before signing out, so that a link or an image on
// another site cannot sign a person out.
func (p *Pages) logoutForm(w http.ResponseWriter, r *http.Request) {
	returnTo := safeReturnTo(r.URL.Query().Get("return_to"))
	lang := p.chooseLang(w, r, returnTo)
	v := p.newView("/logout", lang, returnTo)
	v.CSRF = p.csrfToken(w, r)
	p.render(w, http.StatusOK, pageLogout, v)
}

// logout ends the browser's session and forgets its cookie. A browser
// without a live session is simply told it is signed out.
func (p *Pages) logout(w http.ResponseWriter, r *http.Request) {
	form, ok := p.readForm(w, r)
	if !ok {
		return
	}
	s, err := p.CurrentSession(r)
	switch {
	case err == nil:
		if err := p.endSession(r, s); err != nil {
			// Keep the cookie: the session still lives, and the person
			// must be able to try again rather than believe they left.
			p.log.Error("ui: revoke session", "err", err)
			p.fail(w, r, http.StatusInternalServerError, form.lang, "error.title", "logout.failed")
			return
		}
	case !errors.Is(err, ErrNoSession):
		p.log.Debug("ui: sign out without a live session", "err", err)
	}
	p.clearSessionCookie(w)
	v := p.newView("/logout", form.lang, form.returnTo)
	if form.returnTo != "/" {
		v.ContinueURL = form.returnTo
	}
	p.render(w, http.StatusOK, pageSignedOut, v)
}

// endSession ends s through the configured SessionEnder, which also tells
// the department systems that shared the session, or else just revokes it.
func (p *Pages) endSession(r *http.Request, s *users.Session) error {
	if p.ender != nil {
		_, err := p.ender.EndSession(r.Context(), r, s)
		return err
	}
	return p.sessions.Revoke(r.Context(), s.ID)
}
