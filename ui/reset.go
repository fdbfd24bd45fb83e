package ui

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/users"
)

// resetForm shows the first step of a password reset.
func (p *Pages) resetForm(w http.ResponseWriter, r *http.Request) {
	returnTo := safeReturnTo(r.URL.Query().Get("return_to"))
	lang := p.chooseLang(w, r, returnTo)
	if token := r.URL.Query().Get("token"); token != "" {
		p.resetLinkForm(w, r, lang, returnTo, token)
		return
	}
	p.render(w, http.StatusOK, pageReset, p.accountView(w, r, "/reset", lang, returnTo, stepPhone))
}

// reset handles both steps: "send" asks for a code, "reset" sets the new password.
func (p *Pages) reset(w http.ResponseWriter, r *http.Request) {
	form, ok := p.readForm(w, r)
	if !ok {
		return
	}
	if r.PostForm.Get("action") == "link" {
		p.resetByLink(w, r, form)
		return
	}
	v := p.accountView(w, r, "/reset", form.lang, form.returnTo, stepPhone)
	phone, ok := p.postedResetDestination(w, r, v)
	if !ok {
		return
	}
	v.Account.Phone = phone
	meta := requestMeta(r, form.returnTo)
	r = r.WithContext(users.WithRequestMeta(r.Context(), meta))
	if r.PostForm.Get("action") == "send" {
		p.sendResetCode(w, r, v, phone)
		return
	}
	p.resetPassword(w, r, v, phone, meta)
}

// postedResetDestination reads the reset form's account field: a mobile
// number, or an e-mail address (which contains "@"). On failure it has
// re-rendered the first step.
func (p *Pages) postedResetDestination(w http.ResponseWriter, r *http.Request, v view) (string, bool) {
	raw := strings.TrimSpace(r.PostForm.Get("phone"))
	if !strings.Contains(raw, "@") {
		return p.postedPhone(w, r, pageReset, v)
	}
	if e, err := users.NormalizeEmail(raw); err == nil && e != "" {
		return e, true
	}
	v.Account.Step = stepPhone
	if utf8.ValidString(raw) && len(raw) <= users.MaxEmail {
		v.Account.Phone = raw
	}
	v.Message = msg(v.Lang, "reset.bad_destination")
	p.render(w, http.StatusBadRequest, pageReset, v)
	return "", false
}

// resetAccount is the account a reset destination belongs to.
func (p *Pages) resetAccount(ctx context.Context, dest string) (*users.User, error) {
	if strings.Contains(dest, "@") {
		return p.accounts.Users.GetByEmail(ctx, dest)
	}
	return p.accounts.Users.GetByPhone(ctx, dest)
}

// sendResetCode sends a code to a registered number or address, and to any
// other a message saying it has no account, under the same limits and with
// the same page, so that the form tells nobody which are registered.
func (p *Pages) sendResetCode(w http.ResponseWriter, r *http.Request, v view, dest string) {
	ctx := r.Context()
	_, err := p.resetAccount(ctx, dest)
	switch {
	case err == nil:
		err = p.accounts.Codes.Issue(ctx, users.PurposeReset, dest)
	case errors.Is(err, db.ErrNotFound) && strings.Contains(dest, "@"):
		err = p.accounts.Codes.Notify(ctx, dest, msg(v.Lang, "reset.email_no_account"))
	case errors.Is(err, db.ErrNotFound):
		err = p.accounts.Codes.Notify(ctx, dest, msg(v.Lang, "reset.sms_no_account"))
	}
	p.codeSent(w, r, pageReset, v, err)
}

// resetPassword checks the second step and, with a right code, sets the
// new password, ends every session of the account and clears its lockout,
// so that whoever held the old password or a stolen session is out.
func (p *Pages) resetPassword(w http.ResponseWriter, r *http.Request, v view, phone string, meta users.RequestMeta) {
	v.Account.Step = stepDetails
	code, password := r.PostForm.Get("code"), r.PostForm.Get("password")
	if len(code) > maxCodeInput || len(password) > maxPassword {
		v.Message = msg(v.Lang, "login.too_long")
		p.render(w, http.StatusBadRequest, pageReset, v)
		return
	}
	u, err := p.resetAccount(r.Context(), phone)
	if errors.Is(err, db.ErrNotFound) {
		// No reset code was ever sent here: say what a lapsed code
		// would, so that the form reveals nothing.
		p.accountFailed(w, r, pageReset, v, "reset password", users.ErrOTPExpired)
		return
	}
	if err != nil {
		p.failInternal(w, r, v.Lang, "reset password", err)
		return
	}
	if key := passwordPolicyKey(users.CheckPasswordPolicy(password, u.Username, u.Phone)); key != "" {
		v.Message = msg(v.Lang, key)
		p.render(w, http.StatusBadRequest, pageReset, v)
		return
	}
	hash, err := p.accounts.Hasher.Hash(password)
	if err != nil {
		p.failInternal(w, r, v.Lang, "hash password", err)
		return
	}
	err = p.accounts.Codes.CheckThen(r.Context(), users.PurposeReset, phone, code, func(ctx context.Context) error {
		method := "sms"
		if strings.Contains(phone, "@") {
			method = "email"
		}
		return p.setPassword(ctx, u.ID, hash, method, meta)
	})
	if err != nil {
		p.accountFailed(w, r, pageReset, v, "reset password", err)
		return
	}
	p.clearSessionCookie(w)
	p.newCSRFToken(w)
	v.Account = accountForm{Step: stepDone, LoginURL: loginURL(v.ReturnTo)}
	p.render(w, http.StatusOK, pageReset, v)
}

