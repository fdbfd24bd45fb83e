package admin

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/users"
	"github.com/govsso/sso/webhooks"
)

// TestMembershipRoutes runs the membership routes in order, each step on
// the state the steps before it left: city ⊃ townA ⊃ villageA, city ⊃
// townB; the town admin administers townA.
func TestMembershipRoutes(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		ctx := context.Background()
		// A department system hears of every membership change.
		if status, body, _ := f.do("super", "POST", "/clients", `{"id":"hr","name":"HR","redirect_uris":["https://hr.example.org/cb"]}`); status != 201 {
			t.Fatalf("client: %d %s", status, body)
		}
		if status, body, _ := f.do("super", "POST", "/clients/hr/webhooks", `{"url":"https://hr.example.org/hook","event_types":["membership.added","membership.updated","membership.removed"]}`); status != 201 {
			t.Fatalf("subscribe: %d %s", status, body)
		}
		gone := &users.User{Username: "gone", Kind: users.KindStaff}
		if err := f.api.Users.Create(ctx, gone); err != nil {
			t.Fatal(err)
		}
		if err := f.api.OrgUnits.AddMember(ctx, f.townB.ID, gone.ID, "member"); err != nil {
			t.Fatal(err)
		}
		villageAuditor := &users.User{Username: "village-auditor", Kind: users.KindStaff}
		if err := f.api.Users.Create(ctx, villageAuditor); err != nil {
			t.Fatal(err)
		}
		if err := f.api.OrgUnits.AddMember(ctx, f.villageA.ID, villageAuditor.ID, "auditor"); err != nil {
			t.Fatal(err)
		}
		if status, body, _ := f.do("super", "DELETE", "/users/"+gone.ID, ""); status != 204 {
			t.Fatalf("delete: %d %s", status, body)
		}
		member := func(unit *users.OrgUnit, u *users.User) string {
			return "/org-units/" + unit.ID + "/members/" + u.ID
		}
		role := func(r string) string { return `{"role":"` + r + `"}` }
		steps := []struct {
			name, token, method, path, body string
			want                            int
			problem                         string   // the problem type's last part
			fields                          []string // of a validation problem
		}{
			{"town admin adds its village's staff to the town", "town", "PUT", member(f.townA, f.staffA), role("member"), 201, "", nil},
			{"town admin makes a village admin", "town", "PUT", member(f.villageA, f.staffA), role("admin"), 200, "", nil},
			{"town admin cannot make a co-admin of its own town", "town", "PUT", member(f.townA, f.staffA), role("admin"), 403, "forbidden", nil},
			{"town admin cannot demote itself", "town", "PUT", member(f.townA, f.townAdmin), role("member"), 403, "forbidden", nil},
			{"town admin cannot remove itself", "town", "DELETE", member(f.townA, f.townAdmin), "", 403, "forbidden", nil},
			{"town admin cannot grant auditor", "town", "PUT", member(f.villageA, f.staffA), role("auditor"), 403, "forbidden", nil},
			{"town admin cannot grant itself client_manager", "town", "PUT", member(f.villageA, f.townAdmin), role("client_manager"), 403, "forbidden", nil},
			{"town admin cannot take a global role away", "town", "PUT", member(f.villageA, villageAuditor), role("member"), 403, "forbidden", nil},
			{"town admin cannot remove an auditor", "town", "DELETE", member(f.villageA, villageAuditor), "", 403, "forbidden", nil},
			{"town admin cannot manage another town's members", "town", "PUT", member(f.townB, f.staffA), role("admin"), 403, "forbidden", nil},
			{"town admin cannot pull in people it does not manage", "town", "PUT", member(f.villageA, f.staffB), role("member"), 403, "forbidden", nil},
			{"town admin cannot place a super admin", "town", "PUT", member(f.townA, f.boss), role("member"), 403, "forbidden", nil},
			{"auditor cannot manage members", "auditor", "PUT", member(f.villageA, f.staffA), role("member"), 403, "forbidden", nil},
			{"client manager cannot manage members", "clients", "DELETE", member(f.villageA, f.staffA), "", 403, "forbidden", nil},
			{"a person without a role cannot manage members", "staff", "PUT", member(f.villageA, f.staffA), role("member"), 403, "forbidden", nil},
			{"unknown unit", "super", "PUT", "/org-units/no-such-unit/members/" + f.staffA.ID, role("member"), 404, "not-found", nil},
			{"unknown person", "super", "PUT", "/org-units/" + f.townA.ID + "/members/no-such-user", role("member"), 404, "not-found", nil},
			{"unknown role", "super", "PUT", member(f.townA, f.staffB), role("owner"), 400, "validation", []string{"role"}},
			{"no role", "super", "PUT", member(f.townA, f.staffB), `{}`, 400, "validation", []string{"role"}},
			{"unknown field", "super", "PUT", member(f.townA, f.staffB), `{"role":"member","since":"now"}`, 400, "unknown-field", []string{"since"}},
			{"deleted account", "super", "PUT", member(f.townA, gone), role("member"), 409, "deleted", nil},
			{"deleted account cannot be taken out either", "super", "DELETE", member(f.townB, gone), "", 409, "deleted", nil},
			{"who may not manage a deleted account is not told it is deleted", "town", "PUT", member(f.villageA, gone), role("member"), 403, "forbidden", nil},
			{"super admin grants auditor", "super", "PUT", member(f.townB, f.staffB), role("auditor"), 200, "", nil},
			{"not a member", "super", "DELETE", member(f.townB, f.townAdmin), "", 404, "not-found", nil},
			{"town admin removes a village admin", "town", "DELETE", member(f.villageA, f.staffA), "", 204, "", nil},
			{"removed twice", "town", "DELETE", member(f.villageA, f.staffA), "", 404, "not-found", nil},
			{"super admin puts a person in a second unit", "super", "PUT", member(f.townB, f.staffA), role("member"), 201, "", nil},
			{"the same again changes nothing", "super", "PUT", member(f.townB, f.staffA), role("member"), 200, "", nil},
			{"town admin cannot take over a person who also belongs to another town", "town", "PUT", member(f.villageA, f.staffA), role("member"), 403, "forbidden", nil},
			{"super admin moves a person: out of one unit", "super", "DELETE", member(f.townB, f.staffA), "", 204, "", nil},
			{"town admin creates no auditor", "town", "POST", "/users", `{"username":"new-aud","kind":"staff","org_unit_id":"` + f.villageA.ID + `","org_role":"auditor"}`, 403, "forbidden", nil},
			{"town admin creates no co-admin", "town", "POST", "/users", `{"username":"new-adm","kind":"staff","org_unit_id":"` + f.townA.ID + `","org_role":"admin"}`, 403, "forbidden", nil},
			{"town admin creates a village admin", "town", "POST", "/users", `{"username":"new-vadm","kind":"staff","org_unit_id":"` + f.villageA.ID + `","org_role":"admin"}`, 201, "", nil},
		}
		for _, s := range steps {
			status, body, h := f.do(s.token, s.method, s.path, s.body)
			if status != s.want {
				t.Fatalf("%s: %s %s: %d, want %d: %s", s.name, s.method, s.path, status, s.want, body)
			}
			if s.problem != "" {
				p := decodeProblem(t, body)
				if p.Type != ProblemBase+s.problem || h.Get("Content-Type") != "application/problem+json" {
					t.Fatalf("%s: problem %s, want %s", s.name, p.Type, s.problem)
				}
				if s.fields != nil && !slices.Equal(fieldsOf(p), s.fields) {
					t.Fatalf("%s: fields %v, want %v", s.name, fieldsOf(p), s.fields)
				}
				if s.problem == "validation" && !strings.Contains(string(body), "member, admin, auditor or client_manager") {
					t.Fatalf("%s: the problem does not name the roles: %s", s.name, body)
				}
			}
			if s.method == "PUT" && status < 300 {
				var m users.Member
				if err := json.Unmarshal(body, &m); err != nil || m.Role != strings.Trim(strings.TrimPrefix(s.body, `{"role":`), `"}`) || m.AddedAt.IsZero() {
					t.Fatalf("%s: answer %s", s.name, body)
				}
			}
		}

		// Each change is audited with its actor; refused and idempotent
		// requests are not.
		for _, a := range []struct {
			action, subject, actor string
			n                      int
		}{
			{actionOrgMemberAdd, f.staffA.ID, "client:ops", 1},
			{actionOrgMemberAdd, f.staffA.ID, f.townAdmin.ID, 1},
			{actionOrgMemberUpdate, f.staffA.ID, f.townAdmin.ID, 1},
			{actionOrgMemberUpdate, f.staffB.ID, "client:ops", 1},
			{actionOrgMemberRemove, f.staffA.ID, f.townAdmin.ID, 1},
			{actionOrgMemberRemove, f.staffA.ID, "client:ops", 1},
			{actionOrgMemberUpdate, f.townAdmin.ID, "", 0},
			{actionOrgMemberRemove, f.townAdmin.ID, "", 0},
		} {
			list, err := f.api.Audit.List(ctx, audit.Filter{Subject: a.subject, Action: a.action, Actor: a.actor})
			if err != nil || len(list) != a.n {
				t.Errorf("audit %s of %s by %q: %d records, want %d (%v)", a.action, a.subject, a.actor, len(list), a.n, err)
			}
		}
		if list, _ := f.api.Audit.List(ctx, audit.Filter{Subject: f.staffB.ID, Action: actionOrgMemberUpdate}); len(list) == 1 &&
			(list[0].Details["role"] != "auditor" || list[0].Details["previous_role"] != "member" || list[0].Details["org_unit_id"] != f.townB.ID) {
			t.Errorf("role change details: %v", list[0].Details)
		}
		// A role given with a new account is audited with the account.
		created, _ := f.api.Audit.List(ctx, audit.Filter{Action: audit.ActionUserCreate, Actor: f.townAdmin.ID})
		if len(created) != 1 || created[0].Details["role"] != "admin" || created[0].Details["org_unit_id"] != f.villageA.ID {
			t.Errorf("user.create records of the town admin: %+v", created)
		}

		// The outbox holds one event per change, in order, with the roles.
		rows, err := d.Query(ctx, `SELECT event_type, payload FROM webhook_deliveries ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		type membership struct {
			webhooks.MembershipData
			Type string
		}
		var got []membership
		for rows.Next() {
			var typ, payload string
			if err := rows.Scan(&typ, &payload); err != nil {
				t.Fatal(err)
			}
			var e struct {
				Data struct{ Membership webhooks.MembershipData }
			}
			if err := json.Unmarshal([]byte(payload), &e); err != nil {
				t.Fatal(err)
			}
			got = append(got, membership{e.Data.Membership, typ})
		}
		rows.Close()
		want := []membership{
			{webhooks.MembershipData{UserID: f.staffA.ID, OrgUnitID: f.townA.ID, OrgUnitCode: "townA", Role: "member"}, webhooks.MembershipAdded},
			{webhooks.MembershipData{UserID: f.staffA.ID, OrgUnitID: f.villageA.ID, OrgUnitCode: "villageA", Role: "admin", PreviousRole: "member"}, webhooks.MembershipUpdated},
			{webhooks.MembershipData{UserID: f.staffB.ID, OrgUnitID: f.townB.ID, OrgUnitCode: "townB", Role: "auditor", PreviousRole: "member"}, webhooks.MembershipUpdated},
			{webhooks.MembershipData{UserID: f.staffA.ID, OrgUnitID: f.villageA.ID, OrgUnitCode: "villageA", Role: "admin"}, webhooks.MembershipRemoved},
			{webhooks.MembershipData{UserID: f.staffA.ID, OrgUnitID: f.townB.ID, OrgUnitCode: "townB", Role: "member"}, webhooks.MembershipAdded},
			{webhooks.MembershipData{UserID: f.staffA.ID, OrgUnitID: f.townB.ID, OrgUnitCode: "townB", Role: "member"}, webhooks.MembershipRemoved},
		}
		u, _ := f.api.Users.GetByUsername(ctx, "new-vadm")
		if u != nil {
			want = append(want, membership{webhooks.MembershipData{UserID: u.ID, OrgUnitID: f.villageA.ID, OrgUnitCode: "villageA", Role: "admin"}, webhooks.MembershipAdded})
		}
		if !slices.Equal(got, want) {
			t.Fatalf("outbox:\n%+v\nwant\n%+v", got, want)
		}
		// The auditor's new role works at once.
		tok := f.tokens["staff"]
		tok.subject = f.staffB.ID
		f.tokens["staff-b"] = tok
		if status, body, _ := f.do("staff-b", "GET", "/audit", ""); status != 200 {
			t.Fatalf("new auditor reads the audit log: %d %s", status, body)
		}
	})
}

func TestListMembers(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		// villageA: staff-a, boss; townA: town-admin; city: auditor, client-mgr.
		type item struct{ user, unit, role string }
		list := func(token, query string) (int, []item, string, []byte) {
			t.Helper()
			status, body, _ := f.do(token, "GET", "/org-units/"+query, "")
			var page struct {
				Items []users.Member
				Next  string
			}
			if status == 200 {
				if err := json.Unmarshal(body, &page); err != nil {
					t.Fatalf("%v: %s", err, body)
				}
			}
			var out []item
			for _, m := range page.Items {
				if m.Username == "" || m.DisplayName == "" || m.Status != users.StatusActive || m.AddedAt.IsZero() {
					t.Fatalf("incomplete member: %+v", m)
				}
				out = append(out, item{m.Username, m.OrgUnitID, m.Role})
			}
			return status, out, page.Next, body
		}
		sorted := func(items ...item) []item {
			ids := map[string]string{"staff-a": f.staffA.ID, "boss": f.boss.ID, "town-admin": f.townAdmin.ID}
			slices.SortFunc(items, func(a, b item) int { return strings.Compare(ids[a.user]+a.unit, ids[b.user]+b.unit) })
			return items
		}
		status, got, next, body := list("town", f.villageA.ID+"/members")
		if want := sorted(item{"staff-a", f.villageA.ID, "member"}, item{"boss", f.villageA.ID, "member"}); status != 200 || !slices.Equal(got, want) || next != "" {
			t.Fatalf("village members: %d %v %s", status, got, body)
		}
		// The subtree, one item a page, in the same order.
		want := sorted(item{"staff-a", f.villageA.ID, "member"}, item{"boss", f.villageA.ID, "member"}, item{"town-admin", f.townA.ID, "admin"})
		var all []item
		after := ""
		for range 5 {
			status, got, next, body = list("town", f.townA.ID+"/members?subtree=true&limit=1&after="+after)
			if status != 200 || len(got) > 1 {
				t.Fatalf("page: %d %s", status, body)
			}
			all = append(all, got...)
			if next == "" {
				break
			}
			after = next
		}
		if !slices.Equal(all, want) {
			t.Fatalf("subtree pages %v, want %v", all, want)
		}
		if _, got, _, _ := list("town", f.townA.ID+"/members"); len(got) != 1 {
			t.Fatalf("without subtree: %v", got)
		}
		for _, tt := range []struct {
			name, token, query string
			want               int
			fields             []string
		}{
			{"another town", "town", f.townB.ID + "/members", 403, nil},
			{"above its own unit", "town", f.city.ID + "/members", 403, nil},
			{"auditor", "auditor", f.townA.ID + "/members", 403, nil},
			{"unknown unit", "super", "no-such-unit/members", 404, nil},
			{"bad parameters", "super", f.townA.ID + "/members?subtree=maybe&limit=0&after=%25%25&page=2", 400, []string{"after", "limit", "page", "subtree"}},
		} {
			status, _, _, body := list(tt.token, tt.query)
			if status != tt.want {
				t.Errorf("%s: %d, want %d: %s", tt.name, status, tt.want, body)
			}
			if tt.fields != nil && !slices.Equal(fieldsOf(decodeProblem(t, body)), tt.fields) {
				t.Errorf("%s: fields %s", tt.name, body)
			}
		}
	})
}
