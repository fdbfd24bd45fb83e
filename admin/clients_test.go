package admin

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

func TestClientSecretRotationWithOverlap(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		ctx := context.Background()
		_, body, _ := f.do("clients", "POST", "/clients", `{"id":"tax","name":"Tax","redirect_uris":["https://tax.example.org/cb"]}`)
		var created map[string]any
		json.Unmarshal(body, &created)
		first, _ := created["client_secret"].(string)
		rotate := func(body string) (int, string, time.Time, []byte) {
			status, b, _ := f.do("clients", "POST", "/clients/tax:rotate-secret", body)
			var out struct {
				ClientSecret            string    `json:"client_secret"`
				PreviousSecretExpiresAt time.Time `json:"previous_secret_expires_at"`
			}
			json.Unmarshal(b, &out)
			return status, out.ClientSecret, out.PreviousSecretExpiresAt, b
		}

		before := time.Now()
		status, second, until, raw := rotate("")
		c, _ := f.api.Clients.GetClient(ctx, "tax")
		if status != 200 || second == "" || until.Before(before.Add(24*time.Hour-time.Minute)) || until.After(time.Now().Add(24*time.Hour)) {
			t.Fatalf("rotate: %d %s", status, raw)
		}
		now := time.Now()
		if !c.VerifySecret(f.api.Secrets, second, now) || !c.VerifySecret(f.api.Secrets, first, now) {
			t.Fatal("during the overlap both secrets must work")
		}
		if c.VerifySecret(f.api.Secrets, first, until) {
			t.Fatal("the old secret works past the overlap")
		}
		if _, b, _ := f.do("clients", "GET", "/clients/tax", ""); strings.Contains(string(b), second) || strings.Contains(string(b), "secret_hash") {
			t.Fatalf("GET shows a secret: %s", b)
		}

		// A shorter overlap on request; longer is refused.
		status, third, until, raw := rotate(`{"overlap":"1h"}`)
		c, _ = f.api.Clients.GetClient(ctx, "tax")
		if status != 200 || until.After(time.Now().Add(time.Hour)) || !c.VerifySecret(f.api.Secrets, second, time.Now()) || c.VerifySecret(f.api.Secrets, first, time.Now()) {
			t.Fatalf("rotate with 1h: %d %s", status, raw)
		}
		for _, bad := range []string{`{"overlap":"48h"}`, `{"overlap":"-1s"}`, `{"overlap":"soon"}`} {
			status, _, _, raw := rotate(bad)
			if p := decodeProblem(t, raw); status != 400 || fieldsOf(p)[0] != "overlap" {
				t.Fatalf("%s: %d %s", bad, status, raw)
			}
		}
		if status, _, _, raw := rotate(`{"overlap":3600}`); status != 400 || decodeProblem(t, raw).Type != ProblemBase+"wrong-type" {
			t.Fatalf("numeric overlap: %d %s", status, raw)
		}
		status, fourth, until, raw := rotate(`{"overlap":"0s"}`)
		c, _ = f.api.Clients.GetClient(ctx, "tax")
		if status != 200 || !until.IsZero() || c.VerifySecret(f.api.Secrets, third, time.Now()) || !c.VerifySecret(f.api.Secrets, fourth, time.Now()) {
			t.Fatalf("rotate without overlap: %d %s", status, raw)
		}
		if strings.Contains(f.logs.String(), fourth) {
			t.Fatal("the log holds a secret")
		}
	})
}

func TestClientsBelongToOrgUnits(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		create := func(id, unit string) {
			body := `{"id":"` + id + `","name":"` + id + `","redirect_uris":["https://` + id + `.example.org/cb"],"org_unit_id":"` + unit + `"}`
			if status, b, _ := f.do("clients", "POST", "/clients", body); status != 201 {
				t.Fatalf("create %s: %d %s", id, status, b)
			}
		}
		create("village-app", f.villageA.ID)
		create("townb-app", f.townB.ID)
		create("city-app", "")
		if status, b, _ := f.do("clients", "POST", "/clients", `{"id":"x","name":"x","redirect_uris":["https://x.example.org/cb"],"org_unit_id":"nope"}`); status != 400 || fieldsOf(decodeProblem(t, b))[0] != "org_unit_id" {
			t.Fatalf("unknown unit: %d %s", status, b)
		}

		_, body, _ := f.do("town", "GET", "/clients", "")
		var list struct{ Items []struct{ ID string } }
		json.Unmarshal(body, &list)
		if len(list.Items) != 1 || list.Items[0].ID != "village-app" {
			t.Fatalf("town admin's list: %s", body)
		}
		tests := []struct {
			method, path, body string
			want               int
		}{
			{"GET", "/clients/village-app", "", 200},
			{"PATCH", "/clients/village-app", `{"name":"Village app"}`, 200},
			{"POST", "/clients/village-app:rotate-secret", "", 200},
			{"GET", "/clients/village-app/consents", "", 200},
			{"GET", "/clients/townb-app", "", 403},
			{"PATCH", "/clients/townb-app", `{"name":"mine now"}`, 403},
			{"POST", "/clients/townb-app:rotate-secret", "", 403},
			{"DELETE", "/clients/townb-app/consents", "", 403},
			{"DELETE", "/clients/city-app", "", 403},
			{"PATCH", "/clients/village-app", `{"org_unit_id":"` + f.townB.ID + `"}`, 403},
			{"PATCH", "/clients/village-app", `{"org_unit_id":"` + f.townA.ID + `"}`, 200},
			{"DELETE", "/clients/village-app", "", 204},
		}
		for _, tt := range tests {
			if status, b, _ := f.do("town", tt.method, tt.path, tt.body); status != tt.want {
				t.Fatalf("%s %s: %d, want %d: %s", tt.method, tt.path, status, tt.want, b)
			}
		}
	})
}
