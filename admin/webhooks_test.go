package admin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/oauth"
	"github.com/govsso/sso/users"
	"github.com/govsso/sso/webhooks"
)

func TestWebhookSubscriptionsAndEvents(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		ctx := context.Background()
		var mu sync.Mutex
		var got []string
		var secret string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var body [1 << 16]byte
			n, _ := r.Body.Read(body[:])
			mu.Lock()
			defer mu.Unlock()
			if !webhooks.Verify(secret, r.Header.Get(webhooks.HeaderTimestamp), r.Header.Get(webhooks.HeaderSignature), body[:n], time.Now(), time.Minute) {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			got = append(got, r.Header.Get(webhooks.HeaderEventID))
		}))
		defer srv.Close()

		if status, body, _ := f.do("super", "POST", "/clients", `{"id":"hr","name":"HR","redirect_uris":["https://hr.example.org/cb"],"org_unit_id":"`+f.townA.ID+`"}`); status != 201 {
			t.Fatalf("client: %d %s", status, body)
		}
		bad := []struct {
			name, token, body string
			want              int
			fields            []string
		}{
			{"http to a remote host", "super", `{"url":"http://hr.example.org/hook","event_types":["user.created"]}`, 400, []string{"url"}},
			{"unknown event type", "super", `{"url":"https://hr.example.org/hook","event_types":["user.exploded"]}`, 400, []string{"event_types"}},
			{"unknown field", "super", `{"url":"https://hr.example.org/hook","event_types":["user.created"],"secret":"mine"}`, 400, []string{"secret"}},
			{"auditor", "auditor", `{"url":"https://hr.example.org/hook","event_types":["user.created"]}`, 403, nil},
		}
		for _, tt := range bad {
			status, body, _ := f.do(tt.token, "POST", "/clients/hr/webhooks", tt.body)
			if status != tt.want || (tt.fields != nil && !slices.Equal(fieldsOf(decodeProblem(t, body)), tt.fields)) {
				t.Errorf("%s: %d %s", tt.name, status, body)
			}
		}
		// The town admin manages its department's client.
		status, body, _ := f.do("town", "POST", "/clients/hr/webhooks", `{"url":"`+srv.URL+`/hook","event_types":["user.created","user.updated","user.disabled","user.deleted","membership.added"]}`)
		var sub webhooks.Subscription
		if status != 201 || json.Unmarshal(body, &sub) != nil || !strings.HasPrefix(sub.Secret, "whsec_") {
			t.Fatalf("subscribe: %d %s", status, body)
		}
		secret = sub.Secret
		status, body, _ = f.do("town", "GET", "/clients/hr/webhooks", "")
		if status != 200 || strings.Contains(string(body), sub.Secret) || !strings.Contains(string(body), sub.ID) {
			t.Fatalf("list shows the secret or misses the subscription: %d %s", status, body)
		}

		// Changes through the API become events; refused ones do not.
		status, body, _ = f.do("super", "POST", "/users", `{"username":"ev-one","kind":"staff","display_name":"x","org_unit_id":"`+f.villageA.ID+`"}`)
		var u struct{ ID string }
		if status != 201 || json.Unmarshal(body, &u) != nil {
			t.Fatalf("create: %d %s", status, body)
		}
		f.do("super", "POST", "/users", `{"username":"x","kind":"staff"}`) // invalid
		f.do("super", "PATCH", "/users/"+u.ID, `{"display_name":"Y"}`)
		f.do("super", "POST", "/users/"+u.ID+":disable", "")
		f.do("super", "DELETE", "/users/"+u.ID, "")
		f.do("super", "POST", "/users:import", "username,kind,org_unit_code\nev-two,staff,townB\n", "Content-Type", "text/csv")
		rows, err := d.Query(ctx, `SELECT event_type FROM webhook_deliveries ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for rows.Next() {
			var s string
			rows.Scan(&s)
			types = append(types, s)
		}
		rows.Close()
		want := []string{"user.created", "membership.added", "user.updated", "user.disabled", "user.deleted", "user.created", "membership.added"}
		if !slices.Equal(types, want) {
			t.Fatalf("outbox %v, want %v", types, want)
		}

		disp := &webhooks.Dispatcher{Hub: f.api.Webhooks}
		if n, err := disp.DeliverDue(ctx); n != len(want) || err != nil {
			t.Fatalf("delivered %d: %v", n, err)
		}
		mu.Lock()
		if len(got) != len(want) {
			t.Errorf("receiver accepted %d events, want %d", len(got), len(want))
		}
		mu.Unlock()
		status, body, _ = f.do("town", "GET", "/clients/hr/webhooks/"+sub.ID+"/deliveries?limit=3", "")
		var log struct {
			Items []webhooks.Attempt
			Next  string
		}
		if status != 200 || json.Unmarshal(body, &log) != nil || len(log.Items) != 3 || log.Items[0].StatusCode != 200 || log.Next == "" {
			t.Fatalf("delivery log: %d %s", status, body)
		}
		if status, body, _ = f.do("auditor", "GET", "/clients/hr/webhooks/"+sub.ID+"/deliveries", ""); status != 403 {
			t.Fatalf("auditor reads the delivery log: %d %s", status, body)
		}
		if status, _, _ = f.do("town", "DELETE", "/clients/hr/webhooks/"+sub.ID, ""); status != 204 {
			t.Fatalf("unsubscribe: %d", status)
		}
		if status, _, _ = f.do("town", "GET", "/clients/hr/webhooks/"+sub.ID+"/deliveries", ""); status != 404 {
			t.Fatalf("log of a deleted subscription: %d", status)
		}
		// Deleting a client ends its subscriptions.
		if status, body, _ = f.do("town", "POST", "/clients/hr/webhooks", `{"url":"https://hr.example.org/hook","event_types":["user.created"]}`); status != 201 {
			t.Fatalf("subscribe again: %d %s", status, body)
		}
		if status, body, _ = f.do("super", "DELETE", "/clients/hr", ""); status != 204 {
			t.Fatalf("delete client: %d %s", status, body)
		}
		if list, err := f.api.Webhooks.Subscriptions(ctx, "hr"); err != nil || len(list) != 0 {
			t.Fatalf("subscriptions of a deleted client: %v %v", list, err)
		}
	})
}

// TestWebhookScope: a client of an org unit hears of that subtree's
// memberships and people and of people in no unit, nothing of another
// town's staff; a city-wide client hears of everything. The last step is
// the whole path: a town admin subscribes its own system and another
// town's new staff member reaches the outbox but is not sent.
func TestWebhookScope(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		ctx := context.Background()
		for _, c := range []*oauth.Client{
			{ID: "town-a-app", Name: "Town A", RedirectURIs: []string{"https://a.example.org/cb"}, OrgUnitID: f.townA.ID},
			{ID: "city-app", Name: "City", RedirectURIs: []string{"https://city.example.org/cb"}},
		} {
			c.ApplyDefaults()
			if err := f.api.Clients.CreateClient(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		citizen := &users.User{Username: "citizen-1", Kind: users.KindCitizen, DisplayName: "市民"}
		if err := f.api.Users.Create(ctx, citizen); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name, client string
			s            webhooks.Subject
			want         bool
		}{
			{"staff of a village below", "town-a-app", webhooks.Subject{UserID: f.staffA.ID}, true},
			{"staff of another town", "town-a-app", webhooks.Subject{UserID: f.staffB.ID}, false},
			{"a citizen in no unit", "town-a-app", webhooks.Subject{UserID: citizen.ID}, true},
			{"a membership in its own town", "town-a-app", webhooks.Subject{UserID: f.staffA.ID, OrgUnitID: f.villageA.ID}, true},
			{"a membership in another town", "town-a-app", webhooks.Subject{UserID: f.staffA.ID, OrgUnitID: f.townB.ID}, false},
			{"a membership in the city above", "town-a-app", webhooks.Subject{UserID: f.staffB.ID, OrgUnitID: f.city.ID}, false},
			{"a unit deleted since", "town-a-app", webhooks.Subject{UserID: f.staffA.ID, OrgUnitID: "gone"}, false},
			{"a city-wide client hears of another town", "city-app", webhooks.Subject{UserID: f.staffB.ID, OrgUnitID: f.townB.ID}, true},
			{"a client deleted since", "no-such-client", webhooks.Subject{UserID: citizen.ID}, false},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if got, err := f.api.WebhookScope(ctx, tc.client, tc.s); err != nil || got != tc.want {
					t.Fatalf("WebhookScope = %v, %v; want %v", got, err, tc.want)
				}
			})
		}

		var mu sync.Mutex
		var sent []string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			defer mu.Unlock()
			sent = append(sent, string(body))
		}))
		defer srv.Close()
		if status, body, _ := f.do("town", "POST", "/clients/town-a-app/webhooks", `{"url":"`+srv.URL+`/hook","event_types":["user.created","membership.added","membership.updated"]}`); status != 201 {
			t.Fatalf("subscribe: %d %s", status, body)
		}
		if status, body, _ := f.do("super", "POST", "/users", `{"username":"secret-b","kind":"staff","display_name":"Secret Person","email":"secret@townb.example.org","org_unit_id":"`+f.townB.ID+`"}`); status != 201 {
			t.Fatalf("create: %d %s", status, body)
		}
		if status, body, _ := f.do("super", "PUT", "/org-units/"+f.townB.ID+"/members/"+f.staffB.ID, `{"role":"auditor"}`); status != 200 {
			t.Fatalf("grant: %d %s", status, body)
		}
		if status, body, _ := f.do("super", "PUT", "/org-units/"+f.villageA.ID+"/members/"+f.staffA.ID, `{"role":"admin"}`); status != 200 {
			t.Fatalf("grant: %d %s", status, body)
		}
		disp := &webhooks.Dispatcher{Hub: f.api.Webhooks, InScope: f.api.WebhookScope}
		if _, err := disp.DeliverDue(ctx); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(sent) != 1 || !strings.Contains(sent[0], f.staffA.ID) {
			t.Fatalf("town A's system was sent %d events, want only the village's role change: %q", len(sent), sent)
		}
		for _, s := range sent {
			if strings.Contains(s, "secret") || strings.Contains(s, f.staffB.ID) {
				t.Errorf("town A's system heard of town B: %s", s)
			}
		}
	})
}
