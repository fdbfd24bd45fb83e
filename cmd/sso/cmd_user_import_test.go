package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/govsso/sso/db"
)

func TestUserImportCommand(t *testing.T) {
	gbk, _ := simplifiedchinese.GBK.NewEncoder().String("username,display_name,kind\ngbk-user,张三,citizen\n")
	tests := []struct {
		name      string
		file      string
		args      []string
		wantCode  int
		wantOut   string // in stdout
		wantErr   string // in stderr
		wantUsers []string
	}{
		{"good file", "\xef\xbb\xbfusername,kind,phone\nann,citizen,13800000001\nben,staff,\n", nil, 0, "imported 2", "", []string{"ann", "ben"}},
		{"bad rows reported, the rest imported", "username,kind\ncid,citizen\nx,citizen\n", nil, 1, "3     username", "1 rows rejected", []string{"cid"}},
		{"all or nothing", "username,kind\ndan,citizen\ny,citizen\n", []string{"--all-or-nothing"}, 1, "imported 0", "nothing was imported", nil},
		{"dry run", "username,kind\neve,citizen\n", []string{"--dry-run"}, 0, "valid 1, imported 0", "", nil},
		{"gbk", gbk, []string{"--encoding", "gbk"}, 0, "imported 1", "", []string{"gbk-user"}},
		{"unknown column", "username,kind,password\nfay,citizen,x\n", nil, 1, "", `"password"`, nil},
		{"json", "username,kind\ngus,citizen\n", []string{"--json"}, 0, `"imported": 1`, "", []string{"gus"}},
		{"notify", "username,kind,phone\nhal,citizen,13800000011\nivy,citizen,13800000012\njon,citizen,\n", []string{"--notify"}, 0, "imported 3", "2 activation messages sent", []string{"hal", "ivy", "jon"}},
		{"bad encoding flag", "username,kind\n", []string{"--encoding", "latin1"}, 2, "", "--encoding", nil},
	}
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			te := newTestEnv(t, dialect)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					path := filepath.Join(t.TempDir(), "people.csv")
					if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
						t.Fatal(err)
					}
					r := te.run(t, "", append(append([]string{"user", "import"}, tt.args...), path)...)
					if r.code != tt.wantCode || !strings.Contains(r.stdout, tt.wantOut) || !strings.Contains(r.stderr, tt.wantErr) {
						t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tt.wantCode, r.stdout, r.stderr)
					}
					for _, name := range tt.wantUsers {
						if r := te.run(t, "", "user", "disable", name); r.code != 0 {
							t.Errorf("%s was not imported: %s", name, r.stderr)
						}
					}
				})
			}
			r := te.run(t, "", "user", "list", "--json")
			var list []struct{ Username string }
			if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
				t.Fatal(err, r.stdout)
			}
			if len(list) != 8 {
				t.Fatalf("%d accounts, want the 8 imported: %+v", len(list), list)
			}
		})
	}
}
