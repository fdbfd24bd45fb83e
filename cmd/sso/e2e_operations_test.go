package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/govsso/sso/db"
)

// TestBackupRestoreThenSignIn backs up a live installation, restores it into
// an empty data directory with the same key-encryption key, and signs in
// there with the account and the client made before the backup.
func TestBackupRestoreThenSignIn(t *testing.T) {
	te := newTestEnv(t, db.SQLite)
	if r := te.run(t, "a long test passphrase\n", "user", "create", "--username", "alice", "--password-stdin", "--name", "Alice"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	secret := createClient(t, te, "--id", "tax", "--redirect-uri", "http://127.0.0.1:9/cb", "--scope", "openid profile")
	startServer(t, te) // the backup is taken while the server runs

	file := filepath.Join(t.TempDir(), "sso-backup.db")
	if r := te.run(t, "", "backup", "--out", file); r.code != 0 {
		t.Fatalf("backup: %s", r.stderr)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", fi, err)
	}
	if r := te.run(t, "", "backup", "--out", file); r.code != 1 || !strings.Contains(r.stderr, "exists") {
		t.Fatalf("backup over an existing file: exit %d, %s", r.code, r.stderr)
	}

	restored := newTestEnv(t, db.SQLite)
	restored["SSO_KEY_ENCRYPTION_KEY"] = te["SSO_KEY_ENCRYPTION_KEY"]
	dir := t.TempDir()
	restored["SSO_DATA_DIR"] = dir
	restored["SSO_DATABASE_URL"] = "sqlite://" + filepath.Join(dir, "sso.db")
	if r := restored.run(t, "", "restore", "--from", file); r.code != 0 {
		t.Fatalf("restore: %s", r.stderr)
	}
	if fi, err := os.Stat(filepath.Join(dir, "sso.db")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("restored file: %v %v", fi, err)
	}
	if r := restored.run(t, "", "restore", "--from", file); r.code != 1 || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("restore over data without --force: exit %d, %s", r.code, r.stderr)
	}
	if r := restored.run(t, "", "restore", "--from", file, "--force"); r.code != 0 {
		t.Fatalf("restore --force: %s", r.stderr)
	}

	issuer := startServer(t, restored)
	tax := newRP(t, issuer, "tax", secret, oidc.ScopeOpenID, "profile")
	if _, idt := tax.login(browser(t), "alice", "a long test passphrase"); idt.Subject == "" {
		t.Fatal("no subject after restore")
	}
}

func TestBackupRefusals(t *testing.T) {
	pg := newTestEnv(t, db.Postgres)
	sqlite := newTestEnv(t, db.SQLite)
	notADatabase := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(notADatabase, []byte(strings.Repeat("not sqlite ", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		te   testEnv
		args []string
		code int
		want string
	}{
		{"backup of PostgreSQL points at pg_dump", pg, []string{"backup", "--out", filepath.Join(t.TempDir(), "x.db")}, 1, "pg_dump"},
		{"restore into PostgreSQL is refused", pg, []string{"restore", "--from", notADatabase}, 1, "pg_restore"},
		{"backup without --out", sqlite, []string{"backup"}, 2, "--out"},
		{"restore without --from", sqlite, []string{"restore"}, 2, "--from"},
		{"restore of a file that is not a database", sqlite, []string{"restore", "--from", notADatabase}, 1, "junk.db"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.te.run(t, "", tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d mentioning %q", r.code, r.stderr, tc.code, tc.want)
			}
		})
	}
}

func TestHealthcheck(t *testing.T) {
	te := newTestEnv(t, db.SQLite)
	startServer(t, te)
	if r := te.run(t, "", "healthcheck"); r.code != 0 {
		t.Fatalf("healthcheck of a ready server: exit %d, %s", r.code, r.stderr)
	}
	down := newTestEnv(t, db.SQLite)
	down["SSO_ADDR"] = freeAddr(t)
	if r := down.run(t, "", "healthcheck"); r.code != 1 || !strings.Contains(r.stderr, "not ready") {
		t.Fatalf("healthcheck with nothing listening: exit %d, %s", r.code, r.stderr)
	}
}

func TestReadyURLReachesWildcardListenersOverLoopback(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"0.0.0.0:8080", "http://127.0.0.1:8080/healthz/ready"},
		{":9000", "http://127.0.0.1:9000/healthz/ready"},
		{"[::]:8080", "http://127.0.0.1:8080/healthz/ready"},
		{"127.0.0.1:8443", "http://127.0.0.1:8443/healthz/ready"},
		{"[::1]:8080", "http://[::1]:8080/healthz/ready"},
	}
	for _, tc := range tests {
		if got, err := readyURL(tc.addr); err != nil || got != tc.want {
			t.Errorf("readyURL(%q) = %q, %v; want %q", tc.addr, got, err, tc.want)
		}
	}
}
