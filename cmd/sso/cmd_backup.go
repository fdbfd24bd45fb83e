package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/govsso/sso/db"
)

// errPostgresBackup sends PostgreSQL operators to the tools made for it: a
// logical dump or a base backup with WAL archiving copies more safely than
// anything sso could do through one connection.
var errPostgresBackup = errors.New("PostgreSQL is backed up with pg_dump or a base backup with WAL archiving (point-in-time recovery), not by sso; see \"Backup and recovery\" in the README")

// dataTables are the tables whose rows make a database worth protecting
// from an accidental restore.
var dataTables = []string{"users", "clients", "oauth_tokens", "signing_keys", "audit_events"}

func runBackup(ctx context.Context, e env, args []string) error {
	f := newFlags("backup", e)
	out := f.String("out", "", "file to write the backup to; must not exist")
	if err := f.parse(args); err != nil {
		return err
	}
	if *out == "" {
		return usageError{msg: "--out FILE is required"}
	}
	cfg, err := loadConfig(f, e)
	if err != nil {
		return err
	}
	if cfg.SQLitePath() == "" {
		return errPostgresBackup
	}
	d, err := db.Open(ctx, cfg.DatabaseURL, db.PoolOptions{})
	if err != nil {
		return err
	}
	defer d.Close()
	if err := vacuumInto(ctx, d, *out); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "backed up %s to %s\n", d.Target(), *out)
	return nil
}

// vacuumInto writes a consistent copy of a live SQLite database to path.
// The empty file is created first, exclusively and with mode 0600, so an
// existing file is never overwritten and the copy is private from its first
// byte (VACUUM INTO accepts an empty target).
func vacuumInto(ctx context.Context, d *db.DB, path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("backup file %s already exists; choose a new name", path)
	}
	if err != nil {
		return fmt.Errorf("create backup file: %w", err)
	}
	f.Close()
	if _, err := d.SQL().ExecContext(ctx, "VACUUM INTO ?", path); err != nil {
		os.Remove(path)
		return fmt.Errorf("backup %s: %w", d.Target(), err)
	}
	return nil
}

func runRestore(ctx context.Context, e env, args []string) error {
	f := newFlags("restore", e)
	from := f.String("from", "", "backup file written by sso backup")
	force := f.Bool("force", false, "replace a database that already holds data")
	if err := f.parse(args); err != nil {
		return err
	}
	if *from == "" {
		return usageError{msg: "--from FILE is required"}
	}
	cfg, err := loadConfig(f, e)
	if err != nil {
		return err
	}
	target := cfg.SQLitePath()
	if target == "" {
		return errors.New("sso restore restores SQLite only; restore PostgreSQL with pg_restore or point-in-time recovery (see \"Backup and recovery\" in the README)")
	}
	if err := ensureDir(filepath.Dir(target)); err != nil {
		return err
	}
	if !*force {
		if err := refuseIfData(ctx, target); err != nil {
			return err
		}
	}
	if err := replaceDatabase(ctx, *from, target); err != nil {
		return err
	}
	d, err := db.Open(ctx, cfg.DatabaseURL, db.PoolOptions{})
	if err != nil {
		return err
	}
	defer d.Close()
	applied, err := d.Migrate(ctx)
	if err != nil {
		return fmt.Errorf("migrate restored database: %w", err)
	}
	fmt.Fprintf(e.stdout, "restored %s from %s (%d migrations applied); start sso with the key-encryption key of the backed-up installation\n", target, *from, len(applied))
	return nil
}

// refuseIfData fails when the SQLite file at path holds any row worth
// keeping; a missing file or a freshly migrated, empty one is fine.
func refuseIfData(ctx context.Context, path string) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	d, err := db.Open(ctx, "sqlite://"+path, db.PoolOptions{})
	if err != nil {
		return err
	}
	defer d.Close()
	for _, table := range dataTables {
		var exists int
		if err := d.SQL().QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", table).Scan(&exists); err != nil {
			return fmt.Errorf("inspect %s: %w", path, err)
		}
		if exists == 0 {
			continue
		}
		var rows int
		if err := d.SQL().QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&rows); err != nil {
			return fmt.Errorf("inspect %s: %w", path, err)
		}
		if rows > 0 {
			return fmt.Errorf("database %s already holds data (table %s); stop sso and pass --force to replace it", path, table)
		}
	}
	return nil
}

// replaceDatabase copies the backup next to target, checks the copy is an
// intact SQLite database, and renames it into place. The old database's
// -wal and -shm files go first: SQLite would otherwise replay them onto the
// restored file.
func replaceDatabase(ctx context.Context, from, target string) error {
	tmp, err := copyToTemp(from, filepath.Dir(target))
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := checkIntegrity(ctx, tmp); err != nil {
		return fmt.Errorf("backup %s: %w", from, err)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(tmp + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := os.Remove(target + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove old %s%s: %w", target, suffix, err)
		}
	}
	if err := os.Rename(tmp, target); err != nil {
		return fmt.Errorf("restore into %s: %w", target, err)
	}
	return nil
}

// copyToTemp copies src into a new mode-0600 file in dir and returns its name.
func copyToTemp(src, dir string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("open backup: %w", err)
	}
	defer in.Close()
	out, err := os.CreateTemp(dir, ".sso-restore-*.db")
	if err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	if err := out.Chmod(0o600); err != nil {
		out.Close()
		os.Remove(out.Name())
		return "", err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out.Name())
		return "", fmt.Errorf("copy backup: %w", err)
	}
	return out.Name(), nil
}

// checkIntegrity opens a SQLite file and runs PRAGMA integrity_check.
func checkIntegrity(ctx context.Context, path string) error {
	d, err := db.Open(ctx, "sqlite://"+path, db.PoolOptions{})
	if err != nil {
		return err
	}
	defer d.Close()
	var res string
	if err := d.SQL().QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res); err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	if res != "ok" {
		return fmt.Errorf("integrity check failed: %s", res)
	}
	return nil
}

func runHealthcheck(ctx context.Context, e env, args []string) error {
	f := newFlags("healthcheck", e)
	if err := f.parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(f, e)
	if err != nil {
		return err
	}
	u, err := readyURL(cfg.Addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	client := http.DefaultClient
	if cfg.TLSCertFile != "" {
		req.URL.Scheme = "https"
		// The probe reaches this host's own server over loopback, where the
		// certificate's public name cannot match, and sends nothing secret.
		client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("not ready: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("not ready: %s answered %d", req.URL, resp.StatusCode)
	}
	return nil
}

// readyURL is the readiness endpoint of the server listening on addr, seen
// from the same host: a wildcard listen address is reached over loopback.
func readyURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("invalid SSO_ADDR %q: %w", addr, err)
	}
	switch host {
	case "", "0.0.0.0", "::":
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz/ready", nil
}
