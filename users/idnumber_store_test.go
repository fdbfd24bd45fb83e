package users

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

func TestIDNumberIsSealedAndFound(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newTestStore(t, d)
		idNumber := randomIDNumberEndingInX()
		u := &User{Username: "carol", Kind: KindCitizen, IDNumber: strings.ToLower(idNumber)}
		if err := s.Create(ctx, u); err != nil {
			t.Fatal(err)
		}
		if u.IDNumber != idNumber {
			t.Fatalf("created with %q, want normalized %q", u.IDNumber, idNumber)
		}
		for _, spelling := range []string{idNumber, strings.ToLower(idNumber), " " + idNumber + " "} {
			got, err := s.GetByIDNumber(ctx, spelling)
			if err != nil || got.ID != u.ID || got.IDNumber != idNumber {
				t.Errorf("GetByIDNumber(%q) = %+v, %v", spelling, got, err)
			}
		}
		if got, err := s.Get(ctx, u.ID); err != nil || got.IDNumber != idNumber {
			t.Errorf("Get: %+v, %v", got, err)
		}
		var enc []byte
		var idx string
		if err := d.QueryRow(ctx, `SELECT id_number_enc, id_number_index FROM users WHERE id = ?`, u.ID).Scan(&enc, &idx); err != nil {
			t.Fatal(err)
		}
		if len(enc) == 0 || bytes.Contains(enc, []byte(idNumber[:17])) || strings.Contains(idx, idNumber[:17]) {
			t.Fatal("the ID number is not sealed")
		}
	})
}

func TestGetByIDNumberMissing(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newTestStore(t, d)
		valid := randomIDNumber()
		wrongCheck := valid[:17] + string("0123456789X"[(strings.IndexByte("0123456789X", valid[17])+1)%11])
		if err := s.Create(ctx, &User{Username: "dave", Kind: KindCitizen}); err != nil {
			t.Fatal(err)
		}
		for name, in := range map[string]string{"unknown": valid, "wrong check": wrongCheck, "empty": "", "garbage": "x"} {
			if _, err := s.GetByIDNumber(ctx, in); !errors.Is(err, db.ErrNotFound) {
				t.Errorf("%s: %v", name, err)
			}
		}
	})
}

func TestIDNumberConflictsAndUpdates(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newTestStore(t, d)
		idNumber := randomIDNumber()
		first := &User{Username: "erin", Kind: KindCitizen, IDNumber: idNumber}
		if err := s.Create(ctx, first); err != nil {
			t.Fatal(err)
		}
		err := s.Create(ctx, &User{Username: "frank", Kind: KindCitizen, IDNumber: idNumber})
		if !errors.Is(err, db.ErrConflict) || !strings.Contains(err.Error(), MaskIDNumber(idNumber)) || strings.Contains(err.Error(), idNumber) {
			t.Fatalf("duplicate ID number: %v", err)
		}

		second := &User{Username: "grace", Kind: KindCitizen}
		if err := s.Create(ctx, second); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Update(ctx, second.ID, func(u *User) error { u.IDNumber = idNumber; return nil }); !errors.Is(err, db.ErrConflict) {
			t.Fatalf("update to a taken ID number: %v", err)
		}
		if _, err := s.Update(ctx, first.ID, func(u *User) error { u.IDNumber = ""; return nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetByIDNumber(ctx, idNumber); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("cleared ID number still found: %v", err)
		}
		got, err := s.Update(ctx, second.ID, func(u *User) error { u.IDNumber = idNumber; return nil })
		if err != nil || got.IDNumber != idNumber {
			t.Fatalf("take over a freed ID number: %+v, %v", got, err)
		}
		if found, err := s.GetByIDNumber(ctx, idNumber); err != nil || found.ID != second.ID {
			t.Fatalf("after move: %+v, %v", found, err)
		}
	})
}

func TestNormalizeChecksIDNumber(t *testing.T) {
	valid := randomIDNumber()
	tests := []struct {
		name, in string
		wantErr  error
	}{
		{"empty is allowed", "", nil},
		{"valid", valid, nil},
		{"too short", valid[:17], ErrIDNumberFormat},
		{"impossible date", valid[:10] + "1332" + valid[14:], ErrIDNumberBirthDate},
	}
	for _, tc := range tests {
		u := &User{Username: "heidi", Kind: KindCitizen, IDNumber: tc.in}
		err := u.Normalize()
		var v *ValidationError
		switch {
		case tc.wantErr == nil && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantErr != nil && (!errors.As(err, &v) || v.Fields[0].Field != "id_number" || v.Fields[0].Reason != tc.wantErr.Error()):
			t.Errorf("%s: %v, want id_number: %v", tc.name, err, tc.wantErr)
		}
	}
}
