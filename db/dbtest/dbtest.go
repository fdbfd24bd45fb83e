// Package dbtest gives tests a fresh, migrated database on every backend, so
// that one conformance suite per store runs against SQLite and PostgreSQL.
//
// PostgreSQL is found at $SSO_TEST_DATABASE_URL, by default
// postgres://postgres@127.0.0.1:5432/test. Each call gets its own schema,
// dropped when the test ends, so parallel test runs never collide. When the
// server is missing the PostgreSQL half is skipped, except with CI=true, where
// it fails.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" driver for the admin connection

	"github.com/govsso/sso/db"
)

// DefaultPostgresURL is used when SSO_TEST_DATABASE_URL is unset.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Backends runs fn as a subtest once per backend ("sqlite", "postgres"),
// each with a freshly migrated database.
func Backends(t testing.TB, fn func(t *testing.T, d *db.DB)) {
	tt, ok := t.(*testing.T)
	if !ok {
		t.Fatal("dbtest.Backends needs a *testing.T")
	}
	for _, name := range []string{"sqlite", "postgres"} {
		tt.Run(name, func(t *testing.T) {
			fn(t, Open(t, db.Dialect(name)))
		})
	}
}

// Open returns a fresh, migrated database of the given dialect, closed and
// removed when the test ends.
func Open(t testing.TB, dialect db.Dialect) *db.DB {
	t.Helper()
	ctx := context.Background()
	rawURL := URL(t, dialect)
	d, err := db.Open(ctx, rawURL, db.PoolOptions{ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("open %s: %v", dialect, err)
	}
	t.Cleanup(func() { d.Close() })
	if _, err := d.Migrate(ctx); err != nil {
		t.Fatalf("migrate %s: %v", dialect, err)
	}
	return d
}

// URL returns the URL of a fresh, empty database of the given dialect: a new
// SQLite file in a temporary directory, or a new PostgreSQL schema.
func URL(t testing.TB, dialect db.Dialect) string {
	t.Helper()
	if dialect == db.SQLite {
		return "sqlite://" + filepath.Join(t.TempDir(), "sso.db")
	}
	return PostgresSchemaURL(t)
}

// PostgresSchemaURL creates a schema with a random name, returns a URL whose
// connections use it, and drops it when the test ends.
func PostgresSchemaURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("SSO_TEST_DATABASE_URL")
	if base == "" {
		base = DefaultPostgresURL
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("postgres URL: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL is required in CI (CI=true) but is unreachable at %s: %v", redacted(base), err)
		}
		t.Skipf("PostgreSQL unreachable at %s (set SSO_TEST_DATABASE_URL): %v", redacted(base), err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "sso_test_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return WithSearchPath(base, schema)
}

// WithSearchPath returns a PostgreSQL URL whose connections use schema.
func WithSearchPath(rawURL, schema string) string {
	sep := "?"
	if strings.Contains(rawURL, "?") {
		sep = "&"
	}
	return rawURL + sep + "search_path=" + url.QueryEscape(schema)
}

func redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// FailInserts makes every INSERT into table of a row for which cond holds
// (an SQL condition on NEW, the same on both backends, e.g.
// "NEW.action = 'oauth.token'") fail, until the returned function is
// called: a way to make one step of a transaction fail after the steps
// before it have run. The trigger is named after the table.
func FailInserts(t testing.TB, d *db.DB, table, cond string) (restore func()) {
	t.Helper()
	ctx := context.Background()
	name := "fail_inserts_" + table
	create := []string{`CREATE TRIGGER ` + name + ` BEFORE INSERT ON ` + table + ` WHEN ` + cond + ` BEGIN SELECT RAISE(ABORT, 'blocked by the test'); END`}
	drop := []string{`DROP TRIGGER ` + name}
	if d.Dialect() == db.Postgres {
		create = []string{
			`CREATE FUNCTION ` + name + `() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF ` + cond + ` THEN RAISE EXCEPTION 'blocked by the test'; END IF; RETURN NEW; END $$`,
			`CREATE TRIGGER ` + name + ` BEFORE INSERT ON ` + table + ` FOR EACH ROW EXECUTE FUNCTION ` + name + `()`,
		}
		drop = []string{`DROP TRIGGER ` + name + ` ON ` + table, `DROP FUNCTION ` + name + `()`}
	}
	exec := func(stmts []string) {
		for _, q := range stmts {
			if _, err := d.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	exec(create)
	return func() { exec(drop) }
}
