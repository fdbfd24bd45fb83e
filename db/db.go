// Package db opens the SQLite file or PostgreSQL database named by a URL,
// applies the embedded migrations, and carries transactions in a
// context.Context so that every domain store can take part in its caller's
// unit of work.
//
// Stores write their SQL once, with `?` placeholders and SQL that both
// databases accept; DB rewrites the placeholders for PostgreSQL. Times are
// declared TIMESTAMP (SQLite, stored as integer microseconds) or TIMESTAMPTZ
// (PostgreSQL) and always passed as UTC time.Time values.
//
// This package must not import any domain package.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Dialect names the SQL database behind a DB.
type Dialect string

// The two supported databases.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Errors every store returns, checked by callers with errors.Is.
var (
	// ErrNotFound means the row asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a row with the same unique key already exists.
	ErrConflict = errors.New("already exists")
	// ErrSerialization means a concurrent transaction won; the caller may retry.
	ErrSerialization = errors.New("concurrent update, try again")
	// ErrUnavailable means the database could not be reached or is out of space;
	// HTTP handlers answer 503 with Retry-After.
	ErrUnavailable = errors.New("database unavailable")
	// ErrSchemaTooNew means the database was migrated by a newer sso binary.
	ErrSchemaTooNew = errors.New("database schema is newer than this binary")
)

// PoolOptions are the connection-pool settings of database/sql.
type PoolOptions struct {
	MaxOpenConns    int
	MaxIdleConns    int
	ConnMaxLifetime time.Duration
	ConnMaxIdleTime time.Duration
	// ConnectTimeout bounds the retries of the first connection at start-up.
	ConnectTimeout time.Duration
}

// DB is an open database; it is safe for concurrent use.
type DB struct {
	sql     *sql.DB
	dialect Dialect
	target  string // host:port/db or file path, safe to log
	url     string // PostgreSQL URL for the invalidation listener; holds the password, never logged
	bus     bus    // OnInvalidate handlers
}

// Dialect reports which database this is.
func (d *DB) Dialect() Dialect { return d.dialect }

// Target names the database for logs and error messages, never with a password.
func (d *DB) Target() string { return d.target }

// SQL exposes the pool for metrics and for the backup command.
func (d *DB) SQL() *sql.DB { return d.sql }

// Close closes the pool.
func (d *DB) Close() error { return d.sql.Close() }

// Open connects to the database named by rawURL: "sqlite:///abs/path.db",
// "sqlite://relative/path.db", "postgres://…" or "postgresql://…". A PostgreSQL
// server that is not up yet is retried with backoff for opts.ConnectTimeout.
func Open(ctx context.Context, rawURL string, opts PoolOptions) (*DB, error) {
	switch {
	case strings.HasPrefix(rawURL, "sqlite://"):
		return openSQLite(ctx, strings.TrimPrefix(rawURL, "sqlite://"), opts)
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		return openPostgres(ctx, rawURL, opts)
	default:
		return nil, fmt.Errorf("database URL must start with sqlite:// or postgres://, got %q", redactURL(rawURL))
	}
}

func openSQLite(ctx context.Context, path string, opts PoolOptions) (*DB, error) {
	if path == "" {
		return nil, errors.New("sqlite database URL has no file path")
	}
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	// Refuse before SQLite touches the file: a read-only file would otherwise
	// fail later in the middle of a migration.
	if fi, err := os.Stat(path); err == nil {
		if fi.IsDir() {
			return nil, fmt.Errorf("sqlite database %s is a directory", path)
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("sqlite database %s cannot be opened for writing (read-only file or wrong owner?): %w", path, err)
		}
		f.Close()
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("sqlite database %s: %w", path, err)
	} else if _, err := os.Stat(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("sqlite database %s: directory %s does not exist", path, filepath.Dir(path))
	} else if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		// Created here, not by SQLite, so that the file (and the -wal and
		// -shm files SQLite gives the same mode) is readable by its owner only.
		f.Close()
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "immediate")
	q.Set("_time_integer_format", "unix_micro")
	q.Set("_inttotime", "1")
	pool, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite database %s: %w", path, err)
	}
	if opts.MaxOpenConns <= 0 {
		opts.MaxOpenConns = 8
	}
	applyPool(pool, opts)
	d := &DB{sql: pool, dialect: SQLite, target: path}
	// Reading the schema catches files that are not SQLite databases, and a
	// lock held by another process, without writing anything.
	if err := probeSQLite(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("sqlite database %s: %s; nothing was changed", path, describeSQLiteError(err))
	}
	return d, nil
}

// defaultConnectTimeout bounds each new PostgreSQL connection, startup
// included: without it, a database that accepts TCP but never answers
// (a hung server, a half-open proxy) holds a request forever instead of
// failing it fast with ErrUnavailable.
const defaultConnectTimeout = "5"

