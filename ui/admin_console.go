package ui

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/govsso/sso/admin"
	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/oauth"
	"github.com/govsso/sso/users"
)

// The admin console at /admin: thin pages over the admin API's own
// operations, run in process by admin.API.Invoke, so that every click is
// authorised, validated and audited exactly as the same API call would
// be. The console only decides which links and buttons to show; hidden or
// not, the operation checks the rights again.

const (
	consolePath  = "/admin"
	pageConsole  = "admin.html"
	consolePage  = 50 // users per page
	maxTreeDepth = 8  // deeper units are drawn at this indent
)

// AdminConsole serves the admin console.
type AdminConsole struct {
	p    *Pages
	api  *admin.API
	tmpl *template.Template
}

// consoleView is a console page: the common view plus its own fields.
type consoleView struct {
	view
	Page   string   // which part of admin.html to show
	Title  string   // catalogue key of the page title
	Notice string   // a success message, already translated
	Errors []string // labels of the fields a problem named, translated
	// Invalid are the form fields a problem named, in order.
	Invalid []string

	CanUsers, CanOrgs, CanClients, CanAudit bool
	CanCreateRoot                           bool

	Users     []userRow
	NextURL   string
	Search    userSearch
	User      *userRow
	Reveal    bool
	ResetURL  string
	Units     []unitRow
	Unit      *unitRow
	Clients   []clientRow
	Secret    string
	SecretFor string
	Audit     []auditRow
	AuditQ    auditSearch
	CSVURL    string
	Levels    []int
	Kinds     []string
	Statuses  []string
	OrgKinds  []string
	OrgRoles  []string
	Form      url.Values // what the person typed, shown again after an error

	// Members are the people of Unit; GrantRoles the roles the actor may
	// give there.
	Members    []memberRow
	GrantRoles []string
}

type userRow struct {
	ID, Username, DisplayName, Kind, Status, Email, Phone, IDNumber string
	Level                                                           int
	IsAdmin, CanChange                                              bool
}

type userSearch struct {
	By, Q, OrgUnit, Kind, Status string
}

type unitRow struct {
	ID, Name, Code, Kind, ParentID, Path string
	Depth                                int
	CanWrite, CanCreate, CanMembers      bool
}

// memberRow is one person of a unit; CanChange says whether the actor may
// change or take away the role held.
type memberRow struct {
	UserID, Username, DisplayName, Role, Status, AddedAt string
	CanChange                                            bool
}

type clientRow struct {
	ID, Name, OrgUnit  string
	Disabled, CanWrite bool
}

type auditRow struct {
	Seq                                              int64
	At, Actor, Subject, ClientID, Action, Result, IP string
}

type auditSearch struct {
	Actor, Subject, Action, Result, Since, Until string
}

// NewAdminConsole returns the console, which uses p's sessions, CSRF
// protection, languages and error pages.
func NewAdminConsole(p *Pages, api *admin.API) (*AdminConsole, error) {
	if p == nil || api == nil {
		return nil, errors.New("ui: NewAdminConsole needs the pages and the admin API")
	}
	tmpl, err := template.New("layout.html").Funcs(consoleFuncs).ParseFS(templateFS, "templates/layout.html", "templates/"+pageConsole)
	if err != nil {
		return nil, fmt.Errorf("ui: parse %s: %w", pageConsole, err)
	}
	return &AdminConsole{p: p, api: api, tmpl: tmpl}, nil
}

// consoleFuncs are the helpers of admin.html: dict passes several values
// to a shared part, indent draws a unit's depth in a drop-down.
var consoleFuncs = template.FuncMap{
	"dict": func(kv ...any) map[string]any {
		m := make(map[string]any, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			m[fmt.Sprint(kv[i])] = kv[i+1]
		}
		return m
	},
	"indent": func(depth int) string { return strings.Repeat("\u00a0\u00a0", depth) },
}

// Register adds the console to mux.
func (c *AdminConsole) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+consolePath, c.home)
	mux.HandleFunc("GET "+consolePath+"/users", c.users)
	mux.HandleFunc("GET "+consolePath+"/users/new", c.newUser)
	mux.HandleFunc("POST "+consolePath+"/users", c.createUser)
	mux.HandleFunc("GET "+consolePath+"/users/{id}", c.user)
	mux.HandleFunc("POST "+consolePath+"/users/{id}/{action}", c.userAction)
	mux.HandleFunc("GET "+consolePath+"/org-units", c.orgUnits)
	mux.HandleFunc("GET "+consolePath+"/org-units/{id}", c.orgUnit)
	mux.HandleFunc("POST "+consolePath+"/org-units", c.createOrgUnit)
	mux.HandleFunc("POST "+consolePath+"/org-units/{id}/{action}", c.orgUnitAction)
	mux.HandleFunc("POST "+consolePath+"/org-units/{id}/members/{user_id}/{action}", c.memberAction)
	mux.HandleFunc("GET "+consolePath+"/clients", c.clients)
	mux.HandleFunc("POST "+consolePath+"/clients", c.createClient)
	mux.HandleFunc("POST "+consolePath+"/clients/{id}/{action}", c.clientAction)
	mux.HandleFunc("GET "+consolePath+"/audit", c.audit)
}

