package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

// syncBuffer is a bytes.Buffer safe for a server goroutine writing logs while
// the test reads them.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testEnv is the environment of one installation: a database, a data
// directory and a key-encryption key, with cheap password hashing.
type testEnv map[string]string

func newTestEnv(t *testing.T, dialect db.Dialect) testEnv {
	key := make([]byte, 32)
	rand.Read(key)
	return testEnv{
		"SSO_DATABASE_URL":              dbtest.URL(t, dialect),
		"SSO_DATA_DIR":                  t.TempDir(),
		"SSO_KEY_ENCRYPTION_KEY":        base64.StdEncoding.EncodeToString(key),
		"SSO_PASSWORD_HASH_MEMORY_KIB":  "8192",
		"SSO_PASSWORD_HASH_ITERATIONS":  "1",
		"SSO_LOG_LEVEL":                 "warn",
		"SSO_BOOTSTRAP_ADMIN_PASSWORD":  "",
		"SSO_ADDR":                      "127.0.0.1:0",
		"SSO_ISSUER":                    "http://localhost:8080",
		"SSO_PASSWORD_HASH_PARALLELISM": "1",
	}
}

type result struct {
	code           int
	stdout, stderr string
}

func (te testEnv) run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errOut syncBuffer
	code := run(context.Background(), args, env{
		stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut,
		getenv: func(k string) string { return te[k] },
	})
	return result{code, out.String(), errOut.String()}
}

func TestUsageErrorsExit2(t *testing.T) {
	te := newTestEnv(t, db.SQLite)
	tests := []struct {
		name string
		args []string
	}{
		{"no command", nil},
		{"unknown verb", []string{"frobnicate"}},
		{"unknown sub-verb", []string{"user", "explode"}},
		{"unknown flag", []string{"user", "list", "--colour"}},
		{"missing required flag", []string{"user", "create"}},
		{"bad type", []string{"user", "create", "--username", "bob", "--type", "alien"}},
		{"disable without name", []string{"user", "disable"}},
		{"client without id", []string{"client", "create"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := te.run(t, "", tc.args...)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2; stderr: %s", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, "usage") && !strings.Contains(r.stderr, "sso ") {
				t.Fatalf("no usage or reason printed: %q", r.stderr)
			}
		})
	}
}

func TestInvalidConfigurationFailsNamingTheKey(t *testing.T) {
	te := newTestEnv(t, db.SQLite)
	te["SSO_LOG_LEVEL"] = "chatty"
	r := te.run(t, "", "user", "list")
	if r.code != 1 || !strings.Contains(r.stderr, "SSO_LOG_LEVEL") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestUserCommands(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			te := newTestEnv(t, dialect)
			r := te.run(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin",
				"--name", "Alice", "--phone", "13812345678", "--email", "alice@example.org", "--json")
			if r.code != 0 {
				t.Fatalf("create: exit %d: %s", r.code, r.stderr)
			}
			var created map[string]any
			if err := json.Unmarshal([]byte(r.stdout), &created); err != nil {
				t.Fatalf("create --json output: %v: %s", err, r.stdout)
			}
			if created["username"] != "alice" || created["phone"] != "138****5678" {
				t.Fatalf("created: %v", created)
			}
			if strings.Contains(r.stdout, "argon2") || strings.Contains(r.stdout, "13812345678") {
				t.Fatal("output leaks the password hash or the full phone number")
			}

			dup := te.run(t, "another good password\n", "user", "create", "--username", "alice", "--password-stdin")
			if dup.code != 1 || !strings.Contains(dup.stderr, "already exists") {
				t.Fatalf("duplicate: exit %d, stderr %q", dup.code, dup.stderr)
			}
			weak := te.run(t, "password\n", "user", "create", "--username", "bob", "--password-stdin")
			if weak.code != 1 {
				t.Fatalf("common password accepted: exit %d", weak.code)
			}

			list := te.run(t, "", "user", "list", "--json")
			var users []map[string]any
			if err := json.Unmarshal([]byte(list.stdout), &users); err != nil || len(users) != 1 {
				t.Fatalf("list after duplicate and weak attempts: %v, %s", err, list.stdout)
			}

			if r := te.run(t, "", "user", "disable", "alice"); r.code != 0 || !strings.Contains(r.stdout, "disabled") {
				t.Fatalf("disable: exit %d %s %s", r.code, r.stdout, r.stderr)
			}
			if r := te.run(t, "", "user", "list", "--status", "disabled"); !strings.Contains(r.stdout, "alice") {
				t.Fatalf("disabled list: %s", r.stdout)
			}
			if r := te.run(t, "", "user", "enable", "alice", "--json"); r.code != 0 || !strings.Contains(r.stdout, `"active"`) {
				t.Fatalf("enable: exit %d %s %s", r.code, r.stdout, r.stderr)
			}
			if r := te.run(t, "", "user", "disable", "nobody"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
				t.Fatalf("disable unknown: exit %d %s", r.code, r.stderr)
			}
			if r := te.run(t, "", "audit", "verify"); r.code != 0 || !strings.Contains(r.stdout, "intact") {
				t.Fatalf("audit verify: exit %d %s %s", r.code, r.stdout, r.stderr)
			}
		})
	}
}

