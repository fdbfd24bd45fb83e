package audit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

func appendN(t *testing.T, l *audit.Log, n int) []audit.Event {
	t.Helper()
	var out []audit.Event
	for i := range n {
		e, err := l.Append(context.Background(), audit.Event{Actor: "cli", Subject: "u1", Action: audit.ActionUserCreate,
			Result: audit.ResultSuccess, Details: map[string]string{"i": fmt.Sprint(i)}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return seal(t, l)[len(listAll(t, context.Background(), l))-n:]
}

// seal chains what was appended, as the server's sealer does every second,
// and returns every record.
func seal(t *testing.T, l *audit.Log) []audit.Event {
	t.Helper()
	if _, err := l.Seal(context.Background()); err != nil {
		t.Fatal(err)
	}
	return listAll(t, context.Background(), l)
}

func listAll(t *testing.T, ctx context.Context, l *audit.Log) []audit.Event {
	t.Helper()
	got, err := l.List(ctx, audit.Filter{Limit: audit.MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestAppendFillsFieldsAndChains(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		l := audit.NewLog(d)
		ev := appendN(t, l, 2)
		if ev[0].PrevHash != audit.GenesisHash {
			t.Errorf("first prev_hash %s, want the genesis hash", ev[0].PrevHash)
		}
		if ev[1].PrevHash != ev[0].Hash {
			t.Errorf("second prev_hash %s, want the first hash %s", ev[1].PrevHash, ev[0].Hash)
		}
		for _, e := range ev {
			if e.ID == "" || e.Seq == 0 || len(e.Hash) != 64 || e.OccurredAt.Location() != time.UTC ||
				e.OccurredAt.Nanosecond()%1000 != 0 || time.Since(e.OccurredAt) > time.Minute {
				t.Errorf("fields not filled: %+v", e)
			}
		}
		if ev[1].Seq <= ev[0].Seq || ev[1].ID == ev[0].ID {
			t.Errorf("seq %d then %d, ids %s and %s", ev[0].Seq, ev[1].Seq, ev[0].ID, ev[1].ID)
		}
		got := listAll(t, context.Background(), l)
		if len(got) != 2 {
			t.Fatalf("listed %d records, want 2", len(got))
		}
		for i := range got {
			if got[i].Hash != ev[i].Hash || got[i].ID != ev[i].ID || !got[i].OccurredAt.Equal(ev[i].OccurredAt) ||
				got[i].Details["i"] != fmt.Sprint(i) {
				t.Errorf("stored %+v, appended %+v", got[i], ev[i])
			}
		}
		res, err := l.Verify(context.Background())
		if err != nil || !res.OK || res.Checked != 2 {
			t.Fatalf("verify: %+v %v", res, err)
		}
	})
}

func TestAppendKeepsCallersIDAndTime(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		at := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("CST", 8*3600))
		e, err := audit.NewLog(d).Append(context.Background(), audit.Event{ID: "ev-1", OccurredAt: at,
			Action: audit.ActionKeysRotate, Result: audit.ResultSuccess, Seq: 99, Hash: "forged", PrevHash: "forged"})
		if err != nil {
			t.Fatal(err)
		}
		want := time.Date(2024, 5, 5, 23, 8, 9, 123456000, time.UTC)
		if e.ID != "ev-1" || !e.OccurredAt.Equal(want) || e.OccurredAt.Location() != time.UTC {
			t.Errorf("id %q, time %v; want ev-1, %v", e.ID, e.OccurredAt, want)
		}
		if e.PrevHash != "" || e.Hash != "" || e.Seq == 99 {
			t.Errorf("caller's seq or hashes were kept: %+v", e)
		}
	})
}

func TestAppendJoinsTheCallersTransaction(t *testing.T) {
	boom := errors.New("the change failed")
	tests := []struct {
		name    string
		fail    error
		survive int
	}{
		{"commit keeps the record", nil, 1},
		{"rollback drops the record", boom, 0},
	}
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				ctx := context.Background()
				if _, err := d.Exec(ctx, `DELETE FROM audit_events`); err != nil {
					t.Fatal(err)
				}
				l := audit.NewLog(d)
				err := d.InTx(ctx, func(ctx context.Context) error {
					e, err := l.Append(ctx, audit.Event{Action: audit.ActionUserCreate, Result: audit.ResultSuccess})
					if err != nil {
						return err
					}
					// The caller's own reads see the record in its transaction.
					if got := listAll(t, ctx, l); len(got) != 1 || got[0].ID != e.ID {
						t.Errorf("inside the transaction: %+v", got)
					}
					return tc.fail
				})
				if !errors.Is(err, tc.fail) {
					t.Fatalf("InTx: %v, want %v", err, tc.fail)
				}
				if got := listAll(t, ctx, l); len(got) != tc.survive {
					t.Fatalf("%d records after the transaction, want %d", len(got), tc.survive)
				}
				// A rolled-back record leaves no gap in the chain.
				appendN(t, l, 1)
				if res, err := l.Verify(ctx); err != nil || !res.OK {
					t.Fatalf("verify: %+v %v", res, err)
				}
			})
		}
	})
}