// consoleRequest is a console request after its checks: who asks, with
// which roles, in which language.
type consoleRequest struct {
	lang  string
	actor admin.Actor
	v     consoleView
}

// begin finds the signed-in administrator; on false the answer (the
// sign-in redirect or the refusal) has been written. A POST's form and
// CSRF token are checked first.
func (c *AdminConsole) begin(w http.ResponseWriter, r *http.Request, page, title string) (*consoleRequest, bool) {
	var lang string
	if r.Method == http.MethodPost {
		f, ok := c.p.readForm(w, r)
		if !ok {
			return nil, false
		}
		lang = f.lang
	} else {
		lang = c.p.chooseLang(w, r, "/")
	}
	back := r.URL.Path
	if r.Method == http.MethodPost {
		back = consolePath
	}
	s, ok := c.p.accountSession(w, r, back)
	if !ok {
		return nil, false
	}
	a, err := c.api.ActorFor(r.Context(), s.UserID)
	if err != nil {
		var p *admin.Problem
		if errors.As(err, &p) && p.Status == http.StatusForbidden {
			c.p.fail(w, r, http.StatusForbidden, lang, "console.forbidden_title", "console.no_role")
			return nil, false
		}
		c.p.fail(w, r, http.StatusUnauthorized, lang, "console.forbidden_title", "console.sign_in_again")
		return nil, false
	}
	v := consoleView{view: c.p.newView(r.URL.Path, lang, "/"), Page: page, Title: title}
	v.CSRF = c.p.csrfToken(w, r)
	v.CanUsers = a.Has(admin.RoleSuperAdmin) || a.Has(admin.RoleOrgAdmin)
	v.CanOrgs = v.CanUsers
	v.CanClients = v.CanUsers || a.Has(admin.RoleClientManager)
	v.CanAudit = admin.Allowed(a, admin.ActionAuditRead, admin.Target{})
	v.CanCreateRoot = admin.Allowed(a, admin.ActionOrgCreate, admin.Target{})
	v.Levels = []int{users.LevelSelfRegistered, users.LevelVerified, users.LevelInPerson}
	v.Kinds = []string{string(users.KindCitizen), string(users.KindEnterprise), string(users.KindStaff)}
	v.Statuses = []string{string(users.StatusActive), string(users.StatusDisabled), string(users.StatusDeleted)}
	v.OrgKinds = []string{"city", "department", "town", "street", "village", "community", "office"}
	v.OrgRoles = []string{"member", "admin", string(admin.RoleAuditor), string(admin.RoleClientManager)}
	if n := r.URL.Query().Get("done"); n != "" && doneKeys[n] {
		v.Notice = msg(lang, "console.done."+n)
	}
	return &consoleRequest{lang: lang, actor: a, v: v}, true
}

// doneKeys are the outcomes a redirect may announce with ?done=.
var doneKeys = map[string]bool{"created": true, "disabled": true, "enabled": true, "unlocked": true, "revoked": true,
	"level": true, "renamed": true, "moved": true, "deleted": true, "member_added": true, "member_changed": true, "member_removed": true}

// Field marks a form field the last problem named: invalid, described by
// the message, and the first of them focused, so that a person using the
// keyboard or a screen reader lands where the correction is needed.
func (v consoleView) Field(name string) template.HTMLAttr {
	for i, n := range v.Invalid {
		if n == name {
			if i == 0 {
				return ` aria-invalid="true" aria-describedby="console-error" autofocus`
			}
			return ` aria-invalid="true" aria-describedby="console-error"`
		}
	}
	return ""
}