func TestClientCommands(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			te := newTestEnv(t, dialect)
			r := te.run(t, "", "client", "create", "--id", "tax", "--name", "税务局",
				"--redirect-uri", "https://tax.example.org/cb", "--scope", "openid profile", "--grant-type", "authorization_code", "--grant-type", "refresh_token", "--json")
			if r.code != 0 {
				t.Fatalf("create: exit %d: %s", r.code, r.stderr)
			}
			var c map[string]any
			if err := json.Unmarshal([]byte(r.stdout), &c); err != nil {
				t.Fatal(err)
			}
			secret, _ := c["client_secret"].(string)
			if len(secret) < 43 {
				t.Fatalf("generated secret %q is not 256 bits", secret)
			}
			list := te.run(t, "", "client", "list")
			if !strings.Contains(list.stdout, "tax") || strings.Contains(list.stdout, secret) {
				t.Fatalf("list shows no client or shows the secret: %s", list.stdout)
			}
			dup := te.run(t, "", "client", "create", "--id", "tax", "--redirect-uri", "https://x.example.org/cb")
			if dup.code != 1 || !strings.Contains(dup.stderr, "already exists") {
				t.Fatalf("duplicate: exit %d %q", dup.code, dup.stderr)
			}
			bad := te.run(t, "", "client", "create", "--id", "bad", "--redirect-uri", "http://evil.example.org/cb")
			if bad.code != 1 || !strings.Contains(bad.stderr, "redirect") {
				t.Fatalf("http redirect accepted: exit %d %q", bad.code, bad.stderr)
			}
			given := te.run(t, strings.Repeat("s", 40)+"\n", "client", "create", "--id", "given", "--secret-stdin", "--redirect-uri", "https://g.example.org/cb")
			if given.code != 0 || strings.Contains(given.stdout, strings.Repeat("s", 40)) {
				t.Fatalf("--secret-stdin: exit %d, echoes secret: %v", given.code, strings.Contains(given.stdout, strings.Repeat("s", 40)))
			}
			if r := te.run(t, "", "client", "delete", "tax"); r.code != 0 {
				t.Fatalf("delete: exit %d %s", r.code, r.stderr)
			}
			if r := te.run(t, "", "client", "delete", "tax"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
				t.Fatalf("delete again: exit %d %s", r.code, r.stderr)
			}
		})
	}
}

