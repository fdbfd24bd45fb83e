package users_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/kek"
	"github.com/govsso/sso/users"
)

func newStore(t testing.TB, d *db.DB) *users.SQLStore {
	b := make([]byte, kek.KeySize)
	rand.Read(b)
	k, err := kek.New(b)
	if err != nil {
		t.Fatal(err)
	}
	return users.NewSQLStore(d, k)
}

func TestCreateAndFind(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		u := &users.User{Username: "Alice", Kind: users.KindCitizen, DisplayName: "爱丽丝", Phone: "+86 138-1234-5678", Email: "Alice@Example.org"}
		if err := s.Create(ctx, u); err != nil {
			t.Fatal(err)
		}
		if u.ID == "" || u.Username != "alice" || u.Phone != "13812345678" || u.Status != users.StatusActive || u.AssuranceLevel != 1 {
			t.Fatalf("created: %+v", u)
		}
		lookups := map[string]func() (*users.User, error){
			"id":              func() (*users.User, error) { return s.Get(ctx, u.ID) },
			"username":        func() (*users.User, error) { return s.GetByUsername(ctx, "ALICE") },
			"phone":           func() (*users.User, error) { return s.GetByPhone(ctx, "13812345678") },
			"phone formatted": func() (*users.User, error) { return s.GetByPhone(ctx, "0086 138 1234 5678") },
		}
		for name, get := range lookups {
			got, err := get()
			if err != nil || got.ID != u.ID || got.Phone != u.Phone || got.DisplayName != "爱丽丝" || got.Email != "alice@example.org" || !got.CreatedAt.Equal(u.CreatedAt) {
				t.Errorf("by %s: %+v, %v", name, got, err)
			}
		}
		for name, get := range map[string]func() (*users.User, error){
			"id":        func() (*users.User, error) { return s.Get(ctx, "nope") },
			"username":  func() (*users.User, error) { return s.GetByUsername(ctx, "bob") },
			"phone":     func() (*users.User, error) { return s.GetByPhone(ctx, "13900000000") },
			"bad phone": func() (*users.User, error) { return s.GetByPhone(ctx, "x") },
		} {
			if _, err := get(); !errors.Is(err, db.ErrNotFound) {
				t.Errorf("missing by %s: %v", name, err)
			}
		}
		var enc []byte
		var idx string
		if err := d.QueryRow(ctx, `SELECT phone_enc, phone_index FROM users WHERE id = ?`, u.ID).Scan(&enc, &idx); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(enc, []byte("13812345678")) || strings.Contains(idx, "13812345678") {
			t.Fatal("the phone number is stored in clear")
		}
	})
}

func TestDuplicatesConflictAndChangeNothing(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		if err := s.Create(ctx, &users.User{Username: "alice", Kind: users.KindCitizen, Phone: "13812345678"}); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			u    *users.User
			want string
		}{
			{"same username", &users.User{Username: "ALICE", Kind: users.KindStaff}, `username "alice" already exists`},
			{"same phone", &users.User{Username: "bob", Kind: users.KindCitizen, Phone: "+8613812345678"}, "phone number 138****5678 already exists"},
		}
		for _, tc := range tests {
			err := s.Create(ctx, tc.u)
			if !errors.Is(err, db.ErrConflict) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: %v", tc.name, err)
			}
			// Inside a caller's transaction the conflict is named too, although
			// PostgreSQL refuses further queries after a unique violation.
			tc.u.ID = ""
			err = d.InTx(ctx, func(ctx context.Context) error { return s.Create(ctx, tc.u) })
			if !errors.Is(err, db.ErrConflict) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s in a transaction: %v", tc.name, err)
			}
		}
		if n, _ := s.Count(ctx); n != 1 {
			t.Fatalf("%d accounts after failed creates", n)
		}
		if got, err := s.GetByUsername(ctx, "alice"); err != nil || got.Kind != users.KindCitizen || got.Phone != "13812345678" {
			t.Fatalf("the first account changed: %+v, %v", got, err)
		}
	})
}