// show renders a console page.
func (c *AdminConsole) show(w http.ResponseWriter, status int, cr *consoleRequest) {
	var buf strings.Builder
	if err := c.tmpl.ExecuteTemplate(&buf, "layout", cr.v); err != nil {
		c.p.log.Error("ui: render console", "page", cr.v.Page, "err", err)
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Language", cr.v.Lang)
	w.WriteHeader(status)
	w.Write([]byte(buf.String()))
}

// problem puts what went wrong, and what to do about it, on the page.
func (c *AdminConsole) problem(cr *consoleRequest, p *admin.Problem) int {
	kind := strings.TrimPrefix(p.Type, admin.ProblemBase)
	key := "console.err." + kind
	if _, ok := catalogue[cr.lang][key]; !ok {
		key = "console.err.internal"
	}
	cr.v.Message = msg(cr.lang, key)
	for _, f := range p.Errors {
		name, _, _ := strings.Cut(f.Field, "[") // "redirect_uris[0]"
		name, _, _ = strings.Cut(name, ".")
		cr.v.Invalid = append(cr.v.Invalid, name)
		label := msg(cr.lang, "console.field."+name)
		if _, ok := catalogue[cr.lang]["console.field."+name]; !ok {
			label = f.Field
		}
		if _, ok := catalogue[cr.lang]["console.why."+name]; ok {
			label = fmt.Sprintf(msg(cr.lang, "console.field_why"), label, msg(cr.lang, "console.why."+name))
		}
		cr.v.Errors = append(cr.v.Errors, label)
	}
	return p.Status
}

// fail shows an operation's problem on a page of its own, with the way
// back to the console.
func (c *AdminConsole) fail(w http.ResponseWriter, cr *consoleRequest, p *admin.Problem) {
	cr.v.Page, cr.v.Title = "problem", "console.err.title"
	c.show(w, c.problem(cr, p), cr)
}

func (c *AdminConsole) home(w http.ResponseWriter, r *http.Request) {
	cr, ok := c.begin(w, r, "home", "console.title")
	if !ok {
		return
	}
	c.show(w, http.StatusOK, cr)
}

// units returns the org units the actor may see, in tree order; an error
// is answered and reported as false.
func (c *AdminConsole) units(w http.ResponseWriter, r *http.Request, cr *consoleRequest) ([]unitRow, bool) {
	roots, err := c.api.VisibleOrgRoots(r.Context(), cr.actor)
	if err != nil {
		c.p.failInternal(w, r, cr.lang, "console org roots", err)
		return nil, false
	}
	var out []unitRow
	for _, id := range roots {
		res := c.api.Invoke(r, http.MethodGet, "/org-units/"+url.PathEscape(id), nil)
		if res.Problem != nil {
			c.fail(w, cr, res.Problem)
			return nil, false
		}
		var page struct {
			Items []*users.OrgUnit `json:"items"`
		}
		if err := res.Decode(&page); err != nil {
			c.p.failInternal(w, r, cr.lang, "console org units", err)
			return nil, false
		}
		base := 0 // an org admin's tree starts at its own unit
		if len(page.Items) > 0 {
			base = strings.Count(page.Items[0].Path, "/") - 2
		}
		for _, u := range page.Items {
			t := admin.Target{OrgPaths: []string{u.Path}}
			out = append(out, unitRow{ID: u.ID, Name: u.Name, Code: u.Code, Kind: u.Kind, ParentID: u.ParentID, Path: u.Path,
				Depth:      min(strings.Count(u.Path, "/")-2-base, maxTreeDepth),
				CanWrite:   admin.Allowed(cr.actor, admin.ActionOrgWrite, t),
				CanCreate:  admin.Allowed(cr.actor, admin.ActionOrgCreate, t),
				CanMembers: admin.Allowed(cr.actor, admin.ActionOrgMembers, t)})
		}
	}
	return out, true
}

func (c *AdminConsole) users(w http.ResponseWriter, r *http.Request) {
	cr, ok := c.begin(w, r, "users", "console.users")
	if !ok {
		return
	}
	units, ok := c.units(w, r, cr)
	if !ok {
		return
	}
	cr.v.Units = units
	q := r.URL.Query()
	s := userSearch{By: q.Get("by"), Q: strings.TrimSpace(q.Get("q")), OrgUnit: q.Get("org_unit"), Kind: q.Get("kind"), Status: q.Get("status")}
	api := url.Values{"limit": {strconv.Itoa(consolePage)}}
	switch s.By {
	case "name", "username", "phone", "id_number":
	default:
		s.By = "name"
	}
	if s.Q != "" {
		api.Set(s.By, s.Q)
	}
	// A name narrows a unit's list; the other keys find one account anywhere
	// in reach.
	if s.Q != "" && s.By != "name" {
		s.OrgUnit = ""
	} else if s.OrgUnit != "" {
		api.Set("org_unit", s.OrgUnit)
	} else if !admin.Allowed(cr.actor, admin.ActionUserSearch, admin.Target{}) && len(units) > 0 {
		// Who may not list everyone starts with the first unit in reach.
		s.OrgUnit = units[0].ID
		api.Set("org_unit", s.OrgUnit)
	}
	for _, k := range []string{"kind", "status", "after"} {
		if v := q.Get(k); v != "" {
			api.Set(k, v)
		}
	}
	cr.v.Search = s
	res := c.api.Invoke(r, http.MethodGet, "/users?"+api.Encode(), nil)
	if res.Problem != nil {
		c.show(w, c.problem(cr, res.Problem), cr)
		return
	}
	var page struct {
		Items []*users.User `json:"items"`
		Next  string        `json:"next"`
	}
	if err := res.Decode(&page); err != nil {
		c.p.failInternal(w, r, cr.lang, "console users", err)
		return
	}
	for _, u := range page.Items {
		cr.v.Users = append(cr.v.Users, maskedRow(u))
	}
	if page.Next != "" {
		next := url.Values{}
		for k, vs := range q {
			next[k] = vs
		}
		if s.OrgUnit != "" {
			next.Set("org_unit", s.OrgUnit)
		}
		next.Set("after", page.Next)
		cr.v.NextURL = consolePath + "/users?" + next.Encode()
	}
	c.show(w, http.StatusOK, cr)
}

// maskedRow shows a person as a list or page does before "reveal".
func maskedRow(u *users.User) userRow {
	row := userRow{ID: u.ID, Username: u.Username, DisplayName: u.DisplayName, Kind: string(u.Kind), Status: string(u.Status),
		Level: u.AssuranceLevel, IsAdmin: u.IsAdmin, IDNumber: u.IDNumber}
	if u.Phone != "" {
		row.Phone = users.MaskPhone(u.Phone)
	}
	if u.Email != "" {
		row.Email = maskEmail(u.Email)
	}
	return row
}

// maskEmail keeps the first character of the mailbox and the domain.
func maskEmail(s string) string {
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" {
		return "***"
	}
	r := []rune(local)
	return string(r[0]) + "***@" + domain
}

