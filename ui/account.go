package ui

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/govsso/sso/users"
)

// The account centre (个人中心): what a person sees of their own account,
// where they are signed in, which department systems they let in, and what
// they did lately.
const (
	accountPath        = "/account"
	signOutPath        = "/account/sessions/sign-out"
	signOutOthersPath  = "/account/sessions/sign-out-others"
	revokeAppPath      = "/account/apps/revoke"
	pageAccount        = "account.html"
	recentActivitySize = 20
	timeLayout         = "2006-01-02 15:04"
)

// AccountCentre gives the account centre what it shows and the one change
// it makes that the pages cannot make through their other services.
type AccountCentre interface {
	// Profile returns the person's account.
	Profile(ctx context.Context, userID string) (*users.User, error)
	// ListSessions returns the person's live browser sessions.
	ListSessions(ctx context.Context, userID string) ([]*users.Session, error)
	// AuthorisedApps lists the clients the person let in, newest first.
	AuthorisedApps(ctx context.Context, userID string) ([]AuthorisedApp, error)
	// RevokeApp withdraws the person's consent for a client and ends the
	// client's tokens for them.
	RevokeApp(ctx context.Context, userID, clientID string, m users.RequestMeta) error
	// RecentActivity returns up to n audit events about the person, newest first.
	RecentActivity(ctx context.Context, userID string, n int) ([]Activity, error)
}

// AuthorisedApp is a client a person consented to.
type AuthorisedApp struct {
	ClientID, Name string
	Scopes         []string
	GrantedAt      time.Time
}

// Activity is one audit event as the person sees it.
type Activity struct {
	At                 time.Time
	Action, Result, IP string
}

// errNotYourSession means a posted session id is not one of the person's
// live sessions.
var errNotYourSession = errors.New("not one of your sessions")

// centreView is what the account centre shows.
type centreView struct {
	DisplayName, Username, Phone, Email string
	Level                               string
	LevelHint                           string // catalogue key
	VerifyURL                           string // "" when the level cannot be raised online
	SecurityURL, PasskeysURL, ActingURL string // "" when the feature is off
	PasswordURL                         string
	SignRequestsURL                     string // "" when signature requests are off
	LicencesURL                         string // "" when electronic licences are off
	CertificatesURL                     string // "" when certificate requests are off
	Sessions                            []sessionRow
	Apps                                []appRow
	Activity                            []activityRow
}

type sessionRow struct {
	ID, Device, IP, SignedIn, LastSeen string
	Current                            bool
}

type appRow struct {
	ClientID, Name, Granted string
	Scopes                  []string
}

type activityRow struct {
	At, Action, IP string
}

func (p *Pages) registerAccount(mux *http.ServeMux) {
	if p.account == nil {
		return
	}
	mux.HandleFunc("GET /{$}", p.home)
	mux.HandleFunc("GET "+accountPath, p.accountPage)
	mux.HandleFunc("POST "+signOutPath, p.accountSignOut)
	mux.HandleFunc("POST "+signOutOthersPath, p.accountSignOutOthers)
	mux.HandleFunc("POST "+revokeAppPath, p.accountRevokeApp)
}

// home sends people to their account, by way of sign-in when needed.
func (p *Pages) home(w http.ResponseWriter, r *http.Request) {
	if _, err := p.CurrentSession(r); err != nil {
		seeOther(w, loginURL(accountPath))
		return
	}
	seeOther(w, accountPath)
}

func (p *Pages) accountPage(w http.ResponseWriter, r *http.Request) {
	lang := p.chooseLang(w, r, "/")
	s, ok := p.accountSession(w, r, accountPath)
	if !ok {
		return
	}
	av, err := p.buildCentre(r.Context(), lang, s)
	if err != nil {
		p.failInternal(w, r, lang, "account centre", err)
		return
	}
	v := p.newView(accountPath, lang, "/")
	v.CSRF = p.csrfToken(w, r)
	v.Centre = av
	p.render(w, http.StatusOK, pageAccount, v)
}