func TestKeysAndMigrateCommands(t *testing.T) {
	te := newTestEnv(t, db.SQLite)
	st := te.run(t, "", "migrate", "status", "--json")
	if st.code != 0 || !strings.Contains(st.stdout, `"applied": false`) {
		t.Fatalf("status on a new database: exit %d %s %s", st.code, st.stdout, st.stderr)
	}
	if r := te.run(t, "", "migrate", "up"); r.code != 0 || !strings.Contains(r.stdout, "applied 0001") {
		t.Fatalf("migrate up: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := te.run(t, "", "migrate", "up"); r.code != 0 || !strings.Contains(r.stdout, "up to date") {
		t.Fatalf("migrate up again: exit %d %s", r.code, r.stdout)
	}
	rot := te.run(t, "", "keys", "rotate", "--json")
	if rot.code != 0 {
		t.Fatalf("rotate: exit %d %s", rot.code, rot.stderr)
	}
	rot2 := te.run(t, "", "keys", "rotate")
	if rot2.code != 0 {
		t.Fatalf("rotate again: exit %d %s", rot2.code, rot2.stderr)
	}
	list := te.run(t, "", "keys", "list")
	if strings.Count(list.stdout, "active") != 2 || strings.Count(list.stdout, "retired") < 2 {
		t.Fatalf("keys list after two rotations:\n%s", list.stdout)
	}
	if r := te.run(t, "", "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "sso ") {
		t.Fatalf("version: %d %q", r.code, r.stdout)
	}
}

func TestSchemaNewerThanBinaryStopsTheCLI(t *testing.T) {
	te := newTestEnv(t, db.SQLite)
	if r := te.run(t, "", "migrate", "up"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	d, err := db.Open(context.Background(), te["SSO_DATABASE_URL"], db.PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Exec(context.Background(), `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`, 9999, "future", time.Now().UTC())
	d.Close()
	if r := te.run(t, "", "user", "list"); r.code != 1 || !strings.Contains(r.stderr, "newer") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

var readyLine = regexp.MustCompile(`addr=(127\.0\.0\.1:\d+)`)

// serveOnce runs `sso serve` in-process until it answers /healthz/ready, then
// stops it as SIGTERM would, and returns what it printed on standard error.
func serveOnce(t *testing.T, te testEnv, check func(base string)) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var errOut syncBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"serve", "--log-level", "info"}, env{stdin: strings.NewReader(""), stdout: &errOut, stderr: &errOut,
			getenv: func(k string) string { return te[k] }})
	}()
	var base string
	for i := 0; i < 300 && base == ""; i++ {
		if m := readyLine.FindStringSubmatch(errOut.String()); m != nil {
			base = "http://" + m[1]
			break
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited %d: %s", code, errOut.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if base == "" {
		cancel()
		t.Fatalf("serve never became ready: %s", errOut.String())
	}
	resp, err := http.Get(base + "/healthz/ready")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("ready: %v %v", err, resp)
	}
	resp.Body.Close()
	check(base)
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exited %d after shutdown: %s", code, errOut.String())
	}
	return errOut.String()
}

func TestServeFirstAndSecondStart(t *testing.T) {
	te := newTestEnv(t, db.SQLite)
	dataDir := filepath.Join(te["SSO_DATA_DIR"], "fresh")
	te["SSO_DATA_DIR"] = dataDir
	te["SSO_DATABASE_URL"] = ""
	te["SSO_KEY_ENCRYPTION_KEY"] = ""

	first := serveOnce(t, te, func(base string) {
		resp, err := http.Get(base + "/.well-known/jwks.json")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var set struct {
			Keys []struct{ Kid, Alg string } `json:"keys"`
		}
		json.NewDecoder(resp.Body).Decode(&set)
		if len(set.Keys) != 2 || resp.Header.Get("X-Request-ID") == "" {
			t.Fatalf("jwks: %+v, request id %q", set, resp.Header.Get("X-Request-ID"))
		}
	})
	m := regexp.MustCompile(`One-time password: (\S+)`).FindStringSubmatch(first)
	if m == nil {
		t.Fatalf("first start printed no one-time password:\n%s", first)
	}
	fi, err := os.Stat(dataDir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir: %v, mode %o", err, fi.Mode().Perm())
	}
	if fi, err := os.Stat(filepath.Join(dataDir, "key-encryption.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v", err)
	}
	if strings.Count(first, m[1]) != 1 {
		t.Fatal("the one-time password was printed more than once (or logged)")
	}

	second := serveOnce(t, te, func(string) {})
	if strings.Contains(second, "One-time password") || strings.Contains(second, m[1]) {
		t.Fatalf("second start printed a password:\n%s", second)
	}
	list := te.run(t, "", "user", "list", "--json")
	var users []map[string]any
	json.Unmarshal([]byte(list.stdout), &users)
	if len(users) != 1 || users[0]["username"] != "admin" || users[0]["is_admin"] != true {
		t.Fatalf("after two starts: %s", list.stdout)
	}
	keys := te.run(t, "", "keys", "list")
	if strings.Count(keys.stdout, "active") != 2 {
		t.Fatalf("second start made new keys:\n%s", keys.stdout)
	}
}

