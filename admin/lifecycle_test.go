package admin

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/oauth"
	"github.com/govsso/sso/users"
)

// grantFixture gives a person a session, a remembered consent and a
// refresh token at a public and a pairwise client, and the pairwise
// client a client_credentials token of its own.
type grantFixture struct {
	public, pairwise string
}

func (f *fixture) giveGrants(t *testing.T, userID string) grantFixture {
	t.Helper()
	ctx := context.Background()
	g := grantFixture{public: "tax", pairwise: "health"}
	for _, c := range []*oauth.Client{
		{ID: g.public, Name: "Tax", RedirectURIs: []string{"https://tax.example.org/cb"}},
		{ID: g.pairwise, Name: "Health", RedirectURIs: []string{"https://health.example.org/cb"}, SubjectType: oauth.SubjectPairwise},
	} {
		if _, err := f.api.Clients.GetClient(ctx, c.ID); err == nil {
			continue
		}
		c.ApplyDefaults()
		if err := f.api.Clients.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := f.api.Sessions.Create(ctx, userID, []string{"pwd"}, 1, "192.0.2.1", "Test/1"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	token := func(client, subject string) {
		if err := f.api.Clients.CreateToken(ctx, &oauth.Token{Kind: oauth.KindRefreshToken, Signature: client + subject + now.String(), RequestID: "r",
			ClientID: client, Subject: subject, Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Hour), Data: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []string{g.public, g.pairwise} {
		if err := f.api.Clients.GrantConsent(ctx, userID, c, []string{"openid"}, true); err != nil {
			t.Fatal(err)
		}
	}
	token(g.public, userID)
	token(g.pairwise, pairwiseSub(t, f, g.pairwise, userID))
	token(g.pairwise, "") // client_credentials
	return g
}

// pairwiseSub is the sub a pairwise client sees for the person.
func pairwiseSub(t *testing.T, f *fixture, clientID, userID string) string {
	t.Helper()
	return f.provider.SubjectFor(mustClient(t, f, clientID), userID)
}

func mustClient(t *testing.T, f *fixture, id string) *oauth.Client {
	t.Helper()
	c, err := f.api.Clients.GetClient(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func countRows(t *testing.T, d *db.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := d.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDeleteUser(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		ctx := context.Background()
		id := f.staffA.ID
		f.giveGrants(t, id)
		f.giveGrants(t, f.staffB.ID)

		if status, body, _ := f.do("town", "DELETE", "/users/"+f.staffB.ID, ""); status != 403 {
			t.Fatalf("town admin deleted another town's staff: %d %s", status, body)
		}
		if status, body, _ := f.do("boss", "DELETE", "/users/"+f.boss.ID, ""); status != 409 || decodeProblem(t, body).Type != ProblemBase+"self-delete" {
			t.Fatalf("self-delete: %d %s", status, body)
		}
		if status, body, _ := f.do("town", "DELETE", "/users/"+id, ""); status != 204 {
			t.Fatalf("delete: %d %s", status, body)
		}
		u, _ := f.api.Users.Get(ctx, id)
		if u.Status != users.StatusDeleted || u.DeletedAt.IsZero() {
			t.Fatalf("after delete: %+v", u)
		}
		if n := countRows(t, d, `SELECT count(*) FROM browser_sessions WHERE user_id = ?`, id); n != 0 {
			t.Fatalf("%d sessions survive", n)
		}
		if n := countRows(t, d, `SELECT count(*) FROM oauth_consents WHERE user_id = ?`, id); n != 0 {
			t.Fatalf("%d consents survive", n)
		}
		// Only the client's own token and the other person's grants are left.
		if n := countRows(t, d, `SELECT count(*) FROM oauth_tokens`); n != 3+1 {
			t.Fatalf("%d tokens left, want 4", n)
		}
		if n := countRows(t, d, `SELECT count(*) FROM browser_sessions WHERE user_id = ?`, f.staffB.ID); n != 1 {
			t.Fatalf("another person's session was ended")
		}
		events, _ := f.api.Audit.List(ctx, audit.Filter{Subject: id, Action: actionUserDelete})
		if len(events) != 1 || events[0].Details["tokens"] != "2" || events[0].Details["sessions"] != "1" {
			t.Fatalf("audit %+v", events)
		}

		// Hidden from search unless asked for; not changeable; not deletable twice.
		_, body, _ := f.do("super", "GET", "/users?kind=staff", "")
		if strings.Contains(string(body), id) {
			t.Fatal("search shows a deleted account")
		}
		_, body, _ = f.do("super", "GET", "/users?username=staff-a", "")
		if strings.Contains(string(body), id) {
			t.Fatal("lookup by username shows a deleted account")
		}
		_, body, _ = f.do("town", "GET", "/users?org_unit="+f.townA.ID, "")
		if strings.Contains(string(body), id) {
			t.Fatal("subtree search shows a deleted account")
		}
		_, body, _ = f.do("super", "GET", "/users?status=deleted", "")
		if !strings.Contains(string(body), id) {
			t.Fatalf("status=deleted does not find it: %s", body)
		}
		for _, op := range []struct{ method, path, body string }{
			{"POST", "/users/" + id + ":enable", ""},
			{"PATCH", "/users/" + id, `{"display_name":"back"}`},
			{"DELETE", "/users/" + id, ""},
			{"POST", "/users/" + id + "/password-reset", ""},
		} {
			status, body, _ := f.do("super", op.method, op.path, op.body)
			if status != 409 || decodeProblem(t, body).Type != ProblemBase+"deleted" {
				t.Fatalf("%s %s on a deleted account: %d %s", op.method, op.path, status, body)
			}
		}
	})
}

func TestSessionsAndConsents(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		id := f.staffA.ID
		g := f.giveGrants(t, id)
		f.giveGrants(t, f.staffB.ID)
		items := func(body []byte) []map[string]any {
			var page struct{ Items []map[string]any }
			json.Unmarshal(body, &page)
			return page.Items
		}

		status, body, _ := f.do("town", "GET", "/users/"+id+"/sessions", "")
		if list := items(body); status != 200 || len(list) != 1 || list[0]["ip"] != "192.0.2.1" || strings.Contains(string(body), "token") {
			t.Fatalf("sessions: %d %s", status, body)
		}
		if status, _, _ := f.do("town", "GET", "/users/"+f.staffB.ID+"/sessions", ""); status != 403 {
			t.Fatalf("town admin read another town's sessions: %d", status)
		}
		status, body, _ = f.do("town", "GET", "/users/"+id+"/consents", "")
		if list := items(body); status != 200 || len(list) != 2 {
			t.Fatalf("consents: %d %s", status, body)
		}

		// One client's grant for one person.
		status, body, _ = f.do("town", "DELETE", "/users/"+id+"/consents?client_id="+g.pairwise, "")
		var n oauth.GrantsRevoked
		json.Unmarshal(body, &n)
		if status != 200 || n.Consents != 1 || n.Tokens != 1 {
			t.Fatalf("revoke one: %d %s", status, body)
		}
		if status, body, _ := f.do("town", "DELETE", "/users/"+id+"/consents?client=x", ""); status != 400 || fieldsOf(decodeProblem(t, body))[0] != "client" {
			t.Fatalf("unknown parameter: %d %s", status, body)
		}
		if status, _, _ := f.do("town", "DELETE", "/users/"+id+"/consents?client_id=nope", ""); status != 404 {
			t.Fatalf("unknown client: %d", status)
		}
		status, body, _ = f.do("town", "DELETE", "/users/"+id+"/consents", "")
		json.Unmarshal(body, &n)
		if status != 200 || n.Consents != 1 || n.Tokens != 1 {
			t.Fatalf("revoke all: %d %s", status, body)
		}
		// One session: only the account's own can be named.
		other, _, _ := f.api.Sessions.Create(context.Background(), f.staffB.ID, []string{"pwd"}, 1, "", "")
		if status, body, _ := f.do("town", "DELETE", "/users/"+id+"/sessions/"+other.ID, ""); status != 404 {
			t.Fatalf("ended another person's session through this account: %d %s", status, body)
		}
		second, _, _ := f.api.Sessions.Create(context.Background(), id, []string{"pwd"}, 1, "", "")
		status, body, _ = f.do("town", "DELETE", "/users/"+id+"/sessions/"+second.ID, "")
		if status != 200 || countRows(t, d, `SELECT count(*) FROM browser_sessions WHERE id = ?`, second.ID) != 0 {
			t.Fatalf("end one session: %d %s", status, body)
		}
		status, body, _ = f.do("town", "DELETE", "/users/"+id+"/sessions", "")
		if status != 200 || !strings.Contains(string(body), `"revoked":1`) {
			t.Fatalf("end sessions: %d %s", status, body)
		}

		// Per client: staff-b's consents are still there.
		status, body, _ = f.do("clients", "GET", "/clients/"+g.public+"/consents", "")
		if list := items(body); status != 200 || len(list) != 1 || list[0]["user_id"] != f.staffB.ID {
			t.Fatalf("client consents: %d %s", status, body)
		}
		if status, _, _ := f.do("town", "GET", "/clients/"+g.public+"/consents", ""); status != 403 {
			t.Fatalf("town admin read a client outside its unit: %d", status)
		}
		status, body, _ = f.do("clients", "DELETE", "/clients/"+g.pairwise+"/consents", "")
		json.Unmarshal(body, &n)
		if status != 200 || n.Consents != 1 || n.Tokens != 1 {
			t.Fatalf("client revoke: %d %s", status, body)
		}
		// The client's own client_credentials token stays.
		if c := countRows(t, d, `SELECT count(*) FROM oauth_tokens WHERE client_id = ? AND subject = ''`, g.pairwise); c != 2 {
			t.Fatalf("client_credentials tokens: %d, want 2", c)
		}
		for _, action := range []string{actionUserRevokeConsents, actionUserRevokeSessions, actionClientRevokeConsent} {
			if list, _ := f.api.Audit.List(context.Background(), audit.Filter{Action: action}); len(list) == 0 {
				t.Fatalf("%s not audited", action)
			}
		}
	})
}