func (c *AdminConsole) newUser(w http.ResponseWriter, r *http.Request) {
	cr, ok := c.begin(w, r, "user-new", "console.user_new")
	if !ok {
		return
	}
	if cr.v.Units, ok = c.units(w, r, cr); !ok {
		return
	}
	cr.v.Form = url.Values{"org_unit_id": {r.URL.Query().Get("org_unit")}}
	c.show(w, http.StatusOK, cr)
}

func (c *AdminConsole) createUser(w http.ResponseWriter, r *http.Request) {
	cr, ok := c.begin(w, r, "user-new", "console.user_new")
	if !ok {
		return
	}
	f := r.PostForm
	body := map[string]string{}
	for _, k := range []string{"username", "kind", "display_name", "email", "phone", "id_number", "org_unit_id", "org_role"} {
		if v := strings.TrimSpace(f.Get(k)); v != "" {
			body[k] = v
		}
	}
	if body["org_unit_id"] == "" {
		delete(body, "org_role") // a role is held in a unit
	} else if body["org_role"] == "" {
		body["org_role"] = "member"
	}
	res := c.api.Invoke(r, http.MethodPost, "/users", body)
	if res.Problem != nil {
		if cr.v.Units, ok = c.units(w, r, cr); !ok {
			return
		}
		cr.v.Form = f
		c.show(w, c.problem(cr, res.Problem), cr)
		return
	}
	var u users.User
	if err := res.Decode(&u); err != nil {
		c.p.failInternal(w, r, cr.lang, "console create user", err)
		return
	}
	seeOther(w, consolePath+"/users/"+url.PathEscape(u.ID)+"?done=created")
}

// loadUser fetches a person through the API (which checks the right to
// read) and shows the problem when there is one.
func (c *AdminConsole) loadUser(w http.ResponseWriter, r *http.Request, cr *consoleRequest, id string) (*users.User, bool) {
	res := c.api.Invoke(r, http.MethodGet, "/users/"+url.PathEscape(id), nil)
	if res.Problem != nil {
		c.fail(w, cr, res.Problem)
		return nil, false
	}
	var u users.User
	if err := res.Decode(&u); err != nil {
		c.p.failInternal(w, r, cr.lang, "console user", err)
		return nil, false
	}
	return &u, true
}

func (c *AdminConsole) user(w http.ResponseWriter, r *http.Request) {
	cr, ok := c.begin(w, r, "user", "console.user")
	if !ok {
		return
	}
	u, ok := c.loadUser(w, r, cr, r.PathValue("id"))
	if !ok {
		return
	}
	c.showUser(w, r, cr, u, http.StatusOK)
}

func (c *AdminConsole) showUser(w http.ResponseWriter, r *http.Request, cr *consoleRequest, u *users.User, status int) {
	row := maskedRow(u)
	row.CanChange = c.api.MayChangeUser(r.Context(), cr.actor, u)
	cr.v.Page, cr.v.Title = "user", "console.user"
	cr.v.User = &row
	c.show(w, status, cr)
}

