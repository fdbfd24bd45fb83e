package ui

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/govsso/sso/users"
)

// The change-password page of the account centre.
const (
	passwordPath = "/account/password"
	pagePassword = "password.html"
	// passwordReauthAfter is how old a sign-in may be for an account
	// without a password to set its first one without giving anything.
	passwordReauthAfter = 15 * time.Minute
)

// PasswordChanger changes a signed-in person's password (users.Authenticator).
type PasswordChanger interface {
	// ChangePassword checks current (unless the account has no password)
	// and sets next. Errors: users.ErrInvalidCredentials, users.ErrLocked
	// (maybe a *users.LockedError), the password policy's errors.
	ChangePassword(ctx context.Context, userID, current, next string, m users.RequestMeta) error
}

// passwordForm is what the change-password page shows.
type passwordForm struct {
	HasPassword bool // ask for the current one
	Done        bool // changed: say so, and how many other sessions ended
	Ended       string
}

func (p *Pages) registerPassword(mux *http.ServeMux) {
	if p.passwords == nil || p.account == nil {
		return
	}
	mux.HandleFunc("GET "+passwordPath, p.passwordPage)
	mux.HandleFunc("POST "+passwordPath, p.passwordSubmit)
}

func (p *Pages) passwordPage(w http.ResponseWriter, r *http.Request) {
	s, ok := p.accountSession(w, r, passwordPath)
	if !ok {
		return
	}
	lang := p.chooseLang(w, r, "/")
	hasPassword, err := p.hasPassword(r.Context(), s.UserID)
	if err != nil {
		p.failInternal(w, r, lang, "load account", err)
		return
	}
	p.renderPassword(w, r, http.StatusOK, lang, s, passwordForm{HasPassword: hasPassword}, "")
}

// renderPassword shows the form, or asks an account without a password to
// sign in again when its sign-in is old: a stolen session cookie must not
// become a password that outlives the session.
func (p *Pages) renderPassword(w http.ResponseWriter, r *http.Request, status int, lang string, s *users.Session, f passwordForm, msgKey string) {
	v := p.newView(passwordPath, lang, "/")
	v.CSRF = p.csrfToken(w, r)
	v.Password = f
	if msgKey != "" {
		v.Message = msg(lang, msgKey)
	}
	if !f.HasPassword && !f.Done && time.Since(s.AuthTime) > passwordReauthAfter {
		v.ReauthURL = loginURL(passwordPath)
		status = http.StatusForbidden
	}
	p.render(w, status, pagePassword, v)
}

func (p *Pages) passwordSubmit(w http.ResponseWriter, r *http.Request) {
	form, ok := p.readForm(w, r)
	if !ok {
		return
	}
	s, ok := p.accountSession(w, r, passwordPath)
	if !ok {
		return
	}
	ctx := r.Context()
	hasPassword, err := p.hasPassword(ctx, s.UserID)
	if err != nil {
		p.failInternal(w, r, form.lang, "load account", err)
		return
	}
	f := passwordForm{HasPassword: hasPassword}
	again := func(status int, key string) { p.renderPassword(w, r, status, form.lang, s, f, key) }
	current, next, confirm := r.PostForm.Get("current_password"), r.PostForm.Get("new_password"), r.PostForm.Get("confirm_password")
	switch {
	case len(current) > maxPassword || len(next) > maxPassword || len(confirm) > maxPassword:
		again(http.StatusBadRequest, "login.too_long")
		return
	case !utf8.ValidString(current) || !utf8.ValidString(next):
		again(http.StatusBadRequest, "login.bad_encoding")
		return
	case (hasPassword && current == "") || next == "":
		again(http.StatusBadRequest, "password.missing")
		return
	case next != confirm:
		again(http.StatusBadRequest, "password.mismatch")
		return
	case !hasPassword && time.Since(s.AuthTime) > passwordReauthAfter:
		again(http.StatusForbidden, "")
		return
	}
	err = p.passwords.ChangePassword(ctx, s.UserID, current, next, accountMeta(r))
	var locked *users.LockedError
	switch {
	case errors.Is(err, users.ErrInvalidCredentials):
		again(http.StatusUnauthorized, "password.wrong_current")
		return
	case errors.As(err, &locked) && !locked.Until.IsZero():
		w.Header().Set("Retry-After", strconv.Itoa(int(time.Until(locked.Until).Seconds())+1))
		key := "login.locked_until"
		if locked.Delay {
			key = "login.wait_until"
		}
		v := p.newView(passwordPath, form.lang, "/")
		v.CSRF, v.Password = p.csrfToken(w, r), f
		v.Message = v.T(key, unlockTime(locked.Until, time.Now()))
		p.render(w, http.StatusTooManyRequests, pagePassword, v)
		return
	case errors.Is(err, users.ErrLocked):
		again(http.StatusTooManyRequests, "login.locked")
		return
	case err != nil:
		if key := passwordPolicyKey(err); key != "" {
			again(http.StatusBadRequest, key)
			return
		}
		p.failInternal(w, r, form.lang, "change password", err)
		return
	}
	// Whoever knew the old password may hold a session elsewhere: end them all but this one.
	ended, err := p.endOtherSessions(r, s)
	if err != nil {
		p.failInternal(w, r, form.lang, "end other sessions", err)
		return
	}
	p.renderPassword(w, r, http.StatusOK, form.lang, s, passwordForm{HasPassword: true, Done: true, Ended: strconv.Itoa(ended)}, "")
}

// hasPassword reports whether the account has a password to give.
func (p *Pages) hasPassword(ctx context.Context, userID string) (bool, error) {
	u, err := p.account.Profile(ctx, userID)
	if err != nil {
		return false, err
	}
	return u.PasswordHash != "", nil
}

// endOtherSessions ends every live session of the person but s, telling the
// department systems that shared them, and says how many.
func (p *Pages) endOtherSessions(r *http.Request, s *users.Session) (int, error) {
	list, err := p.account.ListSessions(r.Context(), s.UserID)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, other := range list {
		if other.ID == s.ID || other.UserID != s.UserID {
			continue
		}
		if err := p.endSession(r, other); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
