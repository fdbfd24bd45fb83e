package certs

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

func TestCreateLicenceTypeAs(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newLicenceFixture(t, d)
		body := testCreditCode(t)
		good := LicenceType{TypeCode: body + "021", Name: "Food permit", DefiningBodyCreditCode: body,
			Fields: []LicenceField{{Name: "scope", Label: "Scope", Shareable: true}, {Name: "address"}}}
		if _, err := f.lics.CreateLicenceTypeAs(ctx, "cli", good); err != nil {
			t.Fatal(err)
		}
		many := make([]LicenceField, MaxLicenceFields+1)
		for i := range many {
			many[i].Name = "f" + strings.Repeat("x", i)
		}
		bad := []struct {
			name string
			t    LicenceType
			err  error
			msg  string
		}{
			{"duplicate", good, ErrLicenceTypeExists, "already exists"},
			{"long name", LicenceType{TypeCode: body + "022", Name: strings.Repeat("名", MaxLicenceTypeName+1), DefiningBodyCreditCode: body}, ErrInvalid, "name"},
			{"field with colon", LicenceType{TypeCode: body + "023", Name: "x", DefiningBodyCreditCode: body, Fields: []LicenceField{{Name: "a:b"}}}, ErrInvalid, "colons"},
			{"too many fields", LicenceType{TypeCode: body + "024", Name: "x", DefiningBodyCreditCode: body, Fields: many}, ErrInvalid, "at most"},
			{"control in label", LicenceType{TypeCode: body + "025", Name: "x", DefiningBodyCreditCode: body, Fields: []LicenceField{{Name: "a", Label: "\n"}}}, ErrInvalid, "label"},
		}
		for _, tc := range bad {
			if _, err := f.lics.CreateLicenceTypeAs(ctx, "cli", tc.t); !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("%s: err = %v, want %v naming %q", tc.name, err, tc.err, tc.msg)
			}
		}
		list, err := f.lics.LicenceTypes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 { // the fixture's and good
			t.Fatalf("%d types stored, want 2", len(list))
		}
		for _, typ := range list {
			if typ.TypeCode == good.TypeCode && (!typ.Fields[0].Shareable || typ.Fields[1].Shareable) {
				t.Fatalf("shareable flags not kept: %+v", typ.Fields)
			}
		}
		evs, err := audit.NewLog(d).List(ctx, audit.Filter{Subject: good.TypeCode, Limit: 10})
		if err != nil || len(evs) != 1 || evs[0].Actor != "cli" || evs[0].Action != "licence.type.create" {
			t.Fatalf("audit of the type: %+v %v", evs, err)
		}
	})
}
