package ui

import (
	"context"
	"crypto/rand"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/govsso/sso/admin"
	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/kek"
	"github.com/govsso/sso/oauth"
	"github.com/govsso/sso/users"
)

// consoleFixture is the admin console over a real admin API and database,
// with the org tree city ⊃ townA ⊃ villageA, city ⊃ townB, and people:
// staff in each town, a town A admin, an auditor, a client manager, a
// super admin sitting in villageA and a person without an admin role.
type consoleFixture struct {
	*fixture
	api                                     *admin.API
	store                                   *users.SQLStore
	audit                                   *audit.Log
	city, townA, villageA, townB            *users.OrgUnit
	staffA, staffB, townAdmin, auditor, mgr *users.User
	boss, nobody                            *users.User
	cookies                                 map[string]*http.Cookie // role name → session cookie
}

func newConsoleFixture(t *testing.T, d *db.DB) *consoleFixture {
	t.Helper()
	ctx := context.Background()
	key := make([]byte, 32)
	rand.Read(key)
	k, err := kek.New(key)
	if err != nil {
		t.Fatal(err)
	}
	f := &consoleFixture{fixture: newFixture(t, false), store: users.NewSQLStore(d, k), audit: audit.NewLog(d), cookies: map[string]*http.Cookie{}}
	clients, secrets := oauth.NewSQLStore(d, k), oauth.NewSecretHasher(k.Derive("test client secret"))
	f.api = admin.New(admin.Config{
		DB: d, Users: f.store, OrgUnits: users.NewOrgUnits(d), Assurance: users.NewAssurance(d, f.store, nil, f.audit),
		Sessions: users.NewSessions(d, users.SessionOptions{}), Lockout: users.NewLockout(d, users.LockoutPolicy{}),
		Clients: clients, Secrets: secrets, Audit: f.audit, SecretOverlap: time.Hour,
		ResetLinks: users.NewResetLinks(d, 0), ResetURL: "http://example.com/reset",
		BrowserUser: f.pages.CurrentSession,
	})
	console, err := NewAdminConsole(f.pages, f.api)
	if err != nil {
		t.Fatal(err)
	}
	console.Register(f.mux)
	f.api.Register(f.mux) // the audit log's CSV export link leads to the API
	unit := func(parent *users.OrgUnit, code, kind string) *users.OrgUnit {
		pid := ""
		if parent != nil {
			pid = parent.ID
		}
		u, err := f.api.OrgUnits.Create(ctx, pid, code, "unit "+code, kind)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	f.city = unit(nil, "city", "city")
	f.townA = unit(f.city, "townA", "town")
	f.villageA = unit(f.townA, "villageA", "village")
	f.townB = unit(f.city, "townB", "town")
	person := func(name string, in *users.OrgUnit, role string) *users.User {
		u := &users.User{Username: name, Kind: users.KindStaff, DisplayName: "name of " + name, Phone: "138" + phoneTail(name)}
		if err := f.store.Create(ctx, u); err != nil {
			t.Fatal(err)
		}
		if in != nil {
			if err := f.api.OrgUnits.AddMember(ctx, in.ID, u.ID, role); err != nil {
				t.Fatal(err)
			}
		}
		return u
	}
	f.staffA = person("staff-a", f.villageA, "member")
	f.staffB = person("staff-b", f.townB, "member")
	f.townAdmin = person("town-admin", f.townA, "admin")
	f.auditor = person("auditor", f.city, "auditor")
	f.mgr = person("client-mgr", f.city, "client_manager")
	f.boss = person("boss", f.villageA, "member")
	f.nobody = person("nobody", nil, "")
	if _, err := f.store.Update(ctx, f.boss.ID, func(u *users.User) error { u.IsAdmin = true; return nil }); err != nil {
		t.Fatal(err)
	}
	for role, u := range map[string]*users.User{"super": f.boss, "town": f.townAdmin, "auditor": f.auditor, "clients": f.mgr, "none": f.nobody} {
		_, token := f.sessions.start(t, u.ID)
		f.cookies[role] = &http.Cookie{Name: sessionCookie, Value: token}
	}
	return f
}

// phoneTail makes a distinct 8-digit tail from a name.
func phoneTail(name string) string {
	n := uint32(2166136261)
	for _, r := range name {
		n = (n ^ uint32(r)) * 16777619
	}
	return fmt.Sprintf("%08d", n%100000000)
}

// as fetches a console page as role.
func (f *consoleFixture) as(role, target string) (*http.Response, string) {
	f.t.Helper()
	return f.get(target, f.cookies[role], &http.Cookie{Name: langCookie, Value: langEN})
}

// postAs submits a console form as role, with a valid CSRF token.
func (f *consoleFixture) postAs(role, path string, form url.Values) (*http.Response, string) {
	f.t.Helper()
	return f.post(path, form, f.cookies[role], &http.Cookie{Name: langCookie, Value: langEN})
}

func (f *consoleFixture) status(id string) users.Status {
	f.t.Helper()
	u, err := f.store.Get(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return u.Status
}

func TestConsolePagesFollowTheAdminRights(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newConsoleFixture(t, d)
		cases := []struct {
			name, role, path string
			status           int
			shows, hides     []string
		}{
			{"super admin lists everyone", "super", "/admin/users", 200, []string{"staff-a", "staff-b"}, nil},
			{"town admin lists its town only", "town", "/admin/users", 200, []string{"staff-a"}, []string{"staff-b"}},
			{"town admin may not ask for another town", "town", "/admin/users?org_unit=" + f.townB.ID, 403, []string{"You may not do this"}, []string{"staff-b"}},
			{"super admin searches by the start of the name", "super", "/admin/users?by=name&q=name+of+staff", 200, []string{">staff-a</a>", ">staff-b</a>"}, []string{">boss</a>"}},
			{"town admin's name search keeps to its town", "town", "/admin/users?by=name&q=name+of+staff", 200, []string{">staff-a</a>"}, []string{">staff-b</a>"}},
			{"town admin finds no one outside by username", "town", "/admin/users?by=username&q=staff-b", 200, []string{"No users match."}, []string{">staff-b</a>"}},
			{"town admin opens another town's person", "town", "/admin/users/" + f.staffB.ID, 403, []string{"You may not do this"}, []string{"name of staff-b"}},
			{"town admin opens its own person with buttons", "town", "/admin/users/" + f.staffA.ID, 200, []string{"name of staff-a", "Disable", "Show in full"}, nil},
			{"town admin reads a super admin without buttons", "town", "/admin/users/" + f.boss.ID, 200, []string{"name of boss", "You may look at this user but not change it."}, []string{">Disable<"}},
			{"town admin's tree is its subtree", "town", "/admin/org-units", 200, []string{"unit townA", "unit villageA"}, []string{"unit townB", "unit city"}},
			{"town admin has no audit log", "town", "/admin/audit", 403, []string{"You may not do this"}, nil},
			{"auditor reads the audit log", "auditor", "/admin/audit", 200, []string{"Export CSV", "user.create"}, nil},
			{"auditor sees no user links", "auditor", "/admin", 200, []string{"Audit log"}, []string{`href="/admin/users"`, `href="/admin/clients"`}},
			{"auditor may not list users", "auditor", "/admin/users", 403, []string{"You may not do this"}, nil},
			{"client manager lists clients", "clients", "/admin/clients", 200, []string{"Register a client"}, nil},
			{"a person without a role is refused", "none", "/admin", 403, []string{"Your account has no administrator role."}, nil},
		}
		// An event for the auditor to read.
		if _, err := f.audit.Append(context.Background(), audit.Event{Actor: "test", Action: audit.ActionUserCreate, Result: audit.ResultSuccess}); err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				resp, body := f.as(c.role, c.path)
				if resp.StatusCode != c.status {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, visibleText(body))
				}
				for _, s := range c.shows {
					if !strings.Contains(body, s) {
						t.Errorf("page lacks %q: %s", s, visibleText(body))
					}
				}
				for _, s := range c.hides {
					if strings.Contains(body, s) {
						t.Errorf("page shows %q", s)
					}
				}
				if csp := resp.Header.Get("Content-Security-Policy"); csp == "" || strings.Contains(csp, "unsafe-inline") {
					t.Errorf("CSP %q", csp)
				}
			})
		}
	})
}

