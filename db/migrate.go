package db

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/govsso/sso/migrations"
)

// Migration is one numbered SQL file from migrations/<dialect>/.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// MigrationStatus says whether one known migration has been applied.
type MigrationStatus struct {
	Version   int       `json:"version"`
	Name      string    `json:"name"`
	Applied   bool      `json:"applied"`
	AppliedAt time.Time `json:"applied_at,omitzero"`
}

// LoadMigrations reads the embedded migrations of a dialect, in order. File
// names are NNNN_name.sql; numbers must be unique.
func LoadMigrations(dialect Dialect) ([]Migration, error) {
	return loadMigrations(migrations.FS, string(dialect))
}

func loadMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations %s: %w", dir, err)
	}
	var out []Migration
	seen := map[int]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, rest, ok := strings.Cut(strings.TrimSuffix(name, ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s/%s: name must be NNNN_description.sql", dir, name)
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share number %d", other, name, v)
		}
		seen[v] = name
		body, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: rest, SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version INTEGER PRIMARY KEY,
	name TEXT NOT NULL,
	applied_at TIMESTAMP NOT NULL
)`

// Migrate applies every pending migration, each in its own transaction, and
// returns the ones it applied. On PostgreSQL an advisory lock (per schema)
// makes concurrent starts of several nodes apply each migration exactly once.
// A database already migrated past what this binary knows is refused with
// ErrSchemaTooNew.
func (d *DB) Migrate(ctx context.Context) ([]Migration, error) {
	known, err := LoadMigrations(d.dialect)
	if err != nil {
		return nil, err
	}
	conn, err := d.sql.Conn(ctx)
	if err != nil {
		return nil, d.classify(err)
	}
	defer conn.Close()
	if d.dialect == Postgres {
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(hashtext('sso.migrate.' || current_schema()))`); err != nil {
			return nil, fmt.Errorf("take migration lock: %w", d.classify(err))
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtext('sso.migrate.' || current_schema()))`)
		if _, err := conn.ExecContext(ctx, strings.Replace(createMigrationsTable, "TIMESTAMP", "TIMESTAMPTZ", 1)); err != nil {
			return nil, fmt.Errorf("create schema_migrations: %w", err)
		}
	} else if _, err := conn.ExecContext(ctx, createMigrationsTable); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %s", describeSQLiteError(err))
	}

	applied, err := appliedVersions(ctx, conn)
	if err != nil {
		return nil, err
	}
	if err := checkNotTooNew(known, applied); err != nil {
		return nil, err
	}
	var done []Migration
	for _, m := range known {
		if _, ok := applied[m.Version]; ok {
			continue
		}
		applied, err := d.applyOne(ctx, conn, m)
		if err != nil {
			return done, err
		}
		if applied {
			done = append(done, m)
		}
	}
	return done, nil
}

// applyOne runs one migration and records it; applied is false when another
// process got there first.
func (d *DB) applyOne(ctx context.Context, conn *sql.Conn, m Migration) (applied bool, err error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, d.classify(err)
	}
	defer tx.Rollback()
	// Another SQLite process may have applied it while we waited for the
	// write lock; the immediate transaction makes this check authoritative.
	var n int
	if err := tx.QueryRowContext(ctx, d.Rebind(`SELECT count(*) FROM schema_migrations WHERE version = ?`), m.Version).Scan(&n); err != nil {
		return false, d.classify(err)
	}
	if n > 0 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return false, fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, d.classify(err))
	}
	if _, err := tx.ExecContext(ctx, d.Rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
		m.Version, m.Name, time.Now().UTC()); err != nil {
		return false, fmt.Errorf("record migration %04d: %w", m.Version, d.classify(err))
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit migration %04d_%s: %w", m.Version, m.Name, d.classify(err))
	}
	return true, nil
}

func appliedVersions(ctx context.Context, conn *sql.Conn) (map[int]time.Time, error) {
	rows, err := conn.QueryContext(ctx, `SELECT version, applied_at FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	out := map[int]time.Time{}
	for rows.Next() {
		var v int
		var at time.Time
		if err := rows.Scan(&v, &at); err != nil {
			return nil, err
		}
		out[v] = at.UTC()
	}
	return out, rows.Err()
}

func checkNotTooNew(known []Migration, applied map[int]time.Time) error {
	max := 0
	if len(known) > 0 {
		max = known[len(known)-1].Version
	}
	for v := range applied {
		if v > max {
			return fmt.Errorf("%w: it has migration %d, this binary knows up to %d; upgrade sso", ErrSchemaTooNew, v, max)
		}
	}
	return nil
}

// CheckSchema refuses a database whose schema is newer than this binary and
// reports whether migrations are pending. It writes nothing.
func (d *DB) CheckSchema(ctx context.Context) (pending int, err error) {
	st, err := d.MigrationStatus(ctx)
	if err != nil {
		return 0, err
	}
	for _, s := range st {
		if !s.Applied {
			pending++
		}
	}
	return pending, nil
}

// MigrationStatus lists every known migration and whether it is applied. It
// writes nothing, so it works on a database no sso has touched yet.
func (d *DB) MigrationStatus(ctx context.Context) ([]MigrationStatus, error) {
	known, err := LoadMigrations(d.dialect)
	if err != nil {
		return nil, err
	}
	conn, err := d.sql.Conn(ctx)
	if err != nil {
		return nil, d.classify(err)
	}
	defer conn.Close()
	applied := map[int]time.Time{}
	if ok, err := d.tableExists(ctx, conn, "schema_migrations"); err != nil {
		return nil, err
	} else if ok {
		if applied, err = appliedVersions(ctx, conn); err != nil {
			return nil, err
		}
	}
	if err := checkNotTooNew(known, applied); err != nil {
		return nil, err
	}
	out := make([]MigrationStatus, 0, len(known))
	for _, m := range known {
		at, ok := applied[m.Version]
		out = append(out, MigrationStatus{Version: m.Version, Name: m.Name, Applied: ok, AppliedAt: at})
	}
	return out, nil
}

func (d *DB) tableExists(ctx context.Context, conn *sql.Conn, table string) (bool, error) {
	q := `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`
	if d.dialect == Postgres {
		q = `SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?`
	}
	var n int
	if err := conn.QueryRowContext(ctx, d.Rebind(q), table).Scan(&n); err != nil {
		return false, d.classify(err)
	}
	return n > 0, nil
}
