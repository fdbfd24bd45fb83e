package ui

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/govsso/sso/users"
)

// The acting-for page: a person who is the legal representative or an
// agent of enterprises chooses whether to act for themself or for one of
// them (切换法人身份). The session then carries the choice, and every token
// issued from it says acting_for.
const (
	actingPath = "/account/acting"
	pageActing = "acting.html"
)

// ActingFor lists whom a person may act for and switches the session.
type ActingFor interface {
	ActingOptions(ctx context.Context, userID string) ([]*users.Enterprise, error)
	SwitchActing(ctx context.Context, s *users.Session, enterpriseID string) error
}

// actingForm is what the acting-for page shows.
type actingForm struct {
	Current string // enterprise id, "" for the person themself
	Options []*users.Enterprise
}

func (p *Pages) registerActing(mux *http.ServeMux) {
	if p.acting == nil {
		return
	}
	mux.HandleFunc("GET "+actingPath, p.actingPage)
	mux.HandleFunc("POST "+actingPath, p.actingSwitch)
}

func (p *Pages) actingPage(w http.ResponseWriter, r *http.Request) {
	returnTo := safeReturnTo(r.URL.Query().Get("return_to"))
	lang := p.chooseLang(w, r, returnTo)
	s, ok := p.accountSession(w, r, actingPath+"?return_to="+url.QueryEscape(returnTo))
	if !ok {
		return
	}
	p.renderActing(w, r, http.StatusOK, lang, returnTo, s, "")
}

func (p *Pages) renderActing(w http.ResponseWriter, r *http.Request, status int, lang, returnTo string, s *users.Session, message string) {
	options, err := p.acting.ActingOptions(r.Context(), s.UserID)
	if err != nil {
		p.failInternal(w, r, lang, "acting options", err)
		return
	}
	v := p.newView(actingPath, lang, returnTo)
	v.CSRF = p.csrfToken(w, r)
	v.Message = message
	v.Acting = actingForm{Current: s.ActingFor, Options: options}
	p.render(w, status, pageActing, v)
}

func (p *Pages) actingSwitch(w http.ResponseWriter, r *http.Request) {
	form, ok := p.readForm(w, r)
	if !ok {
		return
	}
	s, ok := p.accountSession(w, r, actingPath)
	if !ok {
		return
	}
	err := p.acting.SwitchActing(r.Context(), s, r.PostForm.Get("enterprise"))
	switch {
	case errors.Is(err, users.ErrNotAgent):
		p.renderActing(w, r, http.StatusForbidden, form.lang, form.returnTo, s, msg(form.lang, "acting.not_agent"))
		return
	case err != nil:
		p.failInternal(w, r, form.lang, "switch acting", err)
		return
	}
	if form.returnTo == "/" {
		seeOther(w, actingPath) // no place to go back to: show the new choice
		return
	}
	seeOther(w, form.returnTo)
}