func TestConsoleChangesFollowTheAdminRights(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newConsoleFixture(t, d)
		cases := []struct {
			name, role string
			target     func() *users.User
			status     int
			want       users.Status
		}{
			{"auditor may not disable", "auditor", func() *users.User { return f.staffA }, 403, users.StatusActive},
			{"client manager may not disable", "clients", func() *users.User { return f.staffA }, 403, users.StatusActive},
			{"town admin may not disable another town's person", "town", func() *users.User { return f.staffB }, 403, users.StatusActive},
			{"town admin may not disable a super admin", "town", func() *users.User { return f.boss }, 403, users.StatusActive},
			{"town admin disables its own person", "town", func() *users.User { return f.staffA }, 303, users.StatusDisabled},
			{"super admin disables anyone", "super", func() *users.User { return f.staffB }, 303, users.StatusDisabled},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				u := c.target()
				resp, body := f.postAs(c.role, "/admin/users/"+u.ID+"/disable", url.Values{})
				if resp.StatusCode != c.status {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, visibleText(body))
				}
				if got := f.status(u.ID); got != c.want {
					t.Errorf("status of the account %s, want %s", got, c.want)
				}
			})
		}
	})
}

func TestConsoleFormsNeedTheCSRFToken(t *testing.T) {
	f := newConsoleFixture(t, dbtest.Open(t, db.SQLite))
	for name, post := range map[string]func() (*http.Response, string){
		"no token": func() (*http.Response, string) {
			return f.postRaw("/admin/users/"+f.staffA.ID+"/disable", url.Values{}, nil, f.cookies["super"])
		},
		"wrong token": func() (*http.Response, string) {
			c, _ := f.csrf()
			return f.postRaw("/admin/users/"+f.staffA.ID+"/disable", url.Values{csrfField: {strings.Repeat("A", csrfTokenLen)}}, nil, f.cookies["super"], c)
		},
		"other origin": func() (*http.Response, string) {
			c, token := f.csrf()
			return f.postRaw("/admin/users/"+f.staffA.ID+"/disable", url.Values{csrfField: {token}},
				http.Header{"Origin": {"http://evil.example"}}, f.cookies["super"], c)
		},
	} {
		t.Run(name, func(t *testing.T) {
			resp, _ := post()
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("status %d, want 403", resp.StatusCode)
			}
			if got := f.status(f.staffA.ID); got != users.StatusActive {
				t.Fatalf("account %s after a forged post", got)
			}
		})
	}
}

