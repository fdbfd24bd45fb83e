package db

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Cache invalidation across nodes.
//
// Nodes keep short-lived caches (clients, signing keys). When one node
// changes what another may have cached, it calls Invalidate in the
// transaction that makes the change. On PostgreSQL that sends a NOTIFY on
// InvalidationChannel, which PostgreSQL delivers to every listening node
// when (and only if) the transaction commits; each node's
// ListenInvalidations hears it and calls the handlers registered with
// OnInvalidate. The node that made the change also calls its own handlers
// after the commit, without waiting for the round trip. SQLite serves one
// node, so only the local call happens. The caches keep their TTLs as a
// safety net for a notification missed while a listener reconnects.

// InvalidationChannel is the PostgreSQL channel invalidations travel on.
const InvalidationChannel = "sso_cache"

// AllEntries is the id handlers receive when every entry of their kind must
// go: after the listener reconnected, notifications may have been missed.
const AllEntries = ""

// Invalidator is what a cache needs to hear of, and announce, changes made
// on any node; *DB implements it.
type Invalidator interface {
	// Invalidate announces that the entry id of kind changed, once the
	// transaction in ctx (if any) commits.
	Invalidate(ctx context.Context, kind, id string) error
	// OnInvalidate registers fn to be called with the id of every changed
	// entry of kind, or AllEntries.
	OnInvalidate(kind string, fn func(id string))
}

var _ Invalidator = (*DB)(nil)

// bus holds the handlers of one DB.
type bus struct {
	mu       sync.RWMutex
	handlers map[string][]func(id string)
}

func (b *bus) add(kind string, fn func(string)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.handlers == nil {
		b.handlers = map[string][]func(string){}
	}
	b.handlers[kind] = append(b.handlers[kind], fn)
}

func (b *bus) deliver(kind, id string) {
	b.mu.RLock()
	fns := b.handlers[kind]
	b.mu.RUnlock()
	for _, fn := range fns {
		fn(id)
	}
}

func (b *bus) deliverAll() {
	b.mu.RLock()
	kinds := make([]string, 0, len(b.handlers))
	for k := range b.handlers {
		kinds = append(kinds, k)
	}
	b.mu.RUnlock()
	for _, k := range kinds {
		b.deliver(k, AllEntries)
	}
}

// OnInvalidate registers fn for invalidations of kind, from this node or
// (on PostgreSQL, while ListenInvalidations runs) any other. fn must be
// quick: it runs on the listener's goroutine or the committing one.
func (d *DB) OnInvalidate(kind string, fn func(id string)) { d.bus.add(kind, fn) }

// Invalidate announces a change of the entry id of kind. Inside a
// transaction the announcement leaves with the commit and is dropped with a
// rollback, so no node refetches before the change is visible; outside one
// it leaves at once. kind must not contain ':'.
func (d *DB) Invalidate(ctx context.Context, kind, id string) error {
	if kind == "" || strings.ContainsRune(kind, ':') {
		return fmt.Errorf("invalidate: bad kind %q", kind)
	}
	if d.dialect == Postgres {
		if _, err := d.Exec(ctx, `SELECT pg_notify(?, ?)`, InvalidationChannel, kind+":"+id); err != nil {
			return fmt.Errorf("invalidate %s %s: %w", kind, id, err)
		}
	}
	if !AfterCommit(ctx, func() { d.bus.deliver(kind, id) }) {
		d.bus.deliver(kind, id)
	}
	return nil
}

// ListenInvalidations keeps a connection of its own LISTENing on
// InvalidationChannel until ctx ends, calling the OnInvalidate handlers for
// each notification. A lost connection is re-opened with backoff (100 ms
// doubling to 10 s); once it is back, every handler is called with
// AllEntries, since notifications sent meanwhile are lost. On SQLite it
// returns at once: there are no other nodes.
func (d *DB) ListenInvalidations(ctx context.Context, logger *slog.Logger) {
	if d.dialect != Postgres {
		return
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := d.listen(ctx, func() {
			backoff = 100 * time.Millisecond
			d.bus.deliverAll()
		})
		if ctx.Err() != nil {
			return
		}
		logger.Warn("cache invalidation listener lost its connection; reconnecting", "err", err, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// ListenerAppSuffix is appended to the application_name of the listener's
// connection, so that operators can tell it apart in pg_stat_activity.
const ListenerAppSuffix = " cache listener"

// listenIdle is how long the listener waits for a notification before it
// checks that its connection is still alive.
const listenIdle = 30 * time.Second

// listen connects, LISTENs, calls connected, and delivers notifications
// until the connection fails or ctx ends.
func (d *DB) listen(ctx context.Context, connected func()) error {
	cfg, err := pgx.ParseConfig(d.url)
	if err != nil {
		return err
	}
	name := cfg.RuntimeParams["application_name"]
	if name == "" {
		name = "sso"
	}
	cfg.RuntimeParams["application_name"] = name + ListenerAppSuffix
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.ConnectConfig(cctx, cfg)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+InvalidationChannel); err != nil {
		return err
	}
	connected()
	for {
		wctx, cancel := context.WithTimeout(ctx, listenIdle)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			kind, id, ok := strings.Cut(n.Payload, ":")
			if ok {
				d.bus.deliver(kind, id)
			}
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err):
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err = conn.Ping(pctx)
			cancel()
			if err != nil {
				return fmt.Errorf("listener connection: %w", err)
			}
		default:
			return err
		}
	}
}
