package db_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

func TestMigrationsSameNumbersInBothDialects(t *testing.T) {
	lite, err := db.LoadMigrations(db.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := db.LoadMigrations(db.Postgres)
	if err != nil {
		t.Fatal(err)
	}
	if len(lite) == 0 || len(lite) != len(pg) {
		t.Fatalf("sqlite has %d migrations, postgres %d", len(lite), len(pg))
	}
	for i := range lite {
		if lite[i].Version != pg[i].Version || lite[i].Name != pg[i].Name {
			t.Errorf("migration %d: sqlite %04d_%s, postgres %04d_%s", i, lite[i].Version, lite[i].Name, pg[i].Version, pg[i].Name)
		}
	}
}

func TestMigrateIsIdempotentAndStatusListsAll(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		again, err := d.Migrate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(again) != 0 {
			t.Fatalf("second Migrate applied %d migrations", len(again))
		}
		st, err := d.MigrationStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st {
			if !s.Applied || s.AppliedAt.IsZero() {
				t.Errorf("migration %d not reported applied: %+v", s.Version, s)
			}
		}
	})
}

func TestSchemaNewerThanBinaryIsRefused(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		if _, err := d.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`, 9999, "future", time.Now().UTC()); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Migrate(ctx); !errors.Is(err, db.ErrSchemaTooNew) {
			t.Fatalf("Migrate: got %v, want ErrSchemaTooNew", err)
		}
		if _, err := d.MigrationStatus(ctx); !errors.Is(err, db.ErrSchemaTooNew) {
			t.Fatalf("MigrationStatus: got %v, want ErrSchemaTooNew", err)
		}
	})
}

func TestConcurrentMigrationsApplyEachOnce(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := context.Background()
			u := dbtest.URL(t, dialect)
			const nodes = 4
			var wg sync.WaitGroup
			counts := make([]int, nodes)
			errs := make([]error, nodes)
			for i := range nodes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					d, err := db.Open(ctx, u, db.PoolOptions{})
					if err != nil {
						errs[i] = err
						return
					}
					defer d.Close()
					applied, err := d.Migrate(ctx)
					counts[i], errs[i] = len(applied), err
				}()
			}
			wg.Wait()
			total := 0
			for i := range nodes {
				if errs[i] != nil {
					t.Fatalf("node %d: %v", i, errs[i])
				}
				total += counts[i]
			}
			known, _ := db.LoadMigrations(dialect)
			if total != len(known) {
				t.Fatalf("%d nodes applied %d migrations in all, want %d (each exactly once)", nodes, total, len(known))
			}
		})
	}
}

func TestErrorsAreTyped(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		now := time.Now().UTC()
		ins := `INSERT INTO clients (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)`
		if _, err := d.Exec(ctx, ins, "c1", "one", now, now); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Exec(ctx, ins, "c1", "again", now, now); !errors.Is(err, db.ErrConflict) {
			t.Fatalf("duplicate insert: got %v, want ErrConflict", err)
		}
		var name string
		err := d.Err(d.QueryRow(ctx, `SELECT name FROM clients WHERE id = ?`, "nope").Scan(&name))
		if !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("missing row: got %v, want ErrNotFound", err)
		}
		if err := d.ExecOne(ctx, `UPDATE clients SET name = ? WHERE id = ?`, "x", "nope"); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("ExecOne on no row: got %v, want ErrNotFound", err)
		}
	})
}

func TestInTxRollsBackOnError(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		now := time.Now().UTC()
		boom := errors.New("boom")
		err := d.InTx(ctx, func(ctx context.Context) error {
			if _, err := d.Exec(ctx, `INSERT INTO clients (id, created_at, updated_at) VALUES (?, ?, ?)`, "tx1", now, now); err != nil {
				return err
			}
			// A nested InTx joins the outer transaction.
			return d.InTx(ctx, func(ctx context.Context) error { return boom })
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx: got %v", err)
		}
		var n int
		if err := d.QueryRow(ctx, `SELECT count(*) FROM clients`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("after rollback: %d rows, err %v", n, err)
		}
	})
}

func TestTimesRoundTripInUTC(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		at := time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)
		if _, err := d.Exec(ctx, `INSERT INTO clients (id, created_at, updated_at) VALUES (?, ?, ?)`, "t", at, at); err != nil {
			t.Fatal(err)
		}
		var got time.Time
		if err := d.QueryRow(ctx, `SELECT created_at FROM clients WHERE created_at < ?`, at.Add(time.Microsecond)).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if !got.Equal(at) {
			t.Fatalf("got %v, want %v", got, at)
		}
	})
}

func TestRebind(t *testing.T) {
	pg := dbtest.Open(t, db.Postgres)
	tests := []struct{ in, want string }{
		{"SELECT 1", "SELECT 1"},
		{"a = ? AND b = ?", "a = $1 AND b = $2"},
		{"x = '?' AND y = ?", "x = '?' AND y = $1"},
	}
	for _, tc := range tests {
		if got := pg.Rebind(tc.in); got != tc.want {
			t.Errorf("Rebind(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestOpenRefusesBadSQLiteFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	content := []byte("this is not an sqlite database, just some text that is long enough......")
	if err := os.WriteFile(garbage, content, 0o600); err != nil {
		t.Fatal(err)
	}
	readonly := filepath.Join(dir, "ro.db")
	if err := os.WriteFile(readonly, nil, 0o400); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, url string
	}{
		{"not a database", "sqlite://" + garbage},
		{"missing directory", "sqlite://" + filepath.Join(dir, "nope", "x.db")},
		{"unknown scheme", "mysql://localhost/x"},
	}
	if os.Geteuid() != 0 { // root can write a 0400 file
		tests = append(tests, struct{ name, url string }{"read-only file", "sqlite://" + readonly})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := db.Open(ctx, tc.url, db.PoolOptions{})
			if err == nil {
				d.Close()
				t.Fatal("Open succeeded")
			}
		})
	}
	after, _ := os.ReadFile(garbage)
	if string(after) != string(content) {
		t.Fatal("the corrupt file was modified")
	}
}

func TestOpenUnreachablePostgresNamesHost(t *testing.T) {
	ctx := context.Background()
	_, err := db.Open(ctx, "postgres://nobody@127.0.0.1:1/x?connect_timeout=1", db.PoolOptions{ConnectTimeout: 500 * time.Millisecond})
	if err == nil {
		t.Fatal("Open succeeded")
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("error does not name the host: %v", err)
	}
}
