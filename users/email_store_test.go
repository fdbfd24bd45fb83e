package users

import (
	"context"
	"errors"
	"testing"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

func TestGetByEmailFindsOnlyASingleAccount(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newTestStore(t, d)
		add := func(name, email string) *User {
			u := &User{Username: name, Kind: KindCitizen, Email: email}
			if err := s.Create(ctx, u); err != nil {
				t.Fatal(err)
			}
			return u
		}
		one := add("only-one", "Alone@Example.org")
		add("twin-a", "twin@example.org")
		add("twin-b", "twin@example.org")
		tests := []struct {
			email  string
			wantID string // "" for not found
		}{
			{"alone@example.org", one.ID},
			{" ALONE@EXAMPLE.ORG ", one.ID},
			{"twin@example.org", ""},
			{"nobody@example.org", ""},
			{"not an address", ""},
			{"", ""},
		}
		for _, tc := range tests {
			u, err := s.GetByEmail(ctx, tc.email)
			switch {
			case tc.wantID == "" && !errors.Is(err, db.ErrNotFound):
				t.Errorf("GetByEmail(%q) = %v, %v; want ErrNotFound", tc.email, u, err)
			case tc.wantID != "" && (err != nil || u.ID != tc.wantID):
				t.Errorf("GetByEmail(%q) = %v, %v; want %s", tc.email, u, err, tc.wantID)
			}
		}
	})
}
