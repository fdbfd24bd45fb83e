package db

import (
	"context"
	"database/sql/driver"
	"fmt"
	"time"
)

// Background jobs with many nodes.
//
// Every node runs the same periodic jobs (token purge, the audit sealer,
// purges of settled notifications). TryLock keeps two nodes from running a
// job at the same moment; RunDue also keeps the job to one run per interval
// across the cluster, recording its last start in cluster_jobs. Work that is
// shared out item by item (logout deliveries) uses SELECT … FOR UPDATE SKIP
// LOCKED instead.

// lockKey is the advisory lock of job name; it is per schema, so that
// deployments and test runs sharing one server in different schemas never
// contend.
const lockKey = `hashtext('sso.' || ? || '.' || current_schema())`

// TryLock runs fn and reports true, unless another node is running the job
// name at the moment, in which case it reports false at once. On PostgreSQL
// the lock is a session advisory lock held by a connection of its own while
// fn works through the pool; SQLite serves one node, so fn just runs.
func (d *DB) TryLock(ctx context.Context, name string, fn func(ctx context.Context) error) (bool, error) {
	if d.dialect != Postgres {
		return true, fn(ctx)
	}
	conn, err := d.sql.Conn(ctx)
	if err != nil {
		return false, fmt.Errorf("lock %s: %w", name, d.classify(err))
	}
	defer conn.Close()
	var ok bool
	if err := conn.QueryRowContext(ctx, d.Rebind(`SELECT pg_try_advisory_lock(`+lockKey+`)`), name).Scan(&ok); err != nil {
		return false, fmt.Errorf("lock %s: %w", name, d.classify(err))
	}
	if !ok {
		return false, nil
	}
	defer func() {
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), d.Rebind(`SELECT pg_advisory_unlock(`+lockKey+`)`), name); err != nil {
			// A pooled connection must not keep the lock: drop it instead.
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	return true, fn(ctx)
}

// RunDue runs fn under TryLock if the job name has not started anywhere in
// the cluster within every, and records the start; it reports whether fn
// ran. Times are the database's, so the nodes' clocks do not matter, and a
// tenth of every is forgiven, so that nodes whose tickers drift apart do not
// skip a whole interval. SQLite serves one node: fn just runs.
func (d *DB) RunDue(ctx context.Context, name string, every time.Duration, fn func(ctx context.Context) error) (bool, error) {
	if d.dialect != Postgres {
		return true, fn(ctx)
	}
	ran := false
	_, err := d.TryLock(ctx, name, func(ctx context.Context) error {
		res, err := d.Exec(ctx, `INSERT INTO cluster_jobs (name, last_run_at) VALUES (?, now())
			ON CONFLICT (name) DO UPDATE SET last_run_at = now()
			WHERE cluster_jobs.last_run_at <= now() - make_interval(secs => ?)`, name, (every - every/10).Seconds())
		if err != nil {
			return fmt.Errorf("claim job %s: %w", name, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err // not due: another node ran it within the interval
		}
		ran = true
		return fn(ctx)
	})
	return ran, err
}