// userActions maps a button of the user page to its API operation.
var userActions = map[string]struct{ method, suffix, done string }{
	"disable":         {http.MethodPost, ":disable", "disabled"},
	"enable":          {http.MethodPost, ":enable", "enabled"},
	"unlock":          {http.MethodPost, ":unlock", "unlocked"},
	"revoke-sessions": {http.MethodPost, ":revoke-sessions", "revoked"},
	"set-level":       {http.MethodPost, ":set-level", "level"},
	"reset":           {http.MethodPost, "/password-reset", ""},
}

func (c *AdminConsole) userAction(w http.ResponseWriter, r *http.Request) {
	cr, ok := c.begin(w, r, "user", "console.user")
	if !ok {
		return
	}
	id, action := r.PathValue("id"), r.PathValue("action")
	if action == "reveal" {
		u, err := c.api.RevealUser(r, cr.actor, id)
		var p *admin.Problem
		if errors.As(err, &p) {
			c.fail(w, cr, p)
			return
		} else if err != nil {
			c.p.failInternal(w, r, cr.lang, "console reveal", err)
			return
		}
		row := userRow{ID: u.ID, Username: u.Username, DisplayName: u.DisplayName, Kind: string(u.Kind), Status: string(u.Status),
			Level: u.AssuranceLevel, IsAdmin: u.IsAdmin, Phone: u.Phone, Email: u.Email, IDNumber: u.IDNumber, CanChange: true}
		cr.v.User, cr.v.Reveal = &row, true
		c.show(w, http.StatusOK, cr)
		return
	}
	op, known := userActions[action]
	if !known {
		c.p.fail(w, r, http.StatusNotFound, cr.lang, "error.title", "console.err.not-found")
		return
	}
	var body any
	switch action {
	case "set-level":
		level, err := strconv.Atoi(r.PostForm.Get("level"))
		if err != nil {
			level = 0 // the API names the field
		}
		body = map[string]any{"level": level, "reason": r.PostForm.Get("reason")}
	case "reset":
		body = map[string]string{"method": "link"}
	}
	res := c.api.Invoke(r, op.method, "/users/"+url.PathEscape(id)+op.suffix, body)
	if res.Problem != nil {
		if u, ok := c.loadUser(w, r, cr, id); ok {
			status := c.problem(cr, res.Problem)
			cr.v.Form = r.PostForm
			c.showUser(w, r, cr, u, status)
		}
		return
	}
	if action == "reset" {
		var out struct {
			ResetURL string `json:"reset_url"`
		}
		if err := res.Decode(&out); err != nil {
			c.p.failInternal(w, r, cr.lang, "console reset", err)
			return
		}
		u, ok := c.loadUser(w, r, cr, id)
		if !ok {
			return
		}
		cr.v.ResetURL = out.ResetURL
		cr.v.Notice = msg(cr.lang, "console.done.reset")
		c.showUser(w, r, cr, u, http.StatusOK)
		return
	}
	seeOther(w, consolePath+"/users/"+url.PathEscape(id)+"?done="+op.done)
}

func (c *AdminConsole) orgUnits(w http.ResponseWriter, r *http.Request) {
	cr, ok := c.begin(w, r, "org-units", "console.orgs")
	if !ok {
		return
	}
	if cr.v.Units, ok = c.units(w, r, cr); !ok {
		return
	}
	c.show(w, http.StatusOK, cr)
}

func (c *AdminConsole) orgUnit(w http.ResponseWriter, r *http.Request) {
	cr, ok := c.begin(w, r, "org-unit", "console.org")
	if !ok {
		return
	}
	c.showUnit(w, r, cr, r.PathValue("id"), http.StatusOK)
}

// showUnit shows one unit with its forms; the unit must be in the
// actor's tree (the API's org.read).
func (c *AdminConsole) showUnit(w http.ResponseWriter, r *http.Request, cr *consoleRequest, id string, status int) {
	res := c.api.Invoke(r, http.MethodGet, "/org-units/"+url.PathEscape(id), nil)
	if res.Problem != nil {
		c.fail(w, cr, res.Problem)
		return
	}
	units, ok := c.units(w, r, cr)
	if !ok {
		return
	}
	cr.v.Page, cr.v.Title = "org-unit", "console.org"
	cr.v.Units = units
	for i := range units {
		if units[i].ID == id {
			cr.v.Unit = &units[i]
		}
	}
	if cr.v.Unit == nil { // in reach of the API but not of the tree: show what the API gave
		var page struct {
			Items []*users.OrgUnit `json:"items"`
		}
		if err := res.Decode(&page); err != nil || len(page.Items) == 0 {
			c.p.failInternal(w, r, cr.lang, "console org unit", err)
			return
		}
		u := page.Items[0]
		cr.v.Unit = &unitRow{ID: u.ID, Name: u.Name, Code: u.Code, Kind: u.Kind, ParentID: u.ParentID, Path: u.Path}
	}
	if !c.members(w, r, cr) {
		return
	}
	c.show(w, status, cr)
}

