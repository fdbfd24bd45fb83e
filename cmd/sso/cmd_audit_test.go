package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govsso/sso/db"
)

func TestAuditArchiveCommand(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			te := newTestEnv(t, dialect)
			for _, name := range []string{"alice", "bob"} {
				if r := te.run(t, "a long test passphrase\n", "user", "create", "--username", name, "--password-stdin"); r.code != 0 {
					t.Fatal(r.stderr)
				}
			}
			dir := t.TempDir()
			if r := te.run(t, "", "audit", "archive", "--dir", dir); r.code != 2 {
				t.Fatalf("without a cut-off: exit %d, want 2 (usage): %s", r.code, r.stderr)
			}
			tomorrow := time.Now().Add(24 * time.Hour).Format(time.DateOnly)
			r := te.run(t, "", "audit", "archive", "--before", tomorrow, "--dir", dir)
			if r.code != 0 || !strings.Contains(r.stdout, "audit-000000000001-") {
				t.Fatalf("archive: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			files, _ := filepath.Glob(filepath.Join(dir, "audit-*.jsonl"))
			if len(files) != 1 {
				t.Fatalf("archive files %v, want one", files)
			}
			if info, err := os.Stat(files[0]); err != nil || info.Mode().Perm() != 0o600 {
				t.Fatalf("archive file mode %v (%v), want 0600", info.Mode(), err)
			}
			te["SSO_AUDIT_ARCHIVE_DIR"] = dir
			if r := te.run(t, "", "audit", "verify", "--archives"); r.code != 0 || !strings.Contains(r.stdout, "1 files checked") {
				t.Fatalf("verify after archiving: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			b, _ := os.ReadFile(files[0])
			if err := os.WriteFile(files[0], []byte(strings.Replace(string(b), "alice", "mallory", 1)), 0o600); err != nil {
				t.Fatal(err)
			}
			if r := te.run(t, "", "audit", "verify", "--archives"); r.code != 1 || !strings.Contains(r.stderr, "was changed") {
				t.Fatalf("verify of an edited archive: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
		})
	}
}
