package oauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/go-jose/go-jose/v3/jwt"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/users"
)

// SessionRevoker ends browser sessions; *users.Sessions is one.
type SessionRevoker interface {
	// Revoke ends the session with this id; an unknown id is an error wrapping db.ErrNotFound.
	Revoke(ctx context.Context, id string) error
}

// actionLogout is the audit action of an RP-initiated logout.
const actionLogout = "oauth.logout"

// errBadLogoutRequest marks a logout request the person is told about
// (400), as opposed to a server failure (500).
var errBadLogoutRequest = errors.New("invalid logout request")

// registerLogout adds the end_session_endpoint of OpenID Connect
// RP-Initiated Logout 1.0, which takes GET and form POST alike.
func (p *Provider) registerLogout(mux *http.ServeMux) {
	mux.HandleFunc("GET /oauth2/logout", p.endSession)
	mux.HandleFunc("POST /oauth2/logout", p.endSession)
}

// logoutRequest is an RP-initiated logout request once checked.
type logoutRequest struct {
	form   url.Values   // the parameters, carried through the confirmation form
	hint   *idTokenHint // nil without id_token_hint
	client *Client      // known from the hint or client_id; nil otherwise
	// redirect is post_logout_redirect_uri with state, or "" when it was
	// not given or is not registered for client: there is no open redirect.
	redirect string
	lang     string
}

// idTokenHint is what logout needs from an ID token this server issued.
type idTokenHint struct {
	Issuer    string       `json:"iss"`
	Audience  jwt.Audience `json:"aud"`
	AZP       string       `json:"azp"`
	SessionID string       `json:"sid"`
}

// endSession runs RP-initiated logout. The person is asked to confirm,
// unless id_token_hint names the very session their browser holds (then the
// client evidently speaks for it); logging out ends the browser session,
// revokes the refresh tokens it produced, and tells every client that got
// tokens from it, over the back channel (queued) and the front channel
// (hidden frames on the signed-out page).
func (p *Provider) endSession(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		p.logoutError(w, http.StatusBadRequest, "zh-CN", "the request could not be read")
		return
	}
	lr, err := p.parseLogoutRequest(ctx, r.Form)
	if err != nil {
		p.failLogout(ctx, w, lr.lang, err)
		return
	}
	bs, err := p.sessions(r)
	if errors.Is(err, db.ErrUnavailable) {
		p.failLogout(ctx, w, lr.lang, err) // never say "signed out" while the session may live
		return
	}
	switch {
	case bs == nil:
		p.finishLogout(w, lr, nil) // nothing to end: signed out already
	case lr.hint != nil && lr.hint.SessionID == bs.ID, p.confirmed(r, bs):
		frames, err := p.endBrowserSession(ctx, r, bs, lr)
		if err != nil {
			p.failLogout(ctx, w, lr.lang, err)
			return
		}
		p.finishLogout(w, lr, frames)
	default:
		p.confirmLogout(w, lr, bs)
	}
}

// parseLogoutRequest checks id_token_hint and client_id and decides whether
// post_logout_redirect_uri may be followed. lr is never nil, so that an
// error page can still speak the requested language.
func (p *Provider) parseLogoutRequest(ctx context.Context, form url.Values) (*logoutRequest, error) {
	lr := &logoutRequest{form: form, lang: logoutLang(form.Get("ui_locales"))}
	clientID := form.Get("client_id")
	if raw := form.Get("id_token_hint"); raw != "" {
		h, err := p.verifyIDTokenHint(ctx, raw)
		if err != nil {
			return lr, err
		}
		if clientID != "" && !slices.Contains(h.Audience, clientID) {
			return lr, fmt.Errorf("%w: client_id is not an audience of id_token_hint", errBadLogoutRequest)
		}
		if clientID == "" {
			clientID = h.client()
		}
		lr.hint = h
	}
	if clientID != "" {
		c, err := p.store.GetClient(ctx, clientID)
		switch {
		case errors.Is(err, db.ErrNotFound) && lr.hint != nil:
			return lr, fmt.Errorf("%w: id_token_hint was not issued to a known client", errBadLogoutRequest)
		case errors.Is(err, db.ErrNotFound):
			// An unknown client_id only means nobody to return to.
		case err != nil:
			return lr, err
		case !c.Disabled:
			lr.client = c
		}
	}
	uri := form.Get("post_logout_redirect_uri")
	if uri != "" && lr.client != nil && slices.Contains(lr.client.PostLogoutRedirectURIs, uri) {
		lr.redirect = withState(uri, form.Get("state"))
	}
	return lr, nil
}