// withDefaultConnectTimeout adds connect_timeout to a postgres:// URL that
// does not set one; other forms are left as they are.
func withDefaultConnectTimeout(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return rawURL
	}
	q := u.Query()
	if q.Get("connect_timeout") != "" {
		return rawURL
	}
	q.Set("connect_timeout", defaultConnectTimeout)
	u.RawQuery = q.Encode()
	return u.String()
}

// sqliteOpenPatience is how long opening waits for a lock that another
// process holds, as busy_timeout does for statements.
const sqliteOpenPatience = 5 * time.Second

// probeSQLite reads the schema through a new connection, retrying while
// the file is busy: the journal_mode pragma a connection runs first gets
// SQLITE_BUSY at once, without the busy timeout, while another process is
// switching a new file to WAL (several nodes starting on one file).
func probeSQLite(ctx context.Context, pool *sql.DB) error {
	deadline := time.Now().Add(sqliteOpenPatience)
	for {
		var n int
		err := pool.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&n)
		var se *sqlite.Error
		busy := errors.As(err, &se) && (se.Code()&0xff == sqlite3.SQLITE_BUSY || se.Code()&0xff == sqlite3.SQLITE_LOCKED)
		if !busy || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func describeSQLiteError(err error) string {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_NOTADB:
			return "file is not a database (corrupt, or not an SQLite file)"
		case sqlite3.SQLITE_CORRUPT:
			return "database file is corrupt"
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return "database is locked by another process"
		case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM:
			return "database cannot be written (read-only file or directory?)"
		}
	}
	return err.Error()
}

