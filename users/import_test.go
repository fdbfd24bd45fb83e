package users_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/users"
)

// testIDNumber makes a valid GB 11643 number for person n.
func testIDNumber(n int) string {
	body := fmt.Sprintf("110101198001%02d%03d", n%28+1, n%1000)
	weights := []int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i := 0; i < 17; i++ {
		sum += int(body[i]-'0') * weights[i]
	}
	return body + string("10X98765432"[sum%11])
}

// importCSV is a file of n valid rows after the header, person i having
// username u<i>, phone 139<8 digits of i> and ID number testIDNumber(i)
// when i < 1000 (ID numbers repeat every 1000 people).
func importCSV(n int) string {
	var b strings.Builder
	b.WriteString("username,display_name,phone,email,id_number,kind\n")
	for i := 0; i < n; i++ {
		id := ""
		if i < 1000 {
			id = testIDNumber(i)
		}
		fmt.Fprintf(&b, "user%d,人员%d,139%08d,user%d@example.org,%s,citizen\n", i, i, i, i, id)
	}
	return b.String()
}

type importEnv struct {
	d   *db.DB
	s   *users.SQLStore
	o   *users.OrgUnits
	log *audit.Log
	im  *users.Importer
}

func newImportEnv(t testing.TB, d *db.DB) importEnv {
	s := newStore(t, d)
	o := users.NewOrgUnits(d)
	l := audit.NewLog(d)
	return importEnv{d: d, s: s, o: o, log: l, im: users.NewImporter(d, s, o, l)}
}

func (e importEnv) count(t testing.TB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := e.d.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestImportReportsEveryBadRowAndImportsTheRest(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		e := newImportEnv(t, d)
		unit, err := e.o.Create(ctx, "", "town-a", "甲镇", "town")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.s.Create(ctx, &users.User{Username: "taken", Kind: users.KindCitizen, Phone: "13700000000"}); err != nil {
			t.Fatal(err)
		}
		file := "\xef\xbb\xbfKind,username,display_name,phone,email,id_number,org_unit_code,role\n" + // BOM, any order, any case
			"citizen,alice,爱丽丝,13800000001,alice@example.org," + testIDNumber(1) + ",town-a,admin\n" + // line 2: ok
			"citizen,bob,,13800000002,,,,\n" + // line 3: ok
			"citizen,x,,,,,,\n" + // 4: username too short
			"robot,carol,,,,,,\n" + // 5: kind
			"citizen,dave,,12345,not-an-address,110101198001011234,,\n" + // 6: phone, email, id check
			"citizen,ALICE,,,,,,\n" + // 7: duplicate username in file
			"citizen,erin,,13800000001,,,,\n" + // 8: duplicate phone in file
			"citizen,taken,,,,,,\n" + // 9: username in the database
			"citizen,frank,,137-0000-0000,,,,\n" + // 10: phone in the database
			"citizen,grace,,,,,nowhere,\n" + // 11: unknown unit
			"citizen,heidi,,,,,,admin\n" + // 12: role without unit
			"citizen,ivan,,\n" + // 13: too few fields
			"\"citizen\",\"judy, jr\",\"朱迪\",,,,,\n" + // 14: quoted comma: username invalid
			"staff,\"multi\nline\",,,,,,\n" + // 15-16: newline in a quoted field, invalid username
			"staff,kate,,,,,town-a,member\n" // 17: ok
		rep, err := e.im.Import(ctx, strings.NewReader(file), users.ImportOptions{BatchSize: 3, Audit: audit.Event{Actor: "tester"}})
		if err != nil {
			t.Fatal(err)
		}
		want := []struct {
			line   int
			column string
		}{
			{4, "username"}, {5, "kind"}, {6, "email"}, {6, "phone"}, {6, "id_number"}, {7, "username"}, {8, "phone"},
			{9, "username"}, {10, "phone"}, {11, "org_unit_code"}, {12, "role"}, {13, ""}, {14, "username"}, {15, "username"},
		}
		got := map[string]bool{}
		for _, re := range rep.Errors {
			got[fmt.Sprintf("%d/%s", re.Line, re.Column)] = true
			if re.Reason == "" {
				t.Errorf("line %d %s: no reason", re.Line, re.Column)
			}
		}
		for _, w := range want {
			if !got[fmt.Sprintf("%d/%s", w.line, w.column)] {
				t.Errorf("no error for line %d column %q; errors: %+v", w.line, w.column, rep.Errors)
			}
		}
		if len(rep.Errors) != len(want) {
			t.Errorf("%d errors, want %d: %+v", len(rep.Errors), len(want), rep.Errors)
		}
		if rep.Rows != 15 || rep.Imported != 3 || rep.Valid != 3 || rep.Rejected != 12 || rep.Aborted {
			t.Fatalf("report: %+v", rep)
		}
		alice, err := e.s.GetByIDNumber(ctx, testIDNumber(1))
		if err != nil || alice.Username != "alice" || alice.DisplayName != "爱丽丝" || alice.Phone != "13800000001" || alice.PasswordHash != "" {
			t.Fatalf("alice: %+v, %v", alice, err)
		}
		if n := e.count(t, `SELECT count(*) FROM org_memberships WHERE org_unit_id = ? AND role IN ('admin', 'member')`, unit.ID); n != 2 {
			t.Errorf("%d memberships, want alice's and kate's", n)
		}
		if n := e.count(t, `SELECT count(*) FROM users`); n != 4 {
			t.Errorf("%d accounts, want 4", n)
		}
		if n := e.count(t, `SELECT count(*) FROM audit_events WHERE action = 'user.create' AND actor = 'tester'`); n != 3 {
			t.Errorf("%d user.create records, want 3", n)
		}
		// The role given with the account is audited with it.
		if list, err := e.log.List(ctx, audit.Filter{Subject: alice.ID, Action: audit.ActionUserCreate}); err != nil || len(list) != 1 ||
			list[0].Details["role"] != "admin" || list[0].Details["org_unit_id"] != unit.ID {
			t.Errorf("alice's user.create record: %+v, %v; want role admin in %s", list, err, unit.ID)
		}
		if n := e.count(t, `SELECT count(*) FROM audit_events WHERE action = 'user.import' AND result = 'success'`); n != 1 {
			t.Errorf("%d summary records, want 1", n)
		}
	})
}