// members puts the first page of the unit's members (or the page after
// ?after=) on the unit's page, with what the actor may do to each; an
// error is answered and reported as false.
func (c *AdminConsole) members(w http.ResponseWriter, r *http.Request, cr *consoleRequest) bool {
	unit := cr.v.Unit
	q := url.Values{"limit": {strconv.Itoa(consolePage)}}
	if after := r.URL.Query().Get("after"); after != "" && r.Method == http.MethodGet {
		q.Set("after", after)
	}
	res := c.api.Invoke(r, http.MethodGet, "/org-units/"+url.PathEscape(unit.ID)+"/members?"+q.Encode(), nil)
	if res.Problem != nil {
		c.fail(w, cr, res.Problem)
		return false
	}
	var page struct {
		Items []users.Member `json:"items"`
		Next  string         `json:"next"`
	}
	if err := res.Decode(&page); err != nil {
		c.p.failInternal(w, r, cr.lang, "console members", err)
		return false
	}
	for _, m := range page.Items {
		cr.v.Members = append(cr.v.Members, memberRow{UserID: m.UserID, Username: m.Username, DisplayName: m.DisplayName, Role: m.Role,
			Status: string(m.Status), AddedAt: m.AddedAt.Format(time.DateOnly),
			CanChange: unit.CanMembers && m.Status != users.StatusDeleted && admin.MayGrant(cr.actor, unit.Path, m.Role) &&
				c.api.MayChangeMember(r.Context(), cr.actor, m.UserID)})
	}
	if page.Next != "" {
		cr.v.NextURL = consolePath + "/org-units/" + url.PathEscape(unit.ID) + "?" + url.Values{"after": {page.Next}}.Encode()
	}
	for _, role := range cr.v.OrgRoles {
		if unit.CanMembers && admin.MayGrant(cr.actor, unit.Path, role) {
			cr.v.GrantRoles = append(cr.v.GrantRoles, role)
		}
	}
	return true
}

// addMember puts the person named by username in the unit with the
// chosen role; the username is looked up as the API's search would.
func (c *AdminConsole) addMember(r *http.Request, unitID string) (admin.Result, string) {
	username := strings.TrimSpace(r.PostForm.Get("username"))
	notFound := func(reason string) admin.Result {
		p := &admin.Problem{Type: admin.ProblemBase + "validation", Title: "Invalid request", Status: http.StatusBadRequest,
			Errors: []admin.FieldError{{Field: "username", Reason: reason}}}
		return admin.Result{Status: p.Status, Problem: p}
	}
	if username == "" {
		return notFound("is required"), ""
	}
	res := c.api.Invoke(r, http.MethodGet, "/users?"+url.Values{"username": {username}}.Encode(), nil)
	if res.Problem != nil {
		return res, ""
	}
	var page struct {
		Items []*users.User `json:"items"`
	}
	if err := res.Decode(&page); err != nil || len(page.Items) == 0 {
		// Not found, or not someone the actor may see: the same answer.
		return notFound("is not a person you manage"), ""
	}
	res = c.api.Invoke(r, http.MethodPut, "/org-units/"+url.PathEscape(unitID)+"/members/"+url.PathEscape(page.Items[0].ID),
		map[string]string{"role": r.PostForm.Get("role")})
	if res.Status == http.StatusCreated {
		return res, "member_added"
	}
	return res, "member_changed"
}

// memberAction changes the role a person holds in a unit, or takes the
// person out of it.
func (c *AdminConsole) memberAction(w http.ResponseWriter, r *http.Request) {
	cr, ok := c.begin(w, r, "org-unit", "console.org")
	if !ok {
		return
	}
	id := r.PathValue("id")
	path := "/org-units/" + url.PathEscape(id) + "/members/" + url.PathEscape(r.PathValue("user_id"))
	var res admin.Result
	var done string
	switch r.PathValue("action") {
	case "role":
		res, done = c.api.Invoke(r, http.MethodPut, path, map[string]string{"role": r.PostForm.Get("role")}), "member_changed"
	case "remove":
		res, done = c.api.Invoke(r, http.MethodDelete, path, nil), "member_removed"
	default:
		c.p.fail(w, r, http.StatusNotFound, cr.lang, "error.title", "console.err.not-found")
		return
	}
	if res.Problem != nil {
		status := c.problem(cr, res.Problem)
		c.showUnit(w, r, cr, id, status)
		return
	}
	seeOther(w, consolePath+"/org-units/"+url.PathEscape(id)+"?done="+done)
}

