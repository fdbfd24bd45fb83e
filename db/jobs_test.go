package db_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

// twoHandles opens two pools on one fresh PostgreSQL schema, as two nodes.
func twoHandles(t *testing.T) (a, b *db.DB) {
	t.Helper()
	url := dbtest.PostgresSchemaURL(t)
	ctx := context.Background()
	open := func() *db.DB {
		d, err := db.Open(ctx, url, db.PoolOptions{ConnectTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	a = open()
	if _, err := a.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return a, open()
}

func TestTryLockLetsOneNodeRunAtATime(t *testing.T) {
	a, b := twoHandles(t)
	ctx := context.Background()
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		ran, err := a.TryLock(ctx, "purge", func(context.Context) error {
			close(started)
			<-release
			return nil
		})
		if err == nil && !ran {
			err = errors.New("the first caller did not run")
		}
		done <- err
	}()
	<-started
	for _, other := range []*db.DB{b, a} { // another node, and another connection of the same one
		ran, err := other.TryLock(ctx, "purge", func(context.Context) error {
			t.Error("a second caller ran while the first held the lock")
			return nil
		})
		if err != nil || ran {
			t.Fatalf("second caller: ran=%v err=%v, want skipped", ran, err)
		}
	}
	ran, err := b.TryLock(ctx, "another job", func(context.Context) error { return nil })
	if err != nil || !ran {
		t.Fatalf("another job: ran=%v err=%v, want it to run beside the first", ran, err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	ran, err = b.TryLock(ctx, "purge", func(context.Context) error { return boom })
	if !ran || !errors.Is(err, boom) {
		t.Fatalf("after the first finished: ran=%v err=%v, want it to run and return fn's error", ran, err)
	}
	// The failing run released the lock too.
	if ran, err := a.TryLock(ctx, "purge", func(context.Context) error { return nil }); err != nil || !ran {
		t.Fatalf("lock not released after a failing run: ran=%v err=%v", ran, err)
	}
}

func TestTryLockJustRunsOnSQLite(t *testing.T) {
	d := dbtest.Open(t, db.SQLite)
	ran, err := d.TryLock(context.Background(), "purge", func(ctx context.Context) error {
		inner, err := d.TryLock(ctx, "purge", func(context.Context) error { return nil })
		if !inner {
			t.Error("SQLite serves one node: TryLock must not refuse")
		}
		return err
	})
	if err != nil || !ran {
		t.Fatalf("ran=%v err=%v", ran, err)
	}
}

func TestRunDueRunsOncePerIntervalAcrossNodes(t *testing.T) {
	a, b := twoHandles(t)
	ctx := context.Background()
	var runs atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 { // eight ticks at once on two nodes
		node := []*db.DB{a, b}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := node.RunDue(ctx, "seal", time.Hour, func(context.Context) error {
				runs.Add(1)
				time.Sleep(20 * time.Millisecond) // long enough to overlap the others
				return nil
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := runs.Load(); n != 1 {
		t.Fatalf("job ran %d times in one interval, want once", n)
	}
	// Once a (here, tiny) interval has passed, it is due again.
	time.Sleep(2 * time.Millisecond)
	ran, err := b.RunDue(ctx, "seal", time.Millisecond, func(context.Context) error { return nil })
	if err != nil || !ran {
		t.Fatalf("after the interval: ran=%v err=%v, want it to run", ran, err)
	}
}

func TestRunDueRecordsTheLastStart(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		count := 0
		job := func(context.Context) error { count++; return nil }
		// SQLite serves one node: the job always runs.
		want := []bool{true, false, false}
		if d.Dialect() == db.SQLite {
			want = []bool{true, true, true}
		}
		for i, w := range want {
			ran, err := d.RunDue(ctx, "purge", time.Hour, job)
			if err != nil || ran != w {
				t.Fatalf("call %d: ran=%v err=%v, want ran=%v", i, ran, err, w)
			}
		}
		if ran, err := d.RunDue(ctx, "other", time.Hour, job); err != nil || !ran {
			t.Fatalf("another job: ran=%v err=%v", ran, err)
		}
		time.Sleep(2 * time.Millisecond)
		if ran, err := d.RunDue(ctx, "purge", time.Millisecond, job); err != nil || !ran {
			t.Fatalf("once the interval passed: ran=%v err=%v", ran, err)
		}
		if wantCount := 3; d.Dialect() == db.Postgres && count != wantCount {
			t.Fatalf("job ran %d times, want %d", count, wantCount)
		}
		boom := errors.New("boom")
		if _, err := d.RunDue(ctx, "failing", time.Hour, func(context.Context) error { return boom }); !errors.Is(err, boom) {
			t.Fatalf("a failing job: %v, want its error", err)
		}
	})
}