func TestConsoleSignedOutGoesToSignIn(t *testing.T) {
	f := newConsoleFixture(t, dbtest.Open(t, db.SQLite))
	resp, _ := f.get("/admin/users")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login?") {
		t.Fatalf("status %d to %q, want the sign-in page", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestConsoleBadInputIsExplainedAndNothingStored(t *testing.T) {
	f := newConsoleFixture(t, dbtest.Open(t, db.SQLite))
	ctx := context.Background()
	cases := []struct {
		name, path string
		form       url.Values
		status     int
		shows      []string
		unchanged  func() bool
	}{
		{"user with a bad phone and no username", "/admin/users",
			url.Values{"username": {""}, "phone": {"123"}, "kind": {"citizen"}, "org_unit_id": {f.townA.ID}}, 400,
			[]string{"Some of what you entered is not valid.", "Phone number", "Username", `name="phone" aria-invalid="true"`, "Phone number: an 11-digit mainland mobile number starting with 1"},
			func() bool { _, err := f.store.GetByPhone(ctx, "123"); return err != nil }},
		{"user in a unit outside the town admin's", "/admin/users",
			url.Values{"username": {"sneaky"}, "kind": {"staff"}, "org_unit_id": {f.townB.ID}}, 403,
			[]string{"You may not do this"},
			func() bool { _, err := f.store.GetByUsername(ctx, "sneaky"); return err != nil }},
		{"level without a reason", "/admin/users/" + f.staffA.ID + "/set-level", url.Values{"level": {"3"}}, 400,
			[]string{"Reason"},
			func() bool { u, _ := f.store.Get(ctx, f.staffA.ID); return u.AssuranceLevel == 1 }},
		{"level out of range", "/admin/users/" + f.staffA.ID + "/set-level", url.Values{"level": {"9"}, "reason": {"x"}}, 400,
			[]string{"Assurance level"},
			func() bool { u, _ := f.store.Get(ctx, f.staffA.ID); return u.AssuranceLevel == 1 }},
		{"delete a unit with members", "/admin/org-units/" + f.villageA.ID + "/delete", url.Values{}, 409,
			[]string{"still has members or sub-units"},
			func() bool { _, err := f.api.OrgUnits.Get(ctx, f.villageA.ID); return err == nil }},
		{"unit with a bad code", "/admin/org-units", url.Values{"parent_id": {f.townA.ID}, "code": {"bad code!"}, "name": {"x"}, "kind": {"village"}}, 400,
			[]string{"Code"},
			func() bool { l, _ := f.api.OrgUnits.Subtree(ctx, f.townA.ID); return len(l) == 2 }},
		{"unknown action", "/admin/users/" + f.staffA.ID + "/explode", url.Values{}, 404, nil, func() bool { return true }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := f.postAs("town", c.path, c.form)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, visibleText(body))
			}
			for _, s := range c.shows {
				if !strings.Contains(visibleText(body), s) && !strings.Contains(body, s) {
					t.Errorf("page lacks %q: %s", s, visibleText(body))
				}
			}
			if !c.unchanged() {
				t.Error("something was stored")
			}
		})
	}
}

