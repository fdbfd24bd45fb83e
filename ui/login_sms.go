package ui

import (
	"context"
	"errors"
	"net/http"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/users"
)

// Sign-in with a code sent by SMS to the account's mobile number (短信验证码
// 登录), for people who have no password or do not remember it. The code
// proves the phone, not who holds it: the session gets amr "sms" and at most
// level 2, and an account with two-step verification still needs its
// second factor.
const (
	smsLoginPath = "/login/sms"
	pageSMSLogin = "login_sms.html"
	// smsLoginMaxACR caps the level of a session that only a text message
	// opened: a phone can be borrowed or its number taken over.
	smsLoginMaxACR = 2
)

func (p *Pages) registerSMSLogin(mux *http.ServeMux) {
	mux.HandleFunc("GET "+smsLoginPath, p.smsLoginForm)
	mux.HandleFunc("POST "+smsLoginPath, p.smsLogin)
}

func (p *Pages) smsLoginForm(w http.ResponseWriter, r *http.Request) {
	returnTo := safeReturnTo(r.URL.Query().Get("return_to"))
	lang := p.chooseLang(w, r, returnTo)
	p.render(w, http.StatusOK, pageSMSLogin, p.smsLoginView(w, r, lang, returnTo))
}

// smsLoginView starts the page as loginView does, naming the client the
// person signs in for, so that both ways to sign in say where they lead.
func (p *Pages) smsLoginView(w http.ResponseWriter, r *http.Request, lang, returnTo string) view {
	v := p.accountView(w, r, smsLoginPath, lang, returnTo, stepPhone)
	if id := returnQuery(returnTo).Get("client_id"); id != "" {
		if c, err := p.clients.ClientInfo(r.Context(), id); err == nil {
			v.clientMark(c)
		}
	}
	return v
}

// smsLogin handles both steps: "send" texts a code, "login" checks it.
func (p *Pages) smsLogin(w http.ResponseWriter, r *http.Request) {
	form, ok := p.readForm(w, r)
	if !ok {
		return
	}
	v := p.smsLoginView(w, r, form.lang, form.returnTo)
	phone, ok := p.postedPhone(w, r, pageSMSLogin, v)
	if !ok {
		return
	}
	v.Account.Phone = phone
	meta := requestMeta(r, form.returnTo)
	r = r.WithContext(users.WithRequestMeta(r.Context(), meta))
	ctx := r.Context()
	if r.PostForm.Get("action") == "send" {
		// As on the reset page: a number without an account gets a notice
		// under the same limits, and the page looks the same either way.
		_, err := p.accounts.Users.GetByPhone(ctx, phone)
		switch {
		case err == nil:
			err = p.accounts.Codes.Issue(ctx, users.PurposeLogin, phone)
		case errors.Is(err, db.ErrNotFound):
			err = p.accounts.Codes.Notify(ctx, phone, msg(v.Lang, "smslogin.sms_no_account"))
		}
		p.codeSent(w, r, pageSMSLogin, v, err)
		return
	}
	v.Account.Step = stepDetails
	code := r.PostForm.Get("code")
	if len(code) > maxCodeInput {
		v.Message = msg(v.Lang, "login.too_long")
		p.render(w, http.StatusBadRequest, pageSMSLogin, v)
		return
	}
	u, err := p.accounts.Users.GetByPhone(ctx, phone)
	if errors.Is(err, db.ErrNotFound) {
		p.accountFailed(w, r, pageSMSLogin, v, "sms sign-in", users.ErrOTPExpired) // no code was sent here
		return
	}
	if err != nil {
		p.failInternal(w, r, v.Lang, "sms sign-in", err)
		return
	}
	err = p.accounts.Codes.CheckThen(ctx, users.PurposeLogin, phone, code, func(ctx context.Context) error {
		if u.Status != users.StatusActive {
			return users.ErrAccountDisabled
		}
		_, err := p.accounts.Audit.Append(ctx, audit.Event{
			Actor: u.ID, Subject: u.ID, ClientID: meta.ClientID, IP: meta.IP, UserAgent: meta.UserAgent,
			Action: audit.ActionLogin, Result: audit.ResultSuccess, Details: map[string]string{"method": "sms", "phone": users.MaskPhone(phone)},
		})
		return err
	})
	if errors.Is(err, users.ErrAccountDisabled) {
		v.Message = msg(v.Lang, "login.disabled")
		p.render(w, http.StatusForbidden, pageSMSLogin, v)
		return
	}
	if err != nil {
		p.accountFailed(w, r, pageSMSLogin, v, "sms sign-in", err)
		return
	}
	amr := []string{"sms"}
	if p.startSecondFactor(w, r, u, amr, form.returnTo, form.lang) {
		return
	}
	p.startSessionWith(w, r, u, amr, min(u.AssuranceLevel, smsLoginMaxACR), meta, form.returnTo, form.lang)
}