func TestImportModes(t *testing.T) {
	good := "username,kind\nann,citizen\nben,staff\n"
	bad := good + "b,citizen\n"
	tests := []struct {
		name                string
		file                string
		opts                users.ImportOptions
		wantUsers, wantRows int
		wantValid           int
		wantSummary         string // result of the user.import record, "" for none
	}{
		{"default good", good, users.ImportOptions{}, 2, 2, 2, "success"},
		{"all-or-nothing good", good, users.ImportOptions{AllOrNothing: true, BatchSize: 1}, 2, 2, 2, "success"},
		{"all-or-nothing bad writes nothing", bad, users.ImportOptions{AllOrNothing: true, BatchSize: 1}, 0, 3, 2, "failure"},
		{"dry run writes nothing", bad, users.ImportOptions{DryRun: true}, 0, 3, 2, ""},
		{"dry run all-or-nothing", good, users.ImportOptions{DryRun: true, AllOrNothing: true}, 0, 2, 2, ""},
		{"default bad imports the good rows", bad, users.ImportOptions{BatchSize: 1}, 2, 3, 2, "success"},
	}
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ctx := context.Background()
				e := newImportEnv(t, dbtest.Open(t, d.Dialect()))
				rep, err := e.im.Import(ctx, strings.NewReader(tt.file), tt.opts)
				if err != nil {
					t.Fatal(err)
				}
				if n := e.count(t, `SELECT count(*) FROM users`); n != tt.wantUsers || rep.Imported != tt.wantUsers {
					t.Errorf("%d accounts, report says %d imported; want %d", n, rep.Imported, tt.wantUsers)
				}
				if rep.Rows != tt.wantRows || rep.Valid != tt.wantValid {
					t.Errorf("report %+v", rep)
				}
				if n := e.count(t, `SELECT count(*) FROM audit_events WHERE action = 'user.create'`); n != tt.wantUsers {
					t.Errorf("%d user.create records, want %d", n, tt.wantUsers)
				}
				var results []string
				rows, err := e.d.Query(ctx, `SELECT result FROM audit_events WHERE action = 'user.import'`)
				if err != nil {
					t.Fatal(err)
				}
				for rows.Next() {
					var r string
					rows.Scan(&r)
					results = append(results, r)
				}
				rows.Close()
				if want := tt.wantSummary; (want == "" && len(results) != 0) || (want != "" && (len(results) != 1 || results[0] != want)) {
					t.Errorf("summary records %v, want %q", results, want)
				}
			})
		}
	})
}