func TestConsoleSuperAdminCreatesAUserOutsideAnyUnit(t *testing.T) {
	f := newConsoleFixture(t, dbtest.Open(t, db.SQLite))
	// The form always sends a role; without a unit it is not asked for.
	resp, body := f.postAs("super", "/admin/users", url.Values{"username": {"loner"}, "kind": {"citizen"}, "org_unit_id": {""}, "org_role": {"member"}})
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "done=created") {
		t.Fatalf("create: %d %s", resp.StatusCode, visibleText(body))
	}
	if _, err := f.store.GetByUsername(context.Background(), "loner"); err != nil {
		t.Fatal(err)
	}
	// A town admin cannot: the account would be outside its reach.
	resp, _ = f.postAs("town", "/admin/users", url.Values{"username": {"loner2"}, "kind": {"citizen"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("town admin creates an account in no unit: %d", resp.StatusCode)
	}
}

func TestConsoleRevealIsAuditedAndOnlyForWhoMayChange(t *testing.T) {
	f := newConsoleFixture(t, dbtest.Open(t, db.SQLite))
	_, body := f.as("town", "/admin/users/"+f.staffA.ID)
	if strings.Contains(body, f.staffA.Phone) || !strings.Contains(body, users.MaskPhone(f.staffA.Phone)) {
		t.Fatalf("the page does not mask the phone number: %s", visibleText(body))
	}
	resp, body := f.postAs("town", "/admin/users/"+f.staffA.ID+"/reveal", url.Values{})
	if resp.StatusCode != 200 || !strings.Contains(body, f.staffA.Phone) {
		t.Fatalf("reveal: %d %s", resp.StatusCode, visibleText(body))
	}
	list, err := f.audit.List(context.Background(), audit.Filter{Action: "user.reveal", Subject: f.staffA.ID, Limit: 10})
	if err != nil || len(list) != 1 || list[0].Actor != f.townAdmin.ID {
		t.Fatalf("audit records of the reveal: %v %+v", err, list)
	}
	for _, who := range []struct{ role, id string }{{"town", f.boss.ID}, {"town", f.staffB.ID}, {"auditor", f.staffA.ID}} {
		resp, body := f.postAs(who.role, "/admin/users/"+who.id+"/reveal", url.Values{})
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s reveals %s: status %d", who.role, who.id, resp.StatusCode)
		}
		if strings.Contains(body, "138") && strings.Contains(body, "name of") {
			t.Errorf("%s sees the person", who.role)
		}
	}
}