// client is the client an ID token was issued to.
func (h *idTokenHint) client() string {
	if h.AZP != "" {
		return h.AZP
	}
	if len(h.Audience) == 1 {
		return h.Audience[0]
	}
	return ""
}

// verifyIDTokenHint checks that raw is an ID token this server signed with
// one of its published keys. An expired one is fine: RP-Initiated Logout
// expects hints that outlived their token.
func (p *Provider) verifyIDTokenHint(ctx context.Context, raw string) (*idTokenHint, error) {
	tok, err := jwt.ParseSigned(raw)
	if err != nil || len(tok.Headers) != 1 {
		return nil, fmt.Errorf("%w: id_token_hint is not a signed JWT", errBadLogoutRequest)
	}
	head := tok.Headers[0]
	keys, err := p.keys.Published(ctx, time.Now())
	if err != nil {
		return nil, fmt.Errorf("id_token_hint: %w", err)
	}
	for _, k := range keys {
		if k.ID != head.KeyID || k.Algorithm != head.Algorithm {
			continue
		}
		var pub jose.JSONWebKey
		if err := json.Unmarshal(k.PublicJWK, &pub); err != nil {
			return nil, fmt.Errorf("id_token_hint: key %s: %w", k.ID, err)
		}
		var h idTokenHint
		if err := tok.Claims(&pub, &h); err != nil {
			return nil, fmt.Errorf("%w: id_token_hint has a bad signature", errBadLogoutRequest)
		}
		if h.Issuer != p.cfg.Issuer {
			return nil, fmt.Errorf("%w: id_token_hint was issued by someone else", errBadLogoutRequest)
		}
		if len(h.Audience) == 0 {
			return nil, fmt.Errorf("%w: id_token_hint has no audience", errBadLogoutRequest)
		}
		return &h, nil
	}
	return nil, fmt.Errorf("%w: id_token_hint is not signed by a key of this server", errBadLogoutRequest)
}

// withState appends state to a registered post-logout redirect URI.
func withState(uri, state string) string {
	if state == "" {
		return uri
	}
	u, err := url.Parse(uri)
	if err != nil {
		return ""
	}
	q := u.Query()
	q.Set("state", state)
	u.RawQuery = q.Encode()
	return u.String()
}

// EndSession ends a browser session as RP-initiated logout does, for a
// sign-out that starts on this server's own pages: its grants are revoked
// and back-channel clients notified. It returns the front-channel URIs.
func (p *Provider) EndSession(ctx context.Context, r *http.Request, bs *users.Session) ([]string, error) {
	return p.endBrowserSession(ctx, r, bs, &logoutRequest{})
}

// endBrowserSession ends bs and, in the same transaction, revokes the
// refresh tokens it produced and queues a back-channel notification for
// every client that received tokens from it. It returns the front-channel
// logout URIs to load in frames.
func (p *Provider) endBrowserSession(ctx context.Context, r *http.Request, bs *users.Session, lr *logoutRequest) ([]string, error) {
	if p.revoker == nil {
		return nil, errors.New("logout: no session revoker configured")
	}
	var frames, notified []string
	err := p.d.InTx(ctx, func(ctx context.Context) error {
		frames, notified = nil, nil
		if err := p.revoker.Revoke(ctx, bs.ID); err != nil {
			return err // ErrNotFound: another request ended it and told the clients
		}
		ids, err := p.store.sessionClientIDs(ctx, bs.ID)
		if err != nil {
			return err
		}
		if _, err := p.store.revokeSessionGrants(ctx, bs.ID); err != nil {
			return err
		}
		for _, id := range ids {
			c, err := p.store.GetClient(ctx, id)
			if errors.Is(err, db.ErrNotFound) {
				continue // deleted since; its tokens went with it
			}
			if err != nil {
				return err
			}
			if c.BackchannelLogoutURI != "" {
				d := &logoutDelivery{ClientID: c.ID, URI: c.BackchannelLogoutURI, Subject: p.subjectFor(c, bs.UserID), SessionID: bs.ID}
				if err := p.store.enqueueLogoutDelivery(ctx, d, time.Now()); err != nil {
					return err
				}
				notified = append(notified, c.ID)
			}
			if u := frontchannelURL(c.FrontchannelLogoutURI, p.cfg.Issuer, bs.ID); u != "" {
				frames = append(frames, u)
			}
		}
		return nil
	})
	if errors.Is(err, db.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("logout: %w", err)
	}
	e := audit.Event{Actor: bs.UserID, Subject: bs.UserID, Action: actionLogout, Result: audit.ResultSuccess,
		Details: map[string]string{"sid": bs.ID, "backchannel_clients": strings.Join(notified, " ")}}
	if lr.client != nil {
		e.ClientID = lr.client.ID
	}
	p.record(ctx, r, e)
	return frames, nil
}