// buildCentre gathers the page's sections.
func (p *Pages) buildCentre(ctx context.Context, lang string, s *users.Session) (*centreView, error) {
	u, err := p.account.Profile(ctx, s.UserID)
	if err != nil {
		return nil, err
	}
	av := &centreView{DisplayName: u.DisplayName, Username: u.Username, Email: u.Email,
		Level: strconv.Itoa(u.AssuranceLevel), LevelHint: levelHint(u.AssuranceLevel)}
	if u.Phone != "" {
		av.Phone = users.MaskPhone(u.Phone)
	}
	if u.AssuranceLevel <= 1 && p.verify != nil && p.stepUp != nil {
		av.VerifyURL = verifyPath + "?return_to=" + accountPath
	}
	if err := p.accountLinks(ctx, s, av); err != nil {
		return nil, err
	}
	if av.Sessions, err = p.sessionRows(ctx, lang, s); err != nil {
		return nil, err
	}
	if av.Apps, err = p.appRows(ctx, lang, s.UserID); err != nil {
		return nil, err
	}
	if av.Activity, err = p.activityRows(ctx, lang, s.UserID); err != nil {
		return nil, err
	}
	return av, nil
}

// levelHint says what a level means and how to raise it.
func levelHint(level int) string {
	switch {
	case level <= 1:
		return "centre.level_hint1"
	case level == 2:
		return "centre.level_hint2"
	default:
		return "centre.level_hint3"
	}
}

// accountLinks links the pages that are turned on; acting-for only for
// people who are agents of an enterprise.
func (p *Pages) accountLinks(ctx context.Context, s *users.Session, av *centreView) error {
	if p.passwords != nil {
		av.PasswordURL = passwordPath
	}
	if p.totp != nil {
		av.SecurityURL = securityPath
	}
	if p.passkeys != nil {
		av.PasskeysURL = passkeysPath
	}
	if p.signing {
		av.SignRequestsURL = signRequestsPath
	}
	if p.licences {
		av.LicencesURL = licencesPath
	}
	if p.certificates {
		av.CertificatesURL = certificatesPath
	}
	if p.acting == nil {
		return nil
	}
	options, err := p.acting.ActingOptions(ctx, s.UserID)
	if err != nil {
		return err
	}
	if len(options) > 0 {
		av.ActingURL = actingPath + "?return_to=" + accountPath
	}
	return nil
}

func (p *Pages) sessionRows(ctx context.Context, lang string, current *users.Session) ([]sessionRow, error) {
	list, err := p.account.ListSessions(ctx, current.UserID)
	if err != nil {
		return nil, err
	}
	rows := make([]sessionRow, 0, len(list))
	for _, s := range list {
		device := deviceName(s.UserAgent)
		if device == "" {
			device = msg(lang, "centre.unknown_device")
		}
		rows = append(rows, sessionRow{ID: s.ID, Device: device, IP: s.IP, Current: s.ID == current.ID,
			SignedIn: localTime(s.AuthTime), LastSeen: localTime(s.LastSeenAt)})
	}
	return rows, nil
}

func (p *Pages) appRows(ctx context.Context, lang, userID string) ([]appRow, error) {
	apps, err := p.account.AuthorisedApps(ctx, userID)
	if err != nil {
		return nil, err
	}
	rows := make([]appRow, len(apps))
	for i, a := range apps {
		name := a.Name
		if name == "" {
			name = a.ClientID
		}
		rows[i] = appRow{ClientID: a.ClientID, Name: name, Scopes: scopeWords(lang, a.Scopes), Granted: localTime(a.GrantedAt)}
	}
	return rows, nil
}

func (p *Pages) activityRows(ctx context.Context, lang, userID string) ([]activityRow, error) {
	events, err := p.account.RecentActivity(ctx, userID, recentActivitySize)
	if err != nil {
		return nil, err
	}
	rows := make([]activityRow, len(events))
	for i, e := range events {
		rows[i] = activityRow{At: localTime(e.At), Action: activityWords(lang, e.Action, e.Result), IP: e.IP}
	}
	return rows, nil
}

// activityWords says an audit action in plain words: the catalogue's text
// for the action and its result, or for the action, or else its name.
func activityWords(lang, action, result string) string {
	for _, key := range []string{"activity." + action + "." + result, "activity." + action} {
		if w, ok := catalogue[lang][key]; ok {
			return w
		}
	}
	return action
}

// localTime shows a time as people in the city read it.
func localTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(chinaTime).Format(timeLayout)
}