func TestConsoleClientSecretIsShownOnce(t *testing.T) {
	f := newConsoleFixture(t, dbtest.Open(t, db.SQLite))
	resp, body := f.postAs("clients", "/admin/clients", url.Values{"id": {"tax"}, "name": {"Tax"},
		"redirect_uris": {"https://tax.example/cb\n"}, "scopes": {"openid profile"}})
	if resp.StatusCode != 200 || !strings.Contains(body, `id="client-secret"`) {
		t.Fatalf("create: %d %s", resp.StatusCode, visibleText(body))
	}
	secret := body[strings.Index(body, `id="client-secret">`)+len(`id="client-secret">`):]
	secret = secret[:strings.Index(secret, "<")]
	if len(secret) < 20 {
		t.Fatalf("secret %q", secret)
	}
	_, list := f.as("clients", "/admin/clients")
	if !strings.Contains(list, "tax") || strings.Contains(list, secret) {
		t.Fatal("the list lacks the client or shows its secret")
	}
	resp, body = f.postAs("clients", "/admin/clients/tax/rotate", url.Values{})
	if resp.StatusCode != 200 || !strings.Contains(body, `id="client-secret"`) || strings.Contains(body, secret) {
		t.Fatalf("rotate: %d %s", resp.StatusCode, visibleText(body))
	}
	resp, _ = f.postAs("clients", "/admin/clients/tax/disable", url.Values{})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("disable: %d", resp.StatusCode)
	}
	c, err := f.api.Clients.GetClient(context.Background(), "tax")
	if err != nil || !c.Disabled {
		t.Fatalf("client after disable: %v %+v", err, c)
	}
	resp, body = f.postAs("clients", "/admin/clients", url.Values{"id": {"bad id!"}, "name": {""}})
	if resp.StatusCode != 400 || !strings.Contains(visibleText(body), "Client ID") {
		t.Fatalf("bad client: %d %s", resp.StatusCode, visibleText(body))
	}
	resp, _ = f.postAs("auditor", "/admin/clients/tax/enable", url.Values{})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("auditor enables a client: %d", resp.StatusCode)
	}
}

func TestConsoleResetLevelUnlockAndSignOut(t *testing.T) {
	f := newConsoleFixture(t, dbtest.Open(t, db.SQLite))
	resp, body := f.postAs("town", "/admin/users/"+f.staffA.ID+"/reset", url.Values{})
	if resp.StatusCode != 200 || !strings.Contains(body, "http://example.com/reset?token=") {
		t.Fatalf("reset: %d %s", resp.StatusCode, visibleText(body))
	}
	resp, _ = f.postAs("town", "/admin/users/"+f.staffA.ID+"/set-level", url.Values{"level": {"3"}, "reason": {"seen in person"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("set level: %d", resp.StatusCode)
	}
	if u, _ := f.store.Get(context.Background(), f.staffA.ID); u.AssuranceLevel != 3 {
		t.Fatalf("level %d", u.AssuranceLevel)
	}
	for action, recorded := range map[string]string{"unlock": "user.unlock", "revoke-sessions": "user.revoke_sessions"} {
		resp, _ := f.postAs("town", "/admin/users/"+f.staffA.ID+"/"+action, url.Values{})
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("%s: %d", action, resp.StatusCode)
		}
		list, err := f.audit.List(context.Background(), audit.Filter{Action: recorded, Subject: f.staffA.ID, Limit: 10})
		if err != nil || len(list) != 1 || list[0].Actor != f.townAdmin.ID {
			t.Fatalf("%s is not audited as the town admin's: %v %+v", action, err, list)
		}
		if resp, _ := f.postAs("auditor", "/admin/users/"+f.staffA.ID+"/"+action, url.Values{}); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("auditor %s: %d", action, resp.StatusCode)
		}
	}
}

