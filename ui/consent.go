package ui

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/govsso/sso/users"
)

// consentRequest is what a consent page is about: the client and the
// scopes of the authorization request in return_to.
type consentRequest struct {
	clientID string
	scopes   []string
}

// parseConsentRequest reads the client and scopes from return_to. The
// posted form never names them itself, so a person allows exactly what
// the authorization request asks for.
func parseConsentRequest(returnTo string) (consentRequest, bool) {
	q := returnQuery(returnTo)
	c := consentRequest{clientID: q.Get("client_id")}
	seen := map[string]bool{}
	for _, s := range strings.Fields(q.Get("scope")) {
		if !seen[s] {
			seen[s] = true
			c.scopes = append(c.scopes, s)
		}
	}
	return c, c.clientID != ""
}

// consentForm asks a signed-in person whether a client may have the
// scopes it asks for.
func (p *Pages) consentForm(w http.ResponseWriter, r *http.Request) {
	returnTo := safeReturnTo(r.URL.Query().Get("return_to"))
	lang := p.chooseLang(w, r, returnTo)
	if _, ok := p.requireSession(w, r, returnTo); !ok {
		return
	}
	req, ok := parseConsentRequest(returnTo)
	if !ok {
		p.fail(w, r, http.StatusBadRequest, lang, "error.title", "consent.bad_request")
		return
	}
	client, err := p.clients.ClientInfo(r.Context(), req.clientID)
	if err != nil {
		p.log.Warn("ui: client for consent page", "client_id", req.clientID, "err", err)
		p.fail(w, r, http.StatusBadRequest, lang, "error.title", "consent.bad_request")
		return
	}
	v := p.newView("/consent", lang, returnTo)
	v.CSRF = p.csrfToken(w, r)
	v.clientMark(client)
	v.Scopes = scopeWords(lang, req.scopes)
	p.render(w, http.StatusOK, pageConsent, v)
}

// consent records the person's answer and sends the browser back to the
// authorization request, which turns a refusal into access_denied.
func (p *Pages) consent(w http.ResponseWriter, r *http.Request) {
	form, ok := p.readForm(w, r)
	if !ok {
		return
	}
	s, ok := p.requireSession(w, r, form.returnTo)
	if !ok {
		return
	}
	req, ok := parseConsentRequest(form.returnTo)
	if !ok {
		p.fail(w, r, http.StatusBadRequest, form.lang, "error.title", "consent.bad_request")
		return
	}
	if r.PostForm.Get("decision") != "allow" {
		seeOther(w, withParam(form.returnTo, "consent", "denied"))
		return
	}
	remember := r.PostForm.Get("remember") == "on"
	if err := p.consents.GrantConsent(r.Context(), s.UserID, req.clientID, req.scopes, remember); err != nil {
		p.failInternal(w, r, form.lang, "grant consent", err)
		return
	}
	seeOther(w, form.returnTo)
}

// requireSession returns the browser's session, or sends the browser to
// sign in first and come back to the consent page for returnTo.
func (p *Pages) requireSession(w http.ResponseWriter, r *http.Request, returnTo string) (*users.Session, bool) {
	s, err := p.CurrentSession(r)
	if err != nil {
		seeOther(w, loginURL(consentURL(returnTo)))
		return nil, false
	}
	return s, true
}

// consentURL is the consent page for an authorization request.
func consentURL(returnTo string) string {
	return "/consent?return_to=" + url.QueryEscape(returnTo)
}

// scopeWords says each scope in plain words; scopes the catalogue does not
// know are shown by name.
func scopeWords(lang string, scopes []string) []string {
	words := make([]string, len(scopes))
	for i, s := range scopes {
		if w, ok := catalogue[lang]["consent.scope."+s]; ok {
			words[i] = w
		} else {
			words[i] = s
		}
	}
	return words
}