func TestServeTakesBootstrapPasswordFromEnvironment(t *testing.T) {
	te := newTestEnv(t, db.SQLite)
	te["SSO_BOOTSTRAP_ADMIN_PASSWORD"] = "a-long-admin-passphrase"
	out := serveOnce(t, te, func(string) {})
	if strings.Contains(out, "One-time password") || strings.Contains(out, "a-long-admin-passphrase") {
		t.Fatalf("password printed although configured:\n%s", out)
	}
	list := te.run(t, "", "user", "list")
	if !strings.Contains(list.stdout, "admin") {
		t.Fatalf("no admin: %s", list.stdout)
	}
}

func TestServeRefusesCorruptSQLite(t *testing.T) {
	te := newTestEnv(t, db.SQLite)
	path := filepath.Join(t.TempDir(), "corrupt.db")
	junk := bytes.Repeat([]byte("not a database "), 100)
	os.WriteFile(path, junk, 0o600)
	te["SSO_DATABASE_URL"] = "sqlite://" + path
	r := te.run(t, "", "serve")
	if r.code != 1 || !strings.Contains(r.stderr, "not a database") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(after, junk) {
		t.Fatal("the corrupt file was changed")
	}
}

func TestServeFailsOnUnreachablePostgres(t *testing.T) {
	te := newTestEnv(t, db.SQLite)
	te["SSO_DATABASE_URL"] = "postgres://nobody@127.0.0.1:1/none?connect_timeout=1"
	// The 30-second retry is shortened by cancelling: what matters is the message.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var out syncBuffer
	code := run(ctx, []string{"serve"}, env{stdin: strings.NewReader(""), stdout: &out, stderr: &out, getenv: func(k string) string { return te[k] }})
	if code != 1 || !strings.Contains(out.String(), "127.0.0.1:1") {
		t.Fatalf("exit %d, output %q", code, out.String())
	}
}

func TestPrintTableKeepsOneRowPerRecord(t *testing.T) {
	var b bytes.Buffer
	if err := printTable(&b, []string{"A", "B"}, [][]string{{"1", "two\tcells\nand a line"}}); err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), "A  B\n1  two cells and a line\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestLockedSQLiteFailsClearlyAndKeepsData(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, db.SQLite)
	if r := te.run(t, "", "migrate", "up"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	path := strings.TrimPrefix(te["SSO_DATABASE_URL"], "sqlite://")
	// Another process holding the write lock, as a stuck backup job might.
	holder, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	conn, err := holder.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	r := te.run(t, "a long test passphrase\n", "user", "create", "--username", "bob", "--password-stdin")
	if r.code != 1 || !strings.Contains(r.stderr, "locked") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	conn.ExecContext(context.Background(), "ROLLBACK")
	if r := te.run(t, "", "user", "list"); r.code != 0 {
		t.Fatalf("after the lock was released: %s", r.stderr)
	}
}