func (c *AdminConsole) createOrgUnit(w http.ResponseWriter, r *http.Request) {
	cr, ok := c.begin(w, r, "org-units", "console.orgs")
	if !ok {
		return
	}
	f := r.PostForm
	body := map[string]string{"parent_id": f.Get("parent_id"), "code": strings.TrimSpace(f.Get("code")),
		"name": strings.TrimSpace(f.Get("name")), "kind": f.Get("kind")}
	res := c.api.Invoke(r, http.MethodPost, "/org-units", body)
	if res.Problem != nil {
		status := c.problem(cr, res.Problem)
		if cr.v.Units, ok = c.units(w, r, cr); !ok {
			return
		}
		cr.v.Form = f
		if pid := f.Get("parent_id"); pid != "" {
			c.showUnit(w, r, cr, pid, status)
			return
		}
		c.show(w, status, cr)
		return
	}
	var u users.OrgUnit
	if err := res.Decode(&u); err != nil {
		c.p.failInternal(w, r, cr.lang, "console create unit", err)
		return
	}
	seeOther(w, consolePath+"/org-units/"+url.PathEscape(u.ID)+"?done=created")
}

func (c *AdminConsole) orgUnitAction(w http.ResponseWriter, r *http.Request) {
	cr, ok := c.begin(w, r, "org-unit", "console.org")
	if !ok {
		return
	}
	id := r.PathValue("id")
	var res admin.Result
	done, next := "", consolePath+"/org-units/"+url.PathEscape(id)
	switch r.PathValue("action") {
	case "rename":
		res = c.api.Invoke(r, http.MethodPatch, "/org-units/"+url.PathEscape(id), map[string]string{"name": strings.TrimSpace(r.PostForm.Get("name"))})
		done = "renamed"
	case "move":
		res = c.api.Invoke(r, http.MethodPatch, "/org-units/"+url.PathEscape(id), map[string]string{"parent_id": r.PostForm.Get("parent_id")})
		done = "moved"
	case "delete":
		res = c.api.Invoke(r, http.MethodDelete, "/org-units/"+url.PathEscape(id), nil)
		done, next = "deleted", consolePath+"/org-units"
	case "members":
		res, done = c.addMember(r, id)
	default:
		c.p.fail(w, r, http.StatusNotFound, cr.lang, "error.title", "console.err.not-found")
		return
	}
	if res.Problem != nil {
		status := c.problem(cr, res.Problem)
		cr.v.Form = r.PostForm
		c.showUnit(w, r, cr, id, status)
		return
	}
	seeOther(w, next+"?done="+done)
}

func (c *AdminConsole) clients(w http.ResponseWriter, r *http.Request) {
	cr, ok := c.begin(w, r, "clients", "console.clients")
	if !ok {
		return
	}
	c.showClients(w, r, cr, http.StatusOK)
}

func (c *AdminConsole) showClients(w http.ResponseWriter, r *http.Request, cr *consoleRequest, status int) {
	cr.v.Page, cr.v.Title = "clients", "console.clients"
	res := c.api.Invoke(r, http.MethodGet, "/clients", nil)
	if res.Problem != nil {
		c.fail(w, cr, res.Problem)
		return
	}
	var page struct {
		Items []*oauth.Client `json:"items"`
	}
	if err := res.Decode(&page); err != nil {
		c.p.failInternal(w, r, cr.lang, "console clients", err)
		return
	}
	units, ok := c.units(w, r, cr)
	if !ok {
		return
	}
	cr.v.Units = units
	names := map[string]string{}
	for _, u := range units {
		names[u.ID] = u.Name
	}
	for _, cl := range page.Items {
		row := clientRow{ID: cl.ID, Name: cl.Name, OrgUnit: names[cl.OrgUnitID], Disabled: cl.Disabled}
		if row.OrgUnit == "" {
			row.OrgUnit = cl.OrgUnitID
		}
		// Who could list it may change it: the API gives client.read and
		// client.write the same rule, and checks again on every change.
		row.CanWrite = true
		cr.v.Clients = append(cr.v.Clients, row)
	}
	c.show(w, status, cr)
}