func TestListPagesInCreationOrder(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		var ids []string
		for i := 0; i < 25; i++ {
			kind := users.KindCitizen
			if i%5 == 0 {
				kind = users.KindStaff
			}
			u := &users.User{Username: "user" + string(rune('a'+i)) + "x", Kind: kind}
			if err := s.Create(ctx, u); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, u.ID)
		}
		var seen []string
		after := ""
		for {
			page, err := s.List(ctx, users.ListOptions{AfterID: after, Limit: 7})
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			for _, u := range page {
				seen = append(seen, u.ID)
			}
			after = page[len(page)-1].ID
		}
		if strings.Join(seen, ",") != strings.Join(ids, ",") {
			t.Fatalf("pages gave %d ids, not the %d created in order", len(seen), len(ids))
		}
		staff, _ := s.List(ctx, users.ListOptions{Kind: users.KindStaff})
		if len(staff) != 5 {
			t.Fatalf("kind filter: %d", len(staff))
		}
		for _, u := range staff {
			if u.Kind != users.KindStaff {
				t.Fatalf("kind filter returned %s", u.Kind)
			}
		}
		if _, err := s.Update(ctx, ids[3], func(u *users.User) error { u.Status = users.StatusDisabled; return nil }); err != nil {
			t.Fatal(err)
		}
		disabled, _ := s.List(ctx, users.ListOptions{Status: users.StatusDisabled})
		if len(disabled) != 1 || disabled[0].ID != ids[3] {
			t.Fatalf("status filter: %d accounts", len(disabled))
		}
		active, _ := s.List(ctx, users.ListOptions{Status: users.StatusActive, Kind: users.KindStaff, AfterID: ids[5]})
		if len(active) != 3 || active[0].ID != ids[10] {
			t.Fatalf("combined filters after %s: %d accounts", ids[5], len(active))
		}
		if n, _ := s.Count(ctx); n != 25 {
			t.Fatalf("count %d", n)
		}
	})
}

func TestUpdate(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		u := &users.User{Username: "carol", Kind: users.KindCitizen}
		if err := s.Create(ctx, u); err != nil {
			t.Fatal(err)
		}
		got, err := s.Update(ctx, u.ID, func(u *users.User) error {
			u.Status, u.Phone, u.DisplayName = users.StatusDisabled, "13987654321", "Carol"
			return nil
		})
		if err != nil || got.Status != users.StatusDisabled || !got.UpdatedAt.After(u.UpdatedAt) {
			t.Fatalf("update: %+v %v", got, err)
		}
		if byPhone, err := s.GetByPhone(ctx, "13987654321"); err != nil || byPhone.ID != u.ID {
			t.Fatalf("new phone not indexed: %v", err)
		}
		stored, err := s.Get(ctx, u.ID)
		if err != nil || stored.Status != users.StatusDisabled || stored.DisplayName != "Carol" || !stored.UpdatedAt.Equal(got.UpdatedAt) {
			t.Fatalf("update not persisted: %+v, %v", stored, err)
		}
		_, err = s.Update(ctx, u.ID, func(u *users.User) error { u.Email, u.DisplayName = "not an address", "x\x00"; return nil })
		var ve *users.ValidationError
		if !errors.As(err, &ve) || len(ve.Fields) != 2 {
			t.Fatalf("invalid update: %v", err)
		}
		after, _ := s.Get(ctx, u.ID)
		if after.DisplayName != "Carol" || after.Email != "" {
			t.Fatalf("a failed update changed the row: %+v", after)
		}
		if _, err := s.Update(ctx, "nope", func(*users.User) error { return nil }); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("update missing: %v", err)
		}
	})
}

func TestUpdateToTakenValuesConflicts(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		alice := &users.User{Username: "alice", Kind: users.KindCitizen, Phone: "13812345678"}
		bob := &users.User{Username: "bob", Kind: users.KindCitizen}
		for _, u := range []*users.User{alice, bob} {
			if err := s.Create(ctx, u); err != nil {
				t.Fatal(err)
			}
		}
		tests := []struct {
			name   string
			change func(*users.User) error
			want   string
		}{
			{"username", func(u *users.User) error { u.Username = "ALICE"; return nil }, `username "alice" already exists`},
			{"phone", func(u *users.User) error { u.Phone = "138 1234 5678"; return nil }, "phone number 138****5678 already exists"},
		}
		for _, tc := range tests {
			if _, err := s.Update(ctx, bob.ID, tc.change); !errors.Is(err, db.ErrConflict) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: %v", tc.name, err)
			}
		}
		got, err := s.Get(ctx, bob.ID)
		if err != nil || got.Username != "bob" || got.Phone != "" || !got.UpdatedAt.Equal(bob.UpdatedAt) {
			t.Fatalf("a refused update changed the row: %+v, %v", got, err)
		}
		// An account keeps its own username and phone number.
		if _, err := s.Update(ctx, alice.ID, func(u *users.User) error { u.DisplayName = "Alice"; return nil }); err != nil {
			t.Fatalf("update that keeps the unique fields: %v", err)
		}
	})
}
