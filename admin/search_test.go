package admin

import (
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/url"
	"slices"
	"testing"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/users"
)

// usernames of a /users answer, and its next cursor.
func searchPage(t *testing.T, f *fixture, token, query string) ([]string, string, int) {
	t.Helper()
	status, body, _ := f.do(token, "GET", "/users?"+query, "")
	var page struct {
		Items []struct {
			Username string `json:"username"`
		} `json:"items"`
		Next string `json:"next"`
	}
	json.Unmarshal(body, &page)
	var names []string
	for _, u := range page.Items {
		names = append(names, u.Username)
	}
	return names, page.Next, status
}

func TestSearchByNameAndIDNumber(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		// Every fixture person's name is their username: "staff-a", "staff-b", ...
		var got []string
		after := ""
		for range 5 {
			names, next, status := searchPage(t, f, "super", "name=staff&limit=1&after="+url.QueryEscape(after))
			if status != 200 {
				t.Fatalf("status %d", status)
			}
			got = append(got, names...)
			if next == "" {
				break
			}
			after = next
		}
		if !slices.Equal(got, []string{"staff-a", "staff-b"}) {
			t.Fatalf("super admin paging by name: %v", got)
		}
		// A town's admin searches names within its unit, not across the city.
		if _, _, status := searchPage(t, f, "town", "name=staff"); status != 403 {
			t.Fatalf("town admin across all accounts: %d, want 403", status)
		}
		if _, _, status := searchPage(t, f, "auditor", "name=staff"); status != 403 {
			t.Fatalf("auditor: %d, want 403", status)
		}
		if _, _, status := searchPage(t, f, "super", "name=staff&after=not-a-cursor!"); status != 400 {
			t.Fatalf("bad cursor: %d, want 400", status)
		}

		idNumber := testIDNumber(t)
		if _, err := f.api.Users.Update(t.Context(), f.staffB.ID, func(u *users.User) error { u.IDNumber = idNumber; return nil }); err != nil {
			t.Fatal(err)
		}
		if names, _, _ := searchPage(t, f, "super", "id_number="+idNumber); !slices.Equal(names, []string{"staff-b"}) {
			t.Fatalf("by ID number: %v", names)
		}
		if names, _, _ := searchPage(t, f, "town", "id_number="+idNumber); len(names) != 0 {
			t.Fatalf("town admin found another town's person by ID number: %v", names)
		}
	})
}

// testIDNumber makes a valid resident ID number of nobody in particular:
// the check character is the one NormalizeIDNumber accepts.
func testIDNumber(t *testing.T) string {
	t.Helper()
	body := fmt.Sprintf("110101%04d%02d%02d%03d", 1950+mrand.IntN(60), 1+mrand.IntN(12), 1+mrand.IntN(28), mrand.IntN(1000))
	for _, c := range "0123456789X" {
		if n, err := users.NormalizeIDNumber(body + string(c)); err == nil {
			return n
		}
	}
	t.Fatal("no check character fits")
	return ""
}