func openPostgres(ctx context.Context, rawURL string, opts PoolOptions) (*DB, error) {
	rawURL = withDefaultConnectTimeout(rawURL)
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("postgres database URL: %w", err)
	}
	target := fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
	pool, err := sql.Open("pgx", rawURL)
	if err != nil {
		return nil, fmt.Errorf("postgres %s: %w", target, err)
	}
	if opts.MaxOpenConns <= 0 {
		opts.MaxOpenConns = 25
	}
	applyPool(pool, opts)
	timeout := opts.ConnectTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	deadline := time.Now().Add(timeout)
	backoff := 100 * time.Millisecond
	for {
		pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = pool.PingContext(pingCtx)
		cancel()
		if err == nil {
			return &DB{sql: pool, dialect: Postgres, target: target, url: rawURL}, nil
		}
		if time.Now().Add(backoff).After(deadline) || ctx.Err() != nil {
			pool.Close()
			return nil, fmt.Errorf("postgres at %s unreachable after %s: %w", target, timeout, err)
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

func applyPool(pool *sql.DB, o PoolOptions) {
	pool.SetMaxOpenConns(o.MaxOpenConns)
	idle := o.MaxIdleConns
	if idle <= 0 {
		idle = o.MaxOpenConns
	}
	pool.SetMaxIdleConns(idle)
	if o.ConnMaxLifetime > 0 {
		pool.SetConnMaxLifetime(o.ConnMaxLifetime)
	}
	if o.ConnMaxIdleTime > 0 {
		pool.SetConnMaxIdleTime(o.ConnMaxIdleTime)
	}
}

// redactURL hides a password in a database URL so it can be logged.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// Ping checks that the database answers; the readiness probe calls it.
func (d *DB) Ping(ctx context.Context) error {
	if err := d.sql.PingContext(ctx); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

type txKey struct{}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (d *DB) q(ctx context.Context) querier {
	if tx, ok := ctx.Value(txKey{}).(*sql.Tx); ok {
		return tx
	}
	return d.sql
}

// InTx runs fn in one transaction, carried in the context fn receives. If ctx
// already carries a transaction, fn joins it and the outermost caller commits.
func (d *DB) InTx(ctx context.Context, fn func(ctx context.Context) error) error {
	if _, ok := ctx.Value(txKey{}).(*sql.Tx); ok {
		return fn(ctx)
	}
	txCtx, err := d.Begin(ctx)
	if err != nil {
		return err
	}
	if err := fn(txCtx); err != nil {
		_ = d.Rollback(txCtx)
		return err
	}
	return d.Commit(txCtx)
}

// Begin starts a transaction and returns a context carrying it. It is the
// shape fosite's storage.Transactional expects; prefer InTx elsewhere.
func (d *DB) Begin(ctx context.Context) (context.Context, error) {
	if _, ok := ctx.Value(txKey{}).(*sql.Tx); ok {
		return ctx, errors.New("db: transaction already open in this context")
	}
	tx, err := d.sql.BeginTx(ctx, nil)
	if err != nil {
		return ctx, d.classify(err)
	}
	return context.WithValue(context.WithValue(ctx, txKey{}, tx), hooksKey{}, &commitHooks{}), nil
}

type hooksKey struct{}

// commitHooks are the functions to call once a transaction has committed.
type commitHooks struct {
	mu  sync.Mutex
	fns []func()
}

// AfterCommit arranges for fn to run after the transaction carried by ctx
// commits (never if it rolls back) and reports true; without a
// transaction it does nothing and reports false, and the caller acts at once.
func AfterCommit(ctx context.Context, fn func()) bool {
	h, ok := ctx.Value(hooksKey{}).(*commitHooks)
	if !ok || !InTransaction(ctx) {
		return false
	}
	h.mu.Lock()
	h.fns = append(h.fns, fn)
	h.mu.Unlock()
	return true
}

// Commit commits the transaction carried by ctx.
func (d *DB) Commit(ctx context.Context) error {
	tx, ok := ctx.Value(txKey{}).(*sql.Tx)
	if !ok {
		return errors.New("db: no transaction in context")
	}
	if err := tx.Commit(); err != nil {
		return d.classify(err)
	}
	if h, ok := ctx.Value(hooksKey{}).(*commitHooks); ok {
		h.mu.Lock()
		fns := h.fns
		h.fns = nil
		h.mu.Unlock()
		for _, fn := range fns {
			fn()
		}
	}
	return nil
}

// Rollback abandons the transaction carried by ctx.
func (d *DB) Rollback(ctx context.Context) error {
	tx, ok := ctx.Value(txKey{}).(*sql.Tx)
	if !ok {
		return errors.New("db: no transaction in context")
	}
	if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return err
	}
	return nil
}

// InTransaction reports whether ctx carries a transaction.
func InTransaction(ctx context.Context) bool {
	_, ok := ctx.Value(txKey{}).(*sql.Tx)
	return ok
}

// Exec runs a statement in the context's transaction, if any.
func (d *DB) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	res, err := d.q(ctx).ExecContext(ctx, d.Rebind(query), args...)
	return res, d.classify(err)
}

// ExecOne runs a statement that must change exactly one row; zero rows is ErrNotFound.
func (d *DB) ExecOne(ctx context.Context, query string, args ...any) error {
	res, err := d.Exec(ctx, query, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// Query runs a query in the context's transaction, if any.
func (d *DB) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	rows, err := d.q(ctx).QueryContext(ctx, d.Rebind(query), args...)
	return rows, d.classify(err)
}

// QueryRow runs a query expected to return at most one row. Scan errors go
// through Err to become ErrNotFound and friends.
func (d *DB) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return d.q(ctx).QueryRowContext(ctx, d.Rebind(query), args...)
}

// Err turns a driver error (or sql.ErrNoRows) into one that matches the
// package's sentinel errors with errors.Is, keeping the original in the chain.
func (d *DB) Err(err error) error { return d.classify(err) }

// classified keeps both the sentinel and the driver's error in the chain.
type classified struct {
	kind error
	err  error
}

func (c *classified) Error() string   { return c.kind.Error() + ": " + c.err.Error() }
func (c *classified) Unwrap() []error { return []error{c.kind, c.err} }

func (d *DB) classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	var kind error
	var pgErr *pgconn.PgError
	var sqErr *sqlite.Error
	switch {
	case errors.As(err, &pgErr):
		switch pgErr.Code {
		case "23505":
			kind = ErrConflict
		case "40001", "40P01":
			kind = ErrSerialization
		case "53100", "53200", "57P01", "57P02", "57P03", "08000", "08003", "08006":
			kind = ErrUnavailable
		}
	case errors.As(err, &sqErr):
		switch sqErr.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			kind = ErrConflict
		}
		switch sqErr.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			kind = ErrSerialization
		case sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY:
			kind = ErrUnavailable
		}
	case pgconn.SafeToRetry(err), pgconn.Timeout(err):
		kind = ErrUnavailable
	}
	if kind == nil {
		var netErr interface{ Timeout() bool }
		if errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			kind = ErrUnavailable
		}
	}
	if kind == nil {
		return err
	}
	return &classified{kind: kind, err: err}
}

// Rebind rewrites `?` placeholders as `$1, $2, …` for PostgreSQL. Question
// marks inside single-quoted literals are left alone.
func (d *DB) Rebind(query string) string {
	if d.dialect != Postgres || strings.IndexByte(query, '?') < 0 {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	n, inQuote := 0, false
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'':
			inQuote = !inQuote
			b.WriteByte(c)
		case c == '?' && !inQuote:
			n++
			b.WriteByte('$')
			b.WriteString(itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return fmt.Sprint(n)
}

// ForUpdate is the row-locking clause for a SELECT inside a transaction:
// PostgreSQL needs it, SQLite's immediate transactions already hold the lock.
func (d *DB) ForUpdate() string {
	if d.dialect == Postgres {
		return " FOR UPDATE"
	}
	return ""
}