// frontchannelURL is a client's front-channel logout URI with iss and sid,
// or "" when it has none.
func frontchannelURL(raw, issuer, sid string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	q := u.Query()
	q.Set("iss", issuer)
	q.Set("sid", sid)
	u.RawQuery = q.Encode()
	return u.String()
}

// confirmed reports whether r is the confirmation form, posted from our own
// page for the browser's current session.
func (p *Provider) confirmed(r *http.Request, bs *users.Session) bool {
	if r.Method != http.MethodPost || r.PostForm.Get("confirm") != "yes" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && o != origin(p.cfg.Issuer) {
		return false
	}
	want := p.logoutCSRFToken(bs.ID)
	return subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf_token")), []byte(want)) == 1
}

// logoutCSRFToken binds the confirmation form to one browser session under
// a server key, so it needs no cookie of its own and another site cannot
// forge it: it never sees our page.
func (p *Provider) logoutCSRFToken(sid string) string {
	k := hmac.New(sha256.New, p.cfg.HMACKey)
	k.Write([]byte("sso logout confirmation"))
	m := hmac.New(sha256.New, k.Sum(nil))
	m.Write([]byte(sid))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// origin is the scheme and host of a URL, as browsers send it in Origin.
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// logoutParams are the request parameters the confirmation form carries on.
var logoutParams = []string{"id_token_hint", "client_id", "post_logout_redirect_uri", "state", "ui_locales"}

// confirmLogout asks the person whether to sign out.
func (p *Provider) confirmLogout(w http.ResponseWriter, lr *logoutRequest, bs *users.Session) {
	fields := []hiddenField{{"confirm", "yes"}, {"csrf_token", p.logoutCSRFToken(bs.ID)}}
	for _, name := range logoutParams {
		if v := lr.form.Get(name); v != "" {
			fields = append(fields, hiddenField{name, v})
		}
	}
	client := ""
	if lr.client != nil {
		client = lr.client.Name
	}
	// Browsers apply form-action to the redirect that answers the form too.
	formAction := "'self'"
	if o := origin(lr.redirect); o != "" {
		formAction += " " + o
	}
	writeLogoutPage(w, http.StatusOK, "default-src 'none'; form-action "+formAction+"; frame-ancestors 'none'; base-uri 'none'",
		"confirm", logoutView{Lang: lr.lang, T: logoutTexts[lr.lang], Client: client, Fields: fields})
}

// finishLogout sends the person back to the client when it may, or shows
// the signed-out page. Front-channel frames need that page: it then moves
// on to the client by itself after the frames had a moment to load.
func (p *Provider) finishLogout(w http.ResponseWriter, lr *logoutRequest, frames []string) {
	if len(frames) == 0 && lr.redirect != "" {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Location", lr.redirect)
		w.WriteHeader(http.StatusSeeOther)
		return
	}
	csp := "default-src 'none'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
	var origins []string
	for _, f := range frames {
		if o := origin(f); o != "" && !slices.Contains(origins, o) {
			origins = append(origins, o)
		}
	}
	if len(origins) > 0 {
		csp += "; frame-src " + strings.Join(origins, " ")
	}
	writeLogoutPage(w, http.StatusOK, csp, "signed_out",
		logoutView{Lang: lr.lang, T: logoutTexts[lr.lang], Frames: frames, Redirect: lr.redirect})
}

// failLogout shows why a logout request was refused, or that it failed.
func (p *Provider) failLogout(ctx context.Context, w http.ResponseWriter, lang string, err error) {
	if errors.Is(err, errBadLogoutRequest) {
		p.logoutError(w, http.StatusBadRequest, lang, strings.TrimPrefix(err.Error(), errBadLogoutRequest.Error()+": "))
		return
	}
	p.log.ErrorContext(ctx, "logout failed", "err", err)
	p.logoutError(w, http.StatusInternalServerError, lang, "")
}

func (p *Provider) logoutError(w http.ResponseWriter, status int, lang, reason string) {
	writeLogoutPage(w, status, "default-src 'none'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'", "error",
		logoutView{Lang: lang, T: logoutTexts[lang], Reason: reason})
}

// hiddenField is one hidden input of a form.
type hiddenField struct{ Name, Value string }

// logoutView is what the logout pages show.
type logoutView struct {
	Lang     string
	T        logoutText
	Client   string        // the client's name on the confirmation page
	Fields   []hiddenField // hidden fields of the confirmation form
	Frames   []string      // front-channel logout URIs
	Redirect string        // where the signed-out page moves on to
	Reason   string        // why a request was refused (English, technical)
}

func writeLogoutPage(w http.ResponseWriter, status int, csp, page string, v logoutView) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", csp)
	w.WriteHeader(status)
	logoutPages.ExecuteTemplate(w, page, v)
}

