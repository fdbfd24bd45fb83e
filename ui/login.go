package ui

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/govsso/sso/server"
	"github.com/govsso/sso/users"
)

// Form limits. They bound the work a single post can cause; real
// identifiers and passwords are far shorter.
const (
	maxIdentifier = 256
	maxPassword   = 1024
	maxFormBytes  = 16 << 10
)

// chinaTime shows unlock times as people in the city read clocks. China
// has one time zone and no daylight saving, so a fixed zone is exact and
// needs no tzdata on the server.
var chinaTime = time.FixedZone("CST", 8*60*60)

// loginForm shows the sign-in form.
func (p *Pages) loginForm(w http.ResponseWriter, r *http.Request) {
	returnTo := safeReturnTo(r.URL.Query().Get("return_to"))
	lang := p.chooseLang(w, r, returnTo)
	v := p.loginView(w, r, lang, returnTo)
	v.Identifier = returnQuery(returnTo).Get("login_hint")
	if len(v.Identifier) > maxIdentifier || !utf8.ValidString(v.Identifier) {
		v.Identifier = ""
	}
	p.render(w, http.StatusOK, pageLogin, v)
}

// loginView starts the sign-in page, naming the client the person signs in
// for when return_to is an authorization request.
func (p *Pages) loginView(w http.ResponseWriter, r *http.Request, lang, returnTo string) view {
	v := p.newView("/login", lang, returnTo)
	v.CSRF = p.csrfToken(w, r)
	if id := returnQuery(returnTo).Get("client_id"); id != "" {
		if c, err := p.clients.ClientInfo(r.Context(), id); err == nil {
			v.clientMark(c)
		} else {
			// The authorization endpoint reports unknown clients; the
			// form still works without the name.
			p.log.Debug("ui: client for sign-in page", "client_id", id, "err", err)
		}
	}
	return v
}

// login checks the posted form and, if the password is right, starts a
// new session and sends the browser back to return_to.
func (p *Pages) login(w http.ResponseWriter, r *http.Request) {
	form, ok := p.readForm(w, r)
	if !ok {
		return
	}
	returnTo, lang := form.returnTo, form.lang
	identifier := strings.TrimSpace(r.PostForm.Get("identifier"))
	password := r.PostForm.Get("password")

	v := p.loginView(w, r, lang, returnTo)
	if msgKey := checkLoginInput(identifier, password); msgKey != "" {
		if utf8.ValidString(identifier) && len(identifier) <= maxIdentifier {
			v.Identifier = identifier
		}
		v.Message = msg(lang, msgKey)
		p.render(w, http.StatusBadRequest, pageLogin, v)
		return
	}
	v.Identifier = identifier

	meta := users.RequestMeta{IP: server.ClientIP(r), UserAgent: r.UserAgent(), ClientID: returnQuery(returnTo).Get("client_id")}
	u, err := p.auth.PasswordLogin(r.Context(), identifier, password, meta)
	if err != nil {
		p.loginFailed(w, r, v, err)
		return
	}
	if p.startSecondFactor(w, r, u, []string{"pwd"}, returnTo, lang) {
		return // the session starts once the second factor is right
	}
	p.startSession(w, r, u, meta, returnTo, lang)
}

// checkLoginInput returns the catalogue key of what is wrong with the
// typed account and password, or "" if they may be checked.
func checkLoginInput(identifier, password string) string {
	switch {
	case identifier == "" || password == "":
		return "login.missing"
	case len(identifier) > maxIdentifier || len(password) > maxPassword:
		return "login.too_long"
	case !utf8.ValidString(identifier) || !utf8.ValidString(password):
		return "login.bad_encoding"
	}
	return ""
}

// loginFailed re-renders the form with why the sign-in was refused. Wrong
// passwords and unknown accounts get the same words, so the page does not
// tell anyone which accounts exist.
func (p *Pages) loginFailed(w http.ResponseWriter, r *http.Request, v view, err error) {
	var locked *users.LockedError
	switch {
	case errors.Is(err, users.ErrInvalidCredentials):
		v.Message = msg(v.Lang, "login.invalid")
		p.render(w, http.StatusUnauthorized, pageLogin, v)
	case errors.As(err, &locked) && !locked.Until.IsZero():
		key := "login.locked_until"
		if locked.Delay {
			key = "login.wait_until"
		}
		v.Message = v.T(key, unlockTime(locked.Until, time.Now()))
		if wait := time.Until(locked.Until); wait > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		}
		p.render(w, http.StatusTooManyRequests, pageLogin, v)
	case errors.Is(err, users.ErrLocked):
		v.Message = msg(v.Lang, "login.locked")
		p.render(w, http.StatusTooManyRequests, pageLogin, v)
	case errors.Is(err, users.ErrAccountDisabled):
		v.Message = msg(v.Lang, "login.disabled")
		p.render(w, http.StatusForbidden, pageLogin, v)
	default:
		p.failInternal(w, r, v.Lang, "password login", err)
	}
}

// unlockTime formats when a lock ends in China time: the clock time to
// the second if that is within minutes, the clock time if that is today,
// else the date as well.
func unlockTime(until, now time.Time) string {
	until, now = until.In(chinaTime), now.In(chinaTime)
	if until.Sub(now) < 5*time.Minute {
		return until.Format("15:04:05")
	}
	if until.YearDay() == now.YearDay() && until.Year() == now.Year() {
		return until.Format("15:04")
	}
	return until.Format("2006-01-02 15:04")
}

// startSession starts the session of a password sign-in and sends the
// browser on.
func (p *Pages) startSession(w http.ResponseWriter, r *http.Request, u *users.User, meta users.RequestMeta, returnTo, lang string) {
	p.startSessionWith(w, r, u, []string{"pwd"}, u.AssuranceLevel, meta, returnTo, lang)
}

// startSessionWith starts a session with amr and acr and sends the browser to returnTo.
func (p *Pages) startSessionWith(w http.ResponseWriter, r *http.Request, u *users.User, amr []string, acr int, meta users.RequestMeta, returnTo, lang string) {
	if err := p.replaceSession(w, r, u.ID, amr, acr, meta); err != nil {
		p.failInternal(w, r, lang, "create session", err)
		return
	}
	seeOther(w, returnTo)
}

// replaceSession replaces any session the browser had with a new one, so
// that a session token planted before sign-in (session fixation) is never
// promoted, and renews the CSRF token. Every way of signing in ends here.
func (p *Pages) replaceSession(w http.ResponseWriter, r *http.Request, userID string, amr []string, acr int, meta users.RequestMeta) error {
	if old, err := p.CurrentSession(r); err == nil {
		if err := p.sessions.Revoke(r.Context(), old.ID); err != nil {
			p.log.Warn("ui: revoke previous session", "err", err)
		}
	}
	_, token, err := p.sessions.Create(r.Context(), userID, amr, acr, meta.IP, meta.UserAgent)
	if err != nil {
		return err
	}
	p.setSessionCookie(w, token)
	p.newCSRFToken(w)
	return nil
}