// setPassword stores the new hash, ends the account's sessions, clears its
// lockout and audits the reset.
func (p *Pages) setPassword(ctx context.Context, userID, hash, method string, meta users.RequestMeta) error {
	if _, err := p.accounts.Users.Update(ctx, userID, func(u *users.User) error {
		u.PasswordHash = hash
		return nil
	}); err != nil {
		return err
	}
	ended, err := p.accounts.Sessions.RevokeAllForUser(ctx, userID)
	if err != nil {
		return err
	}
	if err := p.accounts.Lockout.Reset(ctx, users.AccountKey(userID)); err != nil {
		return err
	}
	_, err = p.accounts.Audit.Append(ctx, audit.Event{
		Actor: userID, Subject: userID, ClientID: meta.ClientID, IP: meta.IP, UserAgent: meta.UserAgent,
		Action: users.ActionPasswordReset, Result: audit.ResultSuccess,
		Details: map[string]string{"method": method, "sessions_ended": strconv.FormatInt(ended, 10)},
	})
	return err
}

// resetLinkForm shows the new-password form of an administrator's reset
// link, or why the link no longer works. The token stays in the page only
// as a hidden field posted back over the same origin.
func (p *Pages) resetLinkForm(w http.ResponseWriter, r *http.Request, lang, returnTo, token string) {
	v := p.accountView(w, r, "/reset", lang, returnTo, stepLink)
	if p.accounts.Links == nil || len(token) > maxLinkToken {
		p.resetLinkInvalid(w, v)
		return
	}
	if _, err := p.accounts.Links.Peek(r.Context(), token); err != nil {
		if !errors.Is(err, users.ErrResetLinkInvalid) {
			p.failInternal(w, r, lang, "reset link", err)
			return
		}
		p.resetLinkInvalid(w, v)
		return
	}
	v.Account.Token = token
	p.render(w, http.StatusOK, pageReset, v)
}

// maxLinkToken bounds a posted token before any work.
const maxLinkToken = 128

// resetLinkInvalid says the link is used, expired or unknown, and offers
// the reset by SMS code.
func (p *Pages) resetLinkInvalid(w http.ResponseWriter, v view) {
	v.Account.Step = stepPhone
	v.Message = msg(v.Lang, "reset.link_invalid")
	p.render(w, http.StatusBadRequest, pageReset, v)
}

// resetByLink sets the new password through an administrator's link, with
// the same effects as a reset by code; the link is used up with it.
func (p *Pages) resetByLink(w http.ResponseWriter, r *http.Request, form postedForm) {
	ctx := r.Context()
	v := p.accountView(w, r, "/reset", form.lang, form.returnTo, stepLink)
	token, password := r.PostForm.Get("token"), r.PostForm.Get("password")
	if p.accounts.Links == nil || p.accounts.LinkOwners == nil || len(token) > maxLinkToken {
		p.resetLinkInvalid(w, v)
		return
	}
	if len(password) > maxPassword {
		v.Account.Token = token
		v.Message = msg(v.Lang, "login.too_long")
		p.render(w, http.StatusBadRequest, pageReset, v)
		return
	}
	userID, err := p.accounts.Links.Peek(ctx, token)
	var u *users.User
	if err == nil {
		u, err = p.accounts.LinkOwners.Get(ctx, userID)
		if err == nil && u.Status == users.StatusDeleted {
			err = users.ErrResetLinkInvalid
		}
	}
	if errors.Is(err, users.ErrResetLinkInvalid) || errors.Is(err, db.ErrNotFound) {
		p.resetLinkInvalid(w, v)
		return
	}
	if err != nil {
		p.failInternal(w, r, v.Lang, "reset link", err)
		return
	}
	v.Account.Token = token
	if key := passwordPolicyKey(users.CheckPasswordPolicy(password, u.Username, u.Phone)); key != "" {
		v.Message = msg(v.Lang, key)
		p.render(w, http.StatusBadRequest, pageReset, v)
		return
	}
	hash, err := p.accounts.Hasher.Hash(password)
	if err != nil {
		p.failInternal(w, r, v.Lang, "hash password", err)
		return
	}
	meta := requestMeta(r, form.returnTo)
	err = p.accounts.Links.UseThen(users.WithRequestMeta(ctx, meta), token, func(ctx context.Context, id string) error {
		if id != u.ID { // the link was replaced between the two reads
			return users.ErrResetLinkInvalid
		}
		return p.setPassword(ctx, id, hash, "link", meta)
	})
	if errors.Is(err, users.ErrResetLinkInvalid) {
		v.Account.Token = ""
		p.resetLinkInvalid(w, v)
		return
	}
	if err != nil {
		p.failInternal(w, r, v.Lang, "reset password", err)
		return
	}
	p.clearSessionCookie(w)
	p.newCSRFToken(w)
	v.Account = accountForm{Step: stepDone, LoginURL: loginURL(v.ReturnTo)}
	p.render(w, http.StatusOK, pageReset, v)
}