func TestImportBadFiles(t *testing.T) {
	gbk := func(s string) string {
		b, err := simplifiedchinese.GBK.NewEncoder().String(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name      string
		file      string
		encoding  string
		fileErr   string // part of the ImportFileError, "" when the file is accepted
		wantUsers int
		rowErr    string // part of the first row error's reason
		aborted   bool
	}{
		{"empty", "", "", "empty", 0, "", false},
		{"unknown column", "username,kind,password\n", "", `"password"`, 0, "", false},
		{"repeated column", "username,kind,Username\n", "", "twice", 0, "", false},
		{"missing username", "kind,phone\ncitizen,13800000000\n", "", `"username"`, 0, "", false},
		{"unknown encoding", "username,kind\n", "latin1", "encoding", 0, "", false},
		{"broken header quoting", "\"username,kind\n", "", "header", 0, "", false},
		{"broken quoting stops reading", "username,kind\nann,citizen\nbo\"b,citizen\ncid,citizen\n", "", "", 1, "bare", true},
		{"unterminated quote", "username,kind\nann,citizen\n\"bob,citizen\ncid,citizen\n", "", "", 1, "quote", true},
		{"invalid utf-8", "username,display_name,kind\nann,\xff\xfe,citizen\nbob,b,citizen\n", "", "", 1, "UTF-8", false},
		{"gbk", gbk("username,display_name,kind\nann,张三,citizen\n"), "gbk", "", 1, "", false},
		{"invalid gbk", "username,display_name,kind\nann,\x81\x20,citizen\n" + gbk("bob,李四,citizen\n"), "gbk", "", 1, "GBK", false},
		{"gbk read as utf-8", gbk("username,display_name,kind\nann,张三,citizen\n"), "utf8", "", 0, "UTF-8", false},
	}
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ctx := context.Background()
				e := newImportEnv(t, dbtest.Open(t, d.Dialect()))
				rep, err := e.im.Import(ctx, strings.NewReader(tt.file), users.ImportOptions{Encoding: tt.encoding})
				if tt.fileErr != "" {
					if !errors.Is(err, users.ErrImportFile) || !strings.Contains(err.Error(), tt.fileErr) {
						t.Fatalf("err %v, want a file error naming %s", err, tt.fileErr)
					}
				} else if err != nil {
					t.Fatal(err)
				}
				if n := e.count(t, `SELECT count(*) FROM users`); n != tt.wantUsers {
					t.Errorf("%d accounts, want %d", n, tt.wantUsers)
				}
				if tt.rowErr != "" && (len(rep.Errors) == 0 || !strings.Contains(rep.Errors[0].Reason, tt.rowErr)) {
					t.Errorf("errors %+v, want one saying %q", rep.Errors, tt.rowErr)
				}
				if tt.rowErr == "" && len(rep.Errors) > 0 {
					t.Errorf("unexpected errors %+v", rep.Errors)
				}
				if rep.Aborted != tt.aborted {
					t.Errorf("aborted = %v", rep.Aborted)
				}
			})
		}
	})
}

func TestImportAllowScopesRowsToUnits(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		e := newImportEnv(t, d)
		mine, _ := e.o.Create(ctx, "", "mine", "我的", "town")
		if _, err := e.o.Create(ctx, "", "theirs", "别人的", "town"); err != nil {
			t.Fatal(err)
		}
		allow := func(u *users.OrgUnit) bool { return u != nil && u.ID == mine.ID }
		file := "username,kind,org_unit_code\nann,staff,mine\nbob,staff,theirs\ncid,staff,\n"
		rep, err := e.im.Import(ctx, strings.NewReader(file), users.ImportOptions{Allow: allow})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Imported != 1 || len(rep.Errors) != 2 || rep.Errors[0].Line != 3 || rep.Errors[1].Line != 4 || rep.Errors[1].Column != "org_unit_code" {
			t.Fatalf("report %+v", rep)
		}
		if _, err := e.s.GetByUsername(ctx, "bob"); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("bob was created outside the caller's units: %v", err)
		}
	})
}

// TestImportLarge imports 100,000 rows with a few bad ones on both
// backends: each bad row is reported and every other row is written.
func TestImportLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("imports 100,000 rows")
	}
	const n = 100_000
	file := importCSV(n)
	// Spoil rows 10, 5,000 and 99,999 (file lines 12, 5,002, 100,001).
	lines := strings.SplitAfter(file, "\n")
	lines[11] = "user10,x,1390000001,,,citizen\n"          // bad phone
	lines[5001] = "user4999,dup,,,,citizen\n"              // repeats line 5,001
	lines[100000] = "user99999,x,,,,citizen,extra-field\n" // wrong field count
	file = strings.Join(lines, "")
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		e := newImportEnv(t, d)
		rep, err := e.im.Import(context.Background(), strings.NewReader(file), users.ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Rows != n || rep.Imported != n-3 || len(rep.Errors) != 3 ||
			rep.Errors[0].Line != 12 || rep.Errors[1].Line != 5002 || rep.Errors[2].Line != 100001 {
			t.Fatalf("report: rows %d imported %d errors %+v", rep.Rows, rep.Imported, rep.Errors)
		}
		if c := e.count(t, `SELECT count(*) FROM users`); c != n-3 {
			t.Fatalf("%d accounts, want %d", c, n-3)
		}
	})
}

// BenchmarkImport imports 100,000 generated rows (phone, e-mail, and an ID
// number for the first 1,000) into PostgreSQL and reports rows/s.
func BenchmarkImport(b *testing.B) {
	const n = 100_000
	file := []byte(importCSV(n))
	for b.Loop() {
		b.StopTimer()
		e := newImportEnv(b, dbtest.Open(b, db.Postgres))
		b.StartTimer()
		rep, err := e.im.Import(context.Background(), bytes.NewReader(file), users.ImportOptions{Audit: audit.Event{Actor: "bench"}})
		if err != nil || rep.Imported != n {
			b.Fatalf("imported %d: %v", rep.Imported, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
}