// logoutLang picks the first language of ui_locales the pages speak;
// Chinese by default.
func logoutLang(uiLocales string) string {
	for _, tag := range strings.Fields(strings.ToLower(uiLocales)) {
		switch {
		case strings.HasPrefix(tag, "zh"):
			return "zh-CN"
		case strings.HasPrefix(tag, "en"):
			return "en"
		}
	}
	return "zh-CN"
}

// logoutText is every string the logout pages show, in one language.
type logoutText struct {
	ConfirmTitle, Confirm, ClientAsks, Submit, DoneTitle, Done, Continue, ErrorTitle, ErrorHint string
}

var logoutTexts = map[string]logoutText{
	"zh-CN": {
		ConfirmTitle: "退出登录",
		Confirm:      "要退出统一身份认证吗？您将同时退出通过它登录的所有应用。",
		ClientAsks:   "请求退出登录的应用：",
		Submit:       "退出登录",
		DoneTitle:    "已退出登录",
		Done:         "您已退出统一身份认证。在公共电脑上，请关闭浏览器。",
		Continue:     "返回应用",
		ErrorTitle:   "无法退出登录",
		ErrorHint:    "请返回您来自的应用并重试；如果问题持续，请联系该应用的管理员。",
	},
	"en": {
		ConfirmTitle: "Sign out",
		Confirm:      "Do you want to sign out? You will be signed out of every application you signed in to with this account.",
		ClientAsks:   "Application asking you to sign out: ",
		Submit:       "Sign out",
		DoneTitle:    "You are signed out",
		Done:         "You have signed out. On a shared computer, close the browser.",
		Continue:     "Back to the application",
		ErrorTitle:   "Cannot sign out",
		ErrorHint:    "Go back to the application you came from and try again; if it keeps happening, contact that application's administrator.",
	},
}

// logoutPages are plain pages without a stylesheet: oauth does not import
// ui, and these are seen for a moment at most.
var logoutPages = template.Must(template.New("logout").Parse(`
{{define "head"}}<!doctype html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">{{end}}

{{define "confirm"}}{{template "head" .}}
<title>{{.T.ConfirmTitle}}</title></head>
<body><main><h1>{{.T.ConfirmTitle}}</h1>
{{if .Client}}<p>{{.T.ClientAsks}}{{.Client}}</p>{{end}}
<p>{{.T.Confirm}}</p>
<form method="post" action="/oauth2/logout">
{{range .Fields}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<button type="submit">{{.T.Submit}}</button>
</form>
</main></body></html>
{{end}}

{{define "signed_out"}}{{template "head" .}}
{{if .Redirect}}<meta http-equiv="refresh" content="2;url={{.Redirect}}">{{end}}
<title>{{.T.DoneTitle}}</title></head>
<body><main><h1>{{.T.DoneTitle}}</h1>
<p role="status">{{.T.Done}}</p>
{{if .Redirect}}<p><a href="{{.Redirect}}">{{.T.Continue}}</a></p>{{end}}
{{range .Frames}}<iframe src="{{.}}" hidden width="0" height="0" title="logout"></iframe>
{{end}}</main></body></html>
{{end}}

{{define "error"}}{{template "head" .}}
<title>{{.T.ErrorTitle}}</title></head>
<body><main><h1>{{.T.ErrorTitle}}</h1>
{{if .Reason}}<p>{{.Reason}}</p>{{end}}
<p>{{.T.ErrorHint}}</p>
</main></body></html>
{{end}}`))
