package users_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/users"
)

// BenchmarkMembers is one page (100) of a unit's member list: of one
// department of 1,000 people, and of the whole city of 20,000 through
// ?subtree=true, which gathers and sorts every membership below.
func BenchmarkMembers(b *testing.B) {
	const departments, perDepartment = 20, 1000
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		b.Run(string(dialect), func(b *testing.B) {
			ctx := context.Background()
			e := newImportEnv(b, dbtest.Open(b, dialect))
			city, err := e.o.Create(ctx, "", "city", "City", "city")
			if err != nil {
				b.Fatal(err)
			}
			var dept *users.OrgUnit
			var csv strings.Builder
			csv.WriteString("username,kind,org_unit_code\n")
			for d := range departments {
				if dept, err = e.o.Create(ctx, city.ID, fmt.Sprintf("d%02d", d), fmt.Sprintf("Department %d", d), "department"); err != nil {
					b.Fatal(err)
				}
				for i := range perDepartment {
					fmt.Fprintf(&csv, "staff-%02d-%04d,staff,d%02d\n", d, i, d)
				}
			}
			if rep, err := e.im.Import(ctx, strings.NewReader(csv.String()), users.ImportOptions{}); err != nil || rep.Imported != departments*perDepartment {
				b.Fatalf("import: %v %+v", err, rep)
			}
			for _, c := range []struct {
				name    string
				unit    *users.OrgUnit
				subtree bool
			}{{"department", dept, false}, {"city-subtree", city, true}} {
				b.Run(c.name, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						if list, err := e.o.Members(ctx, c.unit, c.subtree, "", "", 100); err != nil || len(list) != 100 {
							b.Fatalf("%d members: %v", len(list), err)
						}
					}
				})
			}
		})
	}
}