func TestConcurrentAppendsKeepOneChain(t *testing.T) {
	const goroutines, each = 8, 20
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		l := audit.NewLog(d)
		var wg sync.WaitGroup
		errs := make(chan error, goroutines*each)
		for g := range goroutines {
			wg.Go(func() {
				for i := range each {
					_, err := l.Append(context.Background(), audit.Event{Action: audit.ActionLogin, Result: audit.ResultSuccess,
						Details: map[string]string{"g": fmt.Sprint(g), "i": fmt.Sprint(i)}})
					if err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if res, _ := l.Verify(context.Background()); res.Pending != goroutines*each || res.Checked != 0 {
			t.Fatalf("before sealing: %+v", res)
		}
		seal(t, l)
		res, err := l.Verify(context.Background())
		if err != nil || !res.OK || res.Checked != goroutines*each {
			t.Fatalf("verify: %+v %v", res, err)
		}
	})
}

func TestVerifyDetectsTampering(t *testing.T) {
	tests := []struct {
		name   string
		sql    string
		target int // index of the record the SQL is run on
		broken int // index of the record Verify must name
		reason string
	}{
		{"edited reason", `UPDATE audit_events SET reason = 'nothing happened' WHERE seq = ?`, 2, 2, "edited"},
		{"edited actor", `UPDATE audit_events SET actor = 'someone else' WHERE seq = ?`, 2, 2, "edited"},
		{"edited details", `UPDATE audit_events SET details = '{"i":"7"}' WHERE seq = ?`, 2, 2, "edited"},
		{"garbled details", `UPDATE audit_events SET details = 'not json' WHERE seq = ?`, 2, 2, "edited"},
		{"edited hash", `UPDATE audit_events SET hash = prev_hash WHERE seq = ?`, 2, 2, "edited"},
		{"edited last record", `UPDATE audit_events SET result = 'failure' WHERE seq = ?`, 4, 4, "edited"},
		{"deleted record", `DELETE FROM audit_events WHERE seq = ?`, 2, 3, "deleted"},
		{"deleted first record", `DELETE FROM audit_events WHERE seq = ?`, 0, 1, "genesis"},
	}
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				ctx := context.Background()
				if _, err := d.Exec(ctx, `DELETE FROM audit_events`); err != nil {
					t.Fatal(err)
				}
				l := audit.NewLog(d)
				ev := appendN(t, l, 5)
				if _, err := d.Exec(ctx, tc.sql, ev[tc.target].Seq); err != nil {
					t.Fatal(err)
				}
				res, err := l.Verify(ctx)
				if err != nil {
					t.Fatal(err)
				}
				want := ev[tc.broken].Seq
				if res.OK || res.BrokenSeq != want || !strings.Contains(res.Reason, tc.reason) ||
					!strings.HasPrefix(res.Reason, fmt.Sprintf("record %d:", want)) {
					t.Fatalf("got %+v, want broken at %d (%s)", res, want, tc.reason)
				}
			})
		}
	})
}

func TestVerifyEmptyLog(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		res, err := audit.NewLog(d).Verify(context.Background())
		if err != nil || !res.OK || res.Checked != 0 {
			t.Fatalf("verify: %+v %v", res, err)
		}
	})
}