func TestConsoleOrgUnitChangesFollowTheAdminRights(t *testing.T) {
	f := newConsoleFixture(t, dbtest.Open(t, db.SQLite))
	ctx := context.Background()
	empty, err := f.api.OrgUnits.Create(ctx, f.villageA.ID, "hamlet", "unit hamlet", "village")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, role, path string
		form             url.Values
		status           int
		check            func() bool
	}{
		{"town admin renames a unit below its own", "town", "/admin/org-units/" + f.villageA.ID + "/rename", url.Values{"name": {"renamed village"}}, 303,
			func() bool { u, _ := f.api.OrgUnits.Get(ctx, f.villageA.ID); return u.Name == "renamed village" }},
		{"town admin may not rename its own unit", "town", "/admin/org-units/" + f.townA.ID + "/rename", url.Values{"name": {"mine now"}}, 403,
			func() bool { u, _ := f.api.OrgUnits.Get(ctx, f.townA.ID); return u.Name == "unit townA" }},
		{"town admin may not move a unit into another town", "town", "/admin/org-units/" + f.villageA.ID + "/move", url.Values{"parent_id": {f.townB.ID}}, 403,
			func() bool { u, _ := f.api.OrgUnits.Get(ctx, f.villageA.ID); return u.ParentID == f.townA.ID }},
		{"auditor may not delete", "auditor", "/admin/org-units/" + empty.ID + "/delete", url.Values{}, 403,
			func() bool { _, err := f.api.OrgUnits.Get(ctx, empty.ID); return err == nil }},
		{"town admin creates a unit in its town", "town", "/admin/org-units", url.Values{"parent_id": {f.townA.ID}, "code": {"new-village"}, "name": {"new village"}, "kind": {"village"}}, 303,
			func() bool { l, _ := f.api.OrgUnits.Subtree(ctx, f.townA.ID); return len(l) == 4 }},
		{"town admin may not create a top-level unit", "town", "/admin/org-units", url.Values{"code": {"rogue"}, "name": {"rogue"}, "kind": {"city"}}, 403,
			func() bool {
				ids, _ := f.api.VisibleOrgRoots(ctx, admin.Actor{Roles: []admin.Role{admin.RoleSuperAdmin}})
				return len(ids) == 1
			}},
		{"town admin deletes an empty unit", "town", "/admin/org-units/" + empty.ID + "/delete", url.Values{}, 303,
			func() bool { _, err := f.api.OrgUnits.Get(ctx, empty.ID); return err != nil }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := f.postAs(c.role, c.path, c.form)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, visibleText(body))
			}
			if !c.check() {
				t.Error("the tree is not as the outcome says")
			}
		})
	}
}

