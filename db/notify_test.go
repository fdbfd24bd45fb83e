package db_test

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

// recorder collects the ids an OnInvalidate handler hears.
type recorder chan string

func (r recorder) handle(id string) { r <- id }

// next returns the next id heard within the deadline that is one of want
// (others are from concurrent tests sharing the server), or fails.
func (r recorder) next(t *testing.T, want ...string) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case id := <-r:
			if slices.Contains(want, id) {
				return id, time.Since(start)
			}
		case <-deadline:
			t.Fatalf("no invalidation among %q within 10 s", want)
			return "", 0
		}
	}
}

func (r recorder) none(t *testing.T) {
	t.Helper()
	select {
	case id := <-r:
		t.Fatalf("heard %q, want nothing", id)
	default:
	}
}

func TestInvalidateLocallyAfterCommitOnly(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		rec := make(recorder, 10)
		d.OnInvalidate("thing", rec.handle)

		err := d.InTx(ctx, func(ctx context.Context) error {
			if err := d.Invalidate(ctx, "thing", "committed"); err != nil {
				return err
			}
			rec.none(t) // the change is not visible yet
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if id, _ := rec.next(t, "committed"); id != "committed" {
			t.Fatalf("heard %q", id)
		}

		boom := errors.New("boom")
		err = d.InTx(ctx, func(ctx context.Context) error {
			if err := d.Invalidate(ctx, "thing", "rolled-back"); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		rec.none(t)

		if err := d.Invalidate(ctx, "thing", "direct"); err != nil {
			t.Fatal(err)
		}
		if id := <-rec; id != "direct" {
			t.Fatalf("outside a transaction heard %q, want direct at once", id)
		}
		for _, kind := range []string{"", "a:b"} {
			if err := d.Invalidate(ctx, kind, "x"); err == nil {
				t.Errorf("Invalidate with kind %q succeeded, want an error", kind)
			}
		}
	})
}

func TestInvalidationReachesOtherNodes(t *testing.T) {
	url := dbtest.PostgresSchemaURL(t)
	app := "sso_test_" + rand.Text()[:10]
	url += "&application_name=" + app
	ctx := context.Background()
	a, err := db.Open(ctx, url, db.PoolOptions{ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := db.Open(ctx, url, db.PoolOptions{ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	kind := "test-" + rand.Text()[:8] // apart from concurrent tests on the same server
	rec := make(recorder, 100)
	b.OnInvalidate(kind, rec.handle)
	lctx, stop := context.WithCancel(ctx)
	listening := make(chan struct{})
	go func() { defer close(listening); b.ListenInvalidations(lctx, slog.New(slog.DiscardHandler)) }()
	defer func() { stop(); <-listening }()
	rec.next(t, db.AllEntries) // connected

	// A rolled-back change sends nothing; a committed one arrives at b.
	start := time.Now()
	_ = a.InTx(ctx, func(ctx context.Context) error {
		if err := a.Invalidate(ctx, kind, "rolled-back"); err != nil {
			t.Fatal(err)
		}
		return errors.New("roll back")
	})
	if err := a.InTx(ctx, func(ctx context.Context) error { return a.Invalidate(ctx, kind, "c1") }); err != nil {
		t.Fatal(err)
	}
	id, _ := rec.next(t, "c1", "rolled-back")
	took := time.Since(start)
	if id != "c1" {
		t.Fatalf("b heard %q first, want c1 (the rolled-back change must not be announced)", id)
	}
	t.Logf("two transactions and the invalidation reaching the other node took %s", took)

	// The listener's connection is cut: it reconnects, drops everything
	// (notifications may have been missed), and hears the next change.
	var killed int
	err = a.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = ?`, app+db.ListenerAppSuffix).Scan(&killed)
	if err != nil || killed != 1 {
		t.Fatalf("terminated %d listener connections (%v), want 1", killed, err)
	}
	rec.next(t, db.AllEntries)
	if err := a.Invalidate(ctx, kind, "c2"); err != nil {
		t.Fatal(err)
	}
	if id, _ := rec.next(t, "c2"); id != "c2" {
		t.Fatalf("after reconnecting b heard %q", id)
	}
}