func TestListFilters(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		l := audit.NewLog(d)
		before := time.Now().Add(-time.Hour)
		var ev []audit.Event
		for _, e := range []audit.Event{
			{Actor: "alice", Subject: "u1", ClientID: "tax", Action: audit.ActionLogin, Result: audit.ResultSuccess},
			{Actor: "bob", Subject: "u2", Action: audit.ActionLogin, Result: audit.ResultFailure},
			{Actor: "alice", Subject: "u2", Action: audit.ActionUserDisable, Result: audit.ResultSuccess},
			{Actor: "cli", Action: audit.ActionKeysRotate, Result: audit.ResultSuccess, OccurredAt: before},
		} {
			stored, err := l.Append(ctx, e)
			if err != nil {
				t.Fatal(err)
			}
			ev = append(ev, stored)
		}
		tests := []struct {
			name string
			f    audit.Filter
			want []int // indexes into ev, in order
		}{
			{"all", audit.Filter{}, []int{0, 1, 2, 3}},
			{"actor", audit.Filter{Actor: "alice"}, []int{0, 2}},
			{"subject", audit.Filter{Subject: "u2"}, []int{1, 2}},
			{"client", audit.Filter{ClientID: "tax"}, []int{0}},
			{"action", audit.Filter{Action: audit.ActionLogin}, []int{0, 1}},
			{"action and result", audit.Filter{Action: audit.ActionLogin, Result: audit.ResultFailure}, []int{1}},
			{"since is inclusive", audit.Filter{Since: ev[3].OccurredAt}, []int{0, 1, 2, 3}},
			{"since", audit.Filter{Since: before.Add(time.Minute)}, []int{0, 1, 2}},
			{"until is exclusive", audit.Filter{Until: ev[3].OccurredAt}, nil},
			{"until", audit.Filter{Until: before.Add(time.Minute)}, []int{3}},
			{"after seq", audit.Filter{AfterSeq: ev[1].Seq}, []int{2, 3}},
			{"limit", audit.Filter{Limit: 2}, []int{0, 1}},
			{"negative limit is the default", audit.Filter{Limit: -1}, []int{0, 1, 2, 3}},
			{"page two", audit.Filter{AfterSeq: ev[1].Seq, Limit: 1}, []int{2}},
			{"nothing", audit.Filter{Actor: "mallory"}, nil},
			{"injection is a value", audit.Filter{Actor: "x' OR '1'='1"}, nil},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := l.List(ctx, tc.f)
				if err != nil {
					t.Fatal(err)
				}
				var seqs, want []int64
				for _, e := range got {
					seqs = append(seqs, e.Seq)
				}
				for _, i := range tc.want {
					want = append(want, ev[i].Seq)
				}
				if fmt.Sprint(seqs) != fmt.Sprint(want) {
					t.Errorf("got seqs %v, want %v", seqs, want)
				}
			})
		}
	})
}

func TestListCapsTheLimit(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		l := audit.NewLog(d)
		// One transaction keeps 1001 appends quick on both backends.
		err := d.InTx(ctx, func(ctx context.Context) error {
			for range audit.MaxListLimit + 1 {
				if _, err := l.Append(ctx, audit.Event{Action: audit.ActionLogin, Result: audit.ResultSuccess}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ limit, want int }{
			{0, audit.DefaultListLimit}, {audit.MaxListLimit + 1, audit.MaxListLimit}, {1 << 30, audit.MaxListLimit},
		} {
			got, err := l.List(ctx, audit.Filter{Limit: tc.limit})
			if err != nil || len(got) != tc.want {
				t.Errorf("limit %d: %d records, %v; want %d", tc.limit, len(got), err, tc.want)
			}
		}
		seal(t, l)
		if res, err := l.Verify(ctx); err != nil || !res.OK || res.Checked != audit.MaxListLimit+1 {
			t.Errorf("verify across pages: %+v %v", res, err)
		}
	})
}

func TestHostileInputIsStoredCleanAndVerifies(t *testing.T) {
	details := map[string]string{"bad\xffkey": "v\x00al", "a-long": strings.Repeat("界", 2000)}
	for i := range 100 {
		details[fmt.Sprintf("k%03d", i)] = "x"
	}
	in := audit.Event{Action: audit.ActionLogin, Result: audit.ResultFailure,
		Actor:     "nul\x00byte",
		Subject:   strings.Repeat("s", 10_000),
		IP:        "203.0.113.7\r\nforged: line",
		UserAgent: strings.Repeat("A", 10_000),
		Reason:    "bad \xff\xfe utf-8 \x1b[31mred\x1b[0m\ttab\nline" + strings.Repeat("é", 1000),
		Details:   details,
	}
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		l := audit.NewLog(d)
		e, err := l.Append(ctx, in)
		if err != nil {
			t.Fatalf("a hostile event must still be recorded: %v", err)
		}
		got := seal(t, l)[0]
		checks := []struct {
			name string
			ok   bool
		}{
			{"user agent cut to 512 bytes", got.UserAgent == strings.Repeat("A", 512)},
			{"subject cut to 256 bytes", len(got.Subject) == 256},
			{"NUL replaced", got.Actor == "nul\uFFFDbyte"},
			{"CR LF replaced", got.IP == "203.0.113.7\uFFFD\nforged: line"},
			{"reason cleaned and cut on a character boundary", strings.HasPrefix(got.Reason, "bad \uFFFD utf-8 \uFFFD[31mred\uFFFD[0m\ttab\nline") &&
				len(got.Reason) <= 1000 && len(got.Reason) > 990 && strings.HasSuffix(got.Reason, "é")},
			{"at most 32 details", len(got.Details) == 32},
			{"detail key and value cleaned", got.Details["bad\uFFFDkey"] == "v\uFFFDal"},
			{"detail value cut", got.Details["a-long"] == strings.Repeat("界", 333)},
			{"stored as returned", got.ID == e.ID && got.Reason == e.Reason && len(e.Details) == 32 && len(got.Hash) == 64},
		}
		for _, c := range checks {
			if !c.ok {
				t.Errorf("%s: actor %q, ip %q, reason %q (%d bytes), %d details, user agent %d bytes, subject %d bytes",
					c.name, got.Actor, got.IP, got.Reason[:min(40, len(got.Reason))], len(got.Reason), len(got.Details),
					len(got.UserAgent), len(got.Subject))
			}
		}
		if res, err := l.Verify(ctx); err != nil || !res.OK {
			t.Fatalf("verify: %+v %v", res, err)
		}
	})
}

