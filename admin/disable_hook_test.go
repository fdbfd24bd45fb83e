package admin

import (
	"context"
	"errors"
	"testing"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/users"
)

// Disabling runs the OnDisable hook in its transaction: a hook that fails
// leaves the account active.
func TestDisableRunsTheHookInItsTransaction(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		id := f.staffA.ID
		var called []string
		fail := errors.New("hook failed")
		f.api.OnDisable = func(ctx context.Context, userID string) error {
			called = append(called, userID)
			if !db.InTransaction(ctx) {
				t.Error("the hook ran outside the disabling transaction")
			}
			if len(called) == 1 {
				return fail
			}
			return nil
		}
		if status, body, _ := f.do("town", "POST", "/users/"+id+":disable", ""); status != 500 {
			t.Fatalf("failing hook: %d %s", status, body)
		}
		if u, _ := f.api.Users.Get(context.Background(), id); u.Status != users.StatusActive {
			t.Fatalf("a failed hook left the account %s", u.Status)
		}
		if status, body, _ := f.do("town", "POST", "/users/"+id+":disable", ""); status != 200 {
			t.Fatalf("disable: %d %s", status, body)
		}
		if u, _ := f.api.Users.Get(context.Background(), id); u.Status != users.StatusDisabled || len(called) != 2 || called[1] != id {
			t.Fatalf("status %s, hook calls %v", u.Status, called)
		}
		if status, _, _ := f.do("town", "POST", "/users/"+id+":enable", ""); status != 200 || len(called) != 2 {
			t.Fatalf("enable ran the hook: %v", called)
		}
	})
}

// Deleting runs the OnDelete hook in its transaction: a hook that fails
// leaves the account undeleted, and disabling does not run it.
func TestDeleteRunsTheHookInItsTransaction(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		id := f.staffA.ID
		var called []string
		f.api.OnDelete = func(ctx context.Context, userID string) error {
			called = append(called, userID)
			if !db.InTransaction(ctx) {
				t.Error("the hook ran outside the deleting transaction")
			}
			if len(called) == 1 {
				return errors.New("hook failed")
			}
			return nil
		}
		if status, _, _ := f.do("town", "POST", "/users/"+id+":disable", ""); status != 200 || len(called) != 0 {
			t.Fatalf("disable: %d, delete hook calls %v", status, called)
		}
		if status, body, _ := f.do("town", "DELETE", "/users/"+id, ""); status != 500 {
			t.Fatalf("failing hook: %d %s", status, body)
		}
		if u, _ := f.api.Users.Get(context.Background(), id); u.Status == users.StatusDeleted {
			t.Fatal("a failed hook left the account deleted")
		}
		if status, body, _ := f.do("town", "DELETE", "/users/"+id, ""); status != 204 {
			t.Fatalf("delete: %d %s", status, body)
		}
		if u, _ := f.api.Users.Get(context.Background(), id); u.Status != users.StatusDeleted || len(called) != 2 || called[1] != id {
			t.Fatalf("status %s, hook calls %v", u.Status, called)
		}
	})
}