func TestConsoleAuditExportLinkWorksForTheAuditor(t *testing.T) {
	f := newConsoleFixture(t, dbtest.Open(t, db.SQLite))
	if _, err := f.audit.Append(context.Background(), audit.Event{Actor: "test", Action: audit.ActionUserCreate, Result: audit.ResultSuccess}); err != nil {
		t.Fatal(err)
	}
	_, body := f.as("auditor", "/admin/audit?action="+audit.ActionUserCreate+"&since=2020-01-01")
	m := regexp.MustCompile(`href="(/admin/api/v1/audit\?[^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSV link: %s", body)
	}
	link := html.UnescapeString(m[1])
	if !strings.Contains(link, "format=csv") || !strings.Contains(link, "since=2020-01-01T00%3A00%3A00Z") {
		t.Fatalf("CSV link %s does not carry the filter", link)
	}
	resp, csv := f.as("auditor", link)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") || !strings.Contains(csv, audit.ActionUserCreate) {
		t.Fatalf("export: %d %s %.200s", resp.StatusCode, resp.Header.Get("Content-Type"), csv)
	}
	if resp, _ := f.as("town", link); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a town admin exports the audit log: %d", resp.StatusCode)
	}
	_, body = f.as("auditor", "/admin/audit?since=yesterday")
	if !strings.Contains(visibleText(body), "From") {
		t.Fatalf("a bad date is not named: %s", visibleText(body))
	}
}

func TestConsoleOrgUnitMembers(t *testing.T) {
	f := newConsoleFixture(t, dbtest.Open(t, db.SQLite))
	ctx := context.Background()
	role := func(unit *users.OrgUnit, u *users.User) string {
		r, err := f.api.OrgUnits.MemberRole(ctx, unit.ID, u.ID)
		if err != nil {
			return ""
		}
		return r
	}
	resp, body := f.as("town", "/admin/org-units/"+f.villageA.ID)
	if text := visibleText(body); resp.StatusCode != 200 || !strings.Contains(text, "staff-a") || !strings.Contains(text, "name of boss") ||
		!strings.Contains(body, `action="/admin/org-units/`+f.villageA.ID+`/members"`) || !strings.Contains(body, `<option value="admin"`) ||
		strings.Contains(body, `<option value="auditor"`) {
		t.Fatalf("village page: %d %s", resp.StatusCode, text)
	}
	// Buttons only for people the town admin may change: not for boss, a
	// super admin, whose membership the API would refuse to touch.
	if !strings.Contains(body, `/members/`+f.staffA.ID+`/role"`) || strings.Contains(body, `/members/`+f.boss.ID+`/`) {
		t.Errorf("change buttons on the village page: staff-a %v, boss %v", strings.Contains(body, `/members/`+f.staffA.ID+`/role"`),
			strings.Contains(body, `/members/`+f.boss.ID+`/`))
	}
	// In its own unit the town admin adds members but appoints no admin.
	if _, body := f.as("town", "/admin/org-units/"+f.townA.ID); !strings.Contains(body, `<option value="member"`) || strings.Contains(body, `<option value="admin"`) {
		t.Fatalf("town page offers roles the town admin may not grant: %s", visibleText(body))
	}
	cases := []struct {
		name, role, path string
		form             url.Values
		status           int
		check            func() bool
	}{
		{"town admin adds a person by username", "town", "/admin/org-units/" + f.townA.ID + "/members", url.Values{"username": {"staff-a"}, "role": {"member"}}, 303,
			func() bool { return role(f.townA, f.staffA) == "member" }},
		{"town admin makes a village admin", "town", "/admin/org-units/" + f.villageA.ID + "/members/" + f.staffA.ID + "/role", url.Values{"role": {"admin"}}, 303,
			func() bool { return role(f.villageA, f.staffA) == "admin" }},
		{"town admin may not remove itself", "town", "/admin/org-units/" + f.townA.ID + "/members/" + f.townAdmin.ID + "/remove", url.Values{}, 403,
			func() bool { return role(f.townA, f.townAdmin) == "admin" }},
		{"town admin may not grant auditor", "town", "/admin/org-units/" + f.villageA.ID + "/members/" + f.staffA.ID + "/role", url.Values{"role": {"auditor"}}, 403,
			func() bool { return role(f.villageA, f.staffA) == "admin" }},
		{"a person it does not manage is not found", "town", "/admin/org-units/" + f.villageA.ID + "/members", url.Values{"username": {"staff-b"}, "role": {"member"}}, 400,
			func() bool { return role(f.villageA, f.staffB) == "" }},
		{"town admin removes a member", "town", "/admin/org-units/" + f.villageA.ID + "/members/" + f.staffA.ID + "/remove", url.Values{}, 303,
			func() bool { return role(f.villageA, f.staffA) == "" }},
		{"super admin grants client_manager", "super", "/admin/org-units/" + f.townB.ID + "/members/" + f.staffB.ID + "/role", url.Values{"role": {"client_manager"}}, 303,
			func() bool { return role(f.townB, f.staffB) == "client_manager" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := f.postAs(c.role, c.path, c.form)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, visibleText(body))
			}
			if c.status == 303 && !strings.Contains(resp.Header.Get("Location"), "?done=member_") {
				t.Errorf("redirect to %q", resp.Header.Get("Location"))
			}
			if c.status == 400 && !strings.Contains(body, `id="member-username" name="username" aria-invalid="true"`) {
				t.Errorf("the username field is not marked: %s", visibleText(body))
			}
			if !c.check() {
				t.Error("the memberships are not as the outcome says")
			}
		})
	}
	if list, _ := f.audit.List(ctx, audit.Filter{Subject: f.staffA.ID, Action: "org.member_remove", Actor: f.townAdmin.ID}); len(list) != 1 {
		t.Errorf("removal audited %d times", len(list))
	}
}