// A record whose transaction commits after later records were sealed is
// chained when it commits, after them: nothing is skipped or reordered
// inside the chain. (SQLite cannot interleave writers, so only PostgreSQL
// can produce this order.)
func TestLateCommitIsSealedAfterwards(t *testing.T) {
	d := dbtest.Open(t, db.Postgres)
	ctx := context.Background()
	l := audit.NewLog(d)
	txCtx, err := d.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slow, err := l.Append(txCtx, audit.Event{Action: audit.ActionLogin, Result: audit.ResultSuccess, Reason: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	fast := appendN(t, l, 2) // appended and sealed while the slow one is uncommitted
	if err := d.Commit(txCtx); err != nil {
		t.Fatal(err)
	}
	all := seal(t, l)
	var slowPos int64
	for _, e := range all {
		if e.ID == slow.ID {
			slowPos = e.ChainPos
		}
	}
	if slowPos <= fast[1].ChainPos {
		t.Fatalf("late record at place %d, after-sealed records at %d", slowPos, fast[1].ChainPos)
	}
	if res, err := l.Verify(ctx); err != nil || !res.OK || res.Checked != 3 || res.Pending != 0 {
		t.Fatalf("verify: %+v %v", res, err)
	}
}

func TestConcurrentSealersNeverShareAPlace(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		l := audit.NewLog(d)
		var wg sync.WaitGroup
		errs := make(chan error, 200)
		for g := range 4 {
			wg.Go(func() {
				for i := range 25 {
					if _, err := l.Append(context.Background(), audit.Event{Action: audit.ActionLogin, Result: audit.ResultSuccess,
						Details: map[string]string{"g": fmt.Sprint(g), "i": fmt.Sprint(i)}}); err != nil {
						errs <- err
					}
					if _, err := l.Seal(context.Background()); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if res, err := l.Verify(context.Background()); err != nil || !res.OK || res.Checked != 100 || len(res.HeadHash) != 64 {
			t.Fatalf("verify: %+v %v", res, err)
		}
	})
}

func TestAppendBatchWritesEveryRecordAndVerifies(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		l := audit.NewLog(d)
		events := make([]audit.Event, 1203) // more than two chunks of 500
		for i := range events {
			events[i] = audit.Event{Actor: "importer", Subject: fmt.Sprintf("u%d", i), Action: "user.create", Result: audit.ResultSuccess,
				Details: map[string]string{"line": fmt.Sprint(i + 2)}}
		}
		// A rolled-back batch leaves nothing.
		err := d.InTx(ctx, func(ctx context.Context) error {
			if err := l.AppendBatch(ctx, events[:10]); err != nil {
				return err
			}
			return errors.New("roll back")
		})
		if err == nil {
			t.Fatal("no error")
		}
		if err := l.AppendBatch(ctx, events); err != nil {
			t.Fatal(err)
		}
		seal(t, l)
		res, err := l.Verify(ctx)
		if err != nil || !res.OK || res.Checked != int64(len(events)) {
			t.Fatalf("verify: %+v %v", res, err)
		}
		got, err := l.List(ctx, audit.Filter{Subject: "u1202"})
		if err != nil || len(got) != 1 || got[0].Details["line"] != "1204" || got[0].Actor != "importer" {
			t.Fatalf("last record: %+v %v", got, err)
		}
	})
}