// lines splits a textarea into its non-empty lines.
func lines(s string) []string {
	var out []string
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func (c *AdminConsole) createClient(w http.ResponseWriter, r *http.Request) {
	cr, ok := c.begin(w, r, "clients", "console.clients")
	if !ok {
		return
	}
	f := r.PostForm
	body := map[string]any{"id": strings.TrimSpace(f.Get("id")), "name": strings.TrimSpace(f.Get("name")),
		"redirect_uris": lines(f.Get("redirect_uris")), "post_logout_redirect_uris": lines(f.Get("post_logout_redirect_uris")),
		"scopes": strings.Fields(f.Get("scopes")), "first_party": f.Get("first_party") == "on", "org_unit_id": f.Get("org_unit_id")}
	res := c.api.Invoke(r, http.MethodPost, "/clients", body)
	if res.Problem != nil {
		status := c.problem(cr, res.Problem)
		cr.v.Form = f
		c.showClients(w, r, cr, status)
		return
	}
	c.showSecret(w, r, cr, res, "console.done.client_created")
}

// showSecret shows a new client secret, once: it is stored hashed.
func (c *AdminConsole) showSecret(w http.ResponseWriter, r *http.Request, cr *consoleRequest, res admin.Result, notice string) {
	var out struct {
		ID     string `json:"id"`
		Secret string `json:"client_secret"`
	}
	if err := res.Decode(&out); err != nil {
		c.p.failInternal(w, r, cr.lang, "console client secret", err)
		return
	}
	cr.v.Page, cr.v.Title = "secret", "console.secret_title"
	cr.v.Secret, cr.v.SecretFor = out.Secret, out.ID
	cr.v.Notice = msg(cr.lang, notice)
	c.show(w, http.StatusOK, cr)
}

func (c *AdminConsole) clientAction(w http.ResponseWriter, r *http.Request) {
	cr, ok := c.begin(w, r, "clients", "console.clients")
	if !ok {
		return
	}
	id := url.PathEscape(r.PathValue("id"))
	var res admin.Result
	switch r.PathValue("action") {
	case "disable", "enable":
		res = c.api.Invoke(r, http.MethodPatch, "/clients/"+id, map[string]bool{"disabled": r.PathValue("action") == "disable"})
	case "rotate":
		res = c.api.Invoke(r, http.MethodPost, "/clients/"+id+":rotate-secret", nil)
		if res.Problem == nil {
			c.showSecret(w, r, cr, res, "console.done.rotated")
			return
		}
	default:
		c.p.fail(w, r, http.StatusNotFound, cr.lang, "error.title", "console.err.not-found")
		return
	}
	if res.Problem != nil {
		status := c.problem(cr, res.Problem)
		c.showClients(w, r, cr, status)
		return
	}
	seeOther(w, consolePath+"/clients?done="+r.PathValue("action")+"d")
}

func (c *AdminConsole) audit(w http.ResponseWriter, r *http.Request) {
	cr, ok := c.begin(w, r, "audit", "console.audit")
	if !ok {
		return
	}
	q := r.URL.Query()
	s := auditSearch{Actor: q.Get("actor"), Subject: q.Get("subject"), Action: q.Get("action"), Result: q.Get("result"),
		Since: q.Get("since"), Until: q.Get("until")}
	cr.v.AuditQ = s
	api := url.Values{}
	for k, v := range map[string]string{"actor": s.Actor, "subject": s.Subject, "action": s.Action, "result": s.Result} {
		if v = strings.TrimSpace(v); v != "" {
			api.Set(k, v)
		}
	}
	// The form asks for days; the API takes RFC 3339 times.
	for k, v := range map[string]string{"since": s.Since, "until": s.Until} {
		if v == "" {
			continue
		}
		d, err := time.Parse(time.DateOnly, v)
		if err != nil {
			api.Set(k, v) // the API names the field
			continue
		}
		if k == "until" {
			d = d.Add(24 * time.Hour)
		}
		api.Set(k, d.UTC().Format(time.RFC3339))
	}
	csv := url.Values{}
	for k, vs := range api {
		csv[k] = vs
	}
	csv.Set("format", "csv")
	if v := q.Get("after"); v != "" {
		api.Set("after", v)
	}
	api.Set("limit", strconv.Itoa(consolePage))
	res := c.api.Invoke(r, http.MethodGet, "/audit?"+api.Encode(), nil)
	if res.Problem != nil {
		c.show(w, c.problem(cr, res.Problem), cr)
		return
	}
	var page struct {
		Items []audit.Event `json:"items"`
		Next  string        `json:"next"`
	}
	if err := res.Decode(&page); err != nil {
		c.p.failInternal(w, r, cr.lang, "console audit", err)
		return
	}
	for _, e := range page.Items {
		cr.v.Audit = append(cr.v.Audit, auditRow{Seq: e.Seq, At: e.OccurredAt.Local().Format("2006-01-02 15:04:05"), Actor: e.Actor,
			Subject: e.Subject, ClientID: e.ClientID, Action: e.Action, Result: e.Result, IP: e.IP})
	}
	cr.v.CSVURL = admin.Prefix + "/audit?" + csv.Encode()
	if page.Next != "" {
		next := url.Values{}
		for k, vs := range q {
			next[k] = vs
		}
		next.Set("after", page.Next)
		cr.v.NextURL = consolePath + "/audit?" + next.Encode()
	}
	c.show(w, http.StatusOK, cr)
}