// accountSignOut ends one of the person's sessions, telling the department
// systems that shared it. Ending the current one signs this browser out.
func (p *Pages) accountSignOut(w http.ResponseWriter, r *http.Request) {
	form, ok := p.readForm(w, r)
	if !ok {
		return
	}
	s, ok := p.accountSession(w, r, accountPath)
	if !ok {
		return
	}
	target, err := p.ownSession(r.Context(), s.UserID, r.PostForm.Get("session"))
	if errors.Is(err, errNotYourSession) {
		p.fail(w, r, http.StatusForbidden, form.lang, "centre.forbidden_title", "centre.not_your_session")
		return
	}
	if err == nil {
		err = p.endSession(r, target)
	}
	if err != nil {
		p.failInternal(w, r, form.lang, "end session from account centre", err)
		return
	}
	if target.ID == s.ID {
		p.clearSessionCookie(w)
		seeOther(w, loginURL(accountPath))
		return
	}
	seeOther(w, accountPath)
}

// ownSession finds id among the person's live sessions; anyone else's
// session, or a dead one, is errNotYourSession.
func (p *Pages) ownSession(ctx context.Context, userID, id string) (*users.Session, error) {
	list, err := p.account.ListSessions(ctx, userID)
	if err != nil {
		return nil, err
	}
	for _, s := range list {
		if s.ID == id && s.UserID == userID {
			return s, nil
		}
	}
	return nil, errNotYourSession
}

// accountSignOutOthers ends every session of the person but this one.
func (p *Pages) accountSignOutOthers(w http.ResponseWriter, r *http.Request) {
	form, ok := p.readForm(w, r)
	if !ok {
		return
	}
	s, ok := p.accountSession(w, r, accountPath)
	if !ok {
		return
	}
	if _, err := p.endOtherSessions(r, s); err != nil {
		p.failInternal(w, r, form.lang, "end other sessions", err)
		return
	}
	seeOther(w, accountPath)
}

// accountRevokeApp withdraws the person's consent for one client.
func (p *Pages) accountRevokeApp(w http.ResponseWriter, r *http.Request) {
	form, ok := p.readForm(w, r)
	if !ok {
		return
	}
	s, ok := p.accountSession(w, r, accountPath)
	if !ok {
		return
	}
	clientID := strings.TrimSpace(r.PostForm.Get("client"))
	if clientID == "" || len(clientID) > 256 {
		p.fail(w, r, http.StatusBadRequest, form.lang, "error.title", "error.form")
		return
	}
	if err := p.account.RevokeApp(r.Context(), s.UserID, clientID, accountMeta(r)); err != nil {
		p.failInternal(w, r, form.lang, "revoke app", err)
		return
	}
	seeOther(w, accountPath)
}

// deviceName names a browser and system from a user agent in a few words,
// "" when it recognises neither. It guesses, as every such parser does;
// it only helps people tell their devices apart.
func deviceName(ua string) string {
	var words []string
	if b := firstMatch(ua, browsers); b != "" {
		words = append(words, b)
	}
	if o := firstMatch(ua, systems); o != "" {
		words = append(words, o)
	}
	return strings.Join(words, " · ")
}

// uaMark is a user-agent fragment and the name it stands for.
type uaMark struct{ fragment, name string }

// browsers and systems are tried in order: Edge and WeChat also say
// Chrome, Chrome also says Safari, HarmonyOS and Android also say Linux.
var (
	browsers = []uaMark{{"MicroMessenger", "WeChat"}, {"Edg", "Edge"}, {"OPR/", "Opera"}, {"Firefox/", "Firefox"},
		{"FxiOS", "Firefox"}, {"CriOS", "Chrome"}, {"Chrome/", "Chrome"}, {"Safari/", "Safari"}}
	systems = []uaMark{{"HarmonyOS", "HarmonyOS"}, {"Android", "Android"}, {"iPhone", "iOS"}, {"iPad", "iPadOS"},
		{"Windows", "Windows"}, {"Mac OS X", "macOS"}, {"CrOS", "ChromeOS"}, {"Linux", "Linux"}}
)

func firstMatch(ua string, marks []uaMark) string {
	for _, m := range marks {
		if strings.Contains(ua, m.fragment) {
			return m.name
		}
	}
	return ""
}

// pageParts are the sub-templates a page uses besides its own file.
var pageParts = map[string][]string{
	pageAccount: {"templates/account_sections.html"},
}
