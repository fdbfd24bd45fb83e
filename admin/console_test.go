package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

// idNumber builds a valid resident ID number from 17 digits.
func idNumber(first17 string) string {
	weights := [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i := range 17 {
		sum += int(first17[i]-'0') * weights[i]
	}
	return first17 + string("10X98765432"[sum%11])
}

func TestSearchByIDNumberKeepsToTheCallersRights(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		id := idNumber("11010519491231002")
		status, body, _ := f.do("super", "POST", "/users",
			fmt.Sprintf(`{"username":"with-id","kind":"citizen","id_number":%q,"org_unit_id":%q}`, id, f.townB.ID))
		if status != http.StatusCreated {
			t.Fatalf("create: %d %s", status, body)
		}
		for _, c := range []struct {
			token string
			found int
		}{{"super", 1}, {"town", 0}} {
			status, body, _ := f.do(c.token, "GET", "/users?id_number="+id, "")
			var page userPage
			if status != http.StatusOK || json.Unmarshal(body, &page) != nil {
				t.Fatalf("%s: %d %s", c.token, status, body)
			}
			if len(page.Items) != c.found {
				t.Fatalf("%s finds %d accounts, want %d", c.token, len(page.Items), c.found)
			}
			if c.found == 1 && page.Items[0].IDNumber == id {
				t.Fatal("the search answers the ID number unmasked")
			}
		}
	})
}

// TestInvokeRunsTheAPIWithTheBrowsersSession checks the console's way in:
// the session cookie decides the roles, exactly as for a browser's call.
func TestInvokeRunsTheAPIWithTheBrowsersSession(t *testing.T) {
	f := newFixture(t, dbtest.Open(t, db.SQLite))
	f.sessions["town-session"] = f.townAdmin.ID
	r := httptest.NewRequest("GET", "/admin/users", nil)
	r.AddCookie(&http.Cookie{Name: "sso_session", Value: "town-session"})
	r.AddCookie(&http.Cookie{Name: "sso_csrf", Value: "token"})
	if res := f.api.Invoke(r, "GET", "/users/"+f.staffA.ID, nil); res.Status != http.StatusOK {
		t.Fatalf("own town: %d %s", res.Status, res.Body)
	}
	if res := f.api.Invoke(r, "GET", "/users/"+f.staffB.ID, nil); res.Problem == nil || res.Problem.Status != http.StatusForbidden {
		t.Fatalf("other town: %d %s", res.Status, res.Body)
	}
	if res := f.api.Invoke(r, "POST", "/users/"+f.staffA.ID+":set-level", map[string]any{"level": 2}); res.Problem == nil || len(res.Problem.Errors) != 1 {
		t.Fatalf("set-level without a reason: %d %s", res.Status, res.Body)
	}
	anon := httptest.NewRequest("GET", "/admin/users", nil)
	if res := f.api.Invoke(anon, "GET", "/users/"+f.staffA.ID, nil); res.Status != http.StatusUnauthorized {
		t.Fatalf("without a session: %d", res.Status)
	}
}

func TestSearchByNameKeepsToTheCallersRights(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		for _, c := range []struct {
			token, query string
			want         []string
			status       int
		}{
			{"super", "name=staff", []string{"staff-a", "staff-b"}, 200},
			{"super", "name=staff&org_unit=" + f.townA.ID, []string{"staff-a"}, 200},
			{"town", "name=staff&org_unit=" + f.townA.ID, []string{"staff-a"}, 200},
			{"town", "name=staff-b&org_unit=" + f.townA.ID, nil, 200},
			{"town", "name=staff", nil, 403}, // all accounts: super admins only
			{"super", "username=staff-a&name=nobody", nil, 200},
		} {
			status, body, _ := f.do(c.token, "GET", "/users?"+c.query, "")
			if status != c.status {
				t.Fatalf("%s %s: %d %s", c.token, c.query, status, body)
			}
			if status != 200 {
				continue
			}
			var page userPage
			if err := json.Unmarshal(body, &page); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, u := range page.Items {
				got = append(got, u.Username)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("%s %s: %v, want %v", c.token, c.query, got, c.want)
			}
		}
	})
}
