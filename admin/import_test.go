package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/users"
)

// importReport is the JSON answer of POST /users:import.
type importReport struct {
	Rows, Valid, Imported, Rejected int
	Aborted                         bool
	Errors                          []users.RowError
}

func TestImportUsersAPI(t *testing.T) {
	csvType := []string{"Content-Type", "text/csv; charset=utf-8"}
	gbk, _ := simplifiedchinese.GBK.NewEncoder().String("username,display_name,kind,org_unit_code\ngbk-one,张三,staff,villageA\n")
	tests := []struct {
		name, token, query, body string
		header                   []string
		want                     int
		wantImported             []string // usernames that must exist afterwards
		wantAbsent               []string
		wantErrors               []string // "line/column" of the report, or problem fields
	}{
		{"super admin imports anywhere", "super", "", "username,kind,org_unit_code,role\nimp-a,staff,townB,admin\nimp-b,citizen,,\n", csvType, 200,
			[]string{"imp-a", "imp-b"}, nil, nil},
		{"town admin imports into its subtree; other rows are rejected", "town", "", "username,kind,org_unit_code\nimp-c,staff,villageA\nimp-d,staff,townB\nimp-e,staff,\n", csvType, 200,
			[]string{"imp-c"}, []string{"imp-d", "imp-e"}, []string{"3/org_unit_code", "4/org_unit_code"}},
		{"auditor may not import", "auditor", "", "username,kind\nimp-f,staff\n", csvType, 403, nil, []string{"imp-f"}, nil},
		{"client manager may not import", "clients", "", "username,kind\nimp-f,staff\n", csvType, 403, nil, []string{"imp-f"}, nil},
		{"no credentials", "", "", "username,kind\nimp-f,staff\n", csvType, 401, nil, []string{"imp-f"}, nil},
		{"JSON body refused", "super", "", `{"username":"imp-f"}`, []string{"Content-Type", "application/json"}, 415, nil, []string{"imp-f"}, nil},
		{"unknown query parameter", "super", "?mode=fast", "username,kind\nimp-f,staff\n", csvType, 400, nil, []string{"imp-f"}, []string{"mode"}},
		{"bad boolean and encoding", "super", "?dry_run=maybe&encoding=latin1", "username,kind\nimp-f,staff\n", csvType, 400, nil, []string{"imp-f"}, []string{"dry_run", "encoding"}},
		{"unknown column", "super", "", "username,kind,password\nimp-f,staff,secret\n", csvType, 400, nil, []string{"imp-f"}, []string{"password"}},
		{"dry run writes nothing", "super", "?dry_run=true", "username,kind\nimp-g,staff\nx,staff\n", csvType, 200, nil, []string{"imp-g"}, []string{"3/username"}},
		{"all or nothing refuses the file", "super", "?all_or_nothing=true", "username,kind\nimp-h,staff\nimp-i,robot\n", csvType, 422, nil, []string{"imp-h", "imp-i"}, []string{"3/kind"}},
		{"broken quoting", "super", "", "username,kind\nimp-j,staff\n\"imp-k,staff\n", csvType, 422, []string{"imp-j"}, []string{"imp-k"}, []string{"3/"}},
		{"gbk", "town", "?encoding=gbk", gbk, csvType, 200, []string{"gbk-one"}, nil, nil},
		{"town admin grants no role it could not grant by hand", "town", "", "username,kind,org_unit_code,role\nimp-l,staff,villageA,auditor\nimp-m,staff,townA,admin\nimp-n,staff,villageA,admin\nimp-o,staff,villageA,client_manager\n", csvType, 200,
			[]string{"imp-n"}, []string{"imp-l", "imp-m", "imp-o"}, []string{"2/role", "3/role", "5/role"}},
	}
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				status, body, _ := f.do(tt.token, "POST", "/users:import"+tt.query, tt.body, tt.header...)
				if status != tt.want {
					t.Fatalf("status %d, want %d: %s", status, tt.want, body)
				}
				var got []string
				if status == 200 || status == 422 {
					var rep importReport
					if err := json.Unmarshal(body, &rep); err != nil {
						t.Fatalf("%v: %s", err, body)
					}
					for _, e := range rep.Errors {
						got = append(got, itoa(e.Line)+"/"+e.Column)
					}
					if status == 200 && !strings.Contains(tt.query, "dry_run") && rep.Imported != len(tt.wantImported) {
						t.Errorf("imported %d, want %d", rep.Imported, len(tt.wantImported))
					}
				} else if status == 400 {
					got = fieldsOf(decodeProblem(t, body))
				}
				if strings.Join(got, " ") != strings.Join(tt.wantErrors, " ") {
					t.Errorf("errors %v, want %v (%s)", got, tt.wantErrors, body)
				}
				for _, name := range tt.wantImported {
					if _, err := f.api.Users.GetByUsername(context.Background(), name); err != nil {
						t.Errorf("%s: %v", name, err)
					}
				}
				for _, name := range tt.wantAbsent {
					if _, err := f.api.Users.GetByUsername(context.Background(), name); err == nil {
						t.Errorf("%s was created", name)
					}
				}
			})
		}
		t.Run("body over the server limit writes nothing", func(t *testing.T) {
			req := httptest.NewRequest("POST", Prefix+"/users:import", strings.NewReader("username,kind\nimp-big,staff\n"+strings.Repeat("x", 100)))
			req.Header.Set("Authorization", "Bearer super")
			req.Header.Set("Content-Type", "text/csv")
			rec := httptest.NewRecorder()
			req.Body = http.MaxBytesReader(rec, req.Body, 40)
			f.mux.ServeHTTP(rec, req)
			if rec.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if _, err := f.api.Users.GetByUsername(context.Background(), "imp-big"); err == nil {
				t.Fatal("a row of a refused body was imported")
			}
		})
		t.Run("audited", func(t *testing.T) {
			var n int
			if err := d.QueryRow(context.Background(), `SELECT count(*) FROM audit_events WHERE action = 'user.import' AND actor = ?`, f.townAdmin.ID).Scan(&n); err != nil || n != 3 {
				t.Fatalf("%d summary records by the town admin, want 3: %v", n, err)
			}
		})
	})
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
