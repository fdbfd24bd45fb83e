package audit_test

import (
	"context"
	"errors"
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
	for i := 0; i < n; i++ {
		e, err := l.Append(context.Background(), audit.Event{Actor: "cli", Subject: "u1", Action: audit.ActionUserCreate, Result: audit.ResultSuccess,
			Details: map[string]string{"i": string(rune('a' + i))}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func TestAppendChains(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		l := audit.NewLog(d)
		ev := appendN(t, l, 2)
		if ev[0].PrevHash != audit.GenesisHash || ev[1].PrevHash != ev[0].Hash {
			t.Fatalf("chain: first prev %s, second prev %s, first hash %s", ev[0].PrevHash, ev[1].PrevHash, ev[0].Hash)
		}
		if ev[0].ID == "" || ev[0].OccurredAt.IsZero() || ev[1].Seq <= ev[0].Seq || len(ev[0].Hash) != 64 {
			t.Fatalf("fields not filled: %+v", ev[0])
		}
		got, err := l.List(context.Background(), audit.Filter{})
		if err != nil || len(got) != 2 || got[1].Details["i"] != "b" || !got[0].OccurredAt.Equal(ev[0].OccurredAt) {
			t.Fatalf("list: %+v, %v", got, err)
		}
		res, err := l.Verify(context.Background())
		if err != nil || !res.OK || res.Checked != 2 {
			t.Fatalf("verify: %+v %v", res, err)
		}
	})
}

func TestAppendRollsBackWithTheCaller(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		l := audit.NewLog(d)
		boom := errors.New("the change failed")
		err := d.InTx(context.Background(), func(ctx context.Context) error {
			if _, err := l.Append(ctx, audit.Event{Action: audit.ActionUserCreate, Result: audit.ResultSuccess}); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		got, _ := l.List(context.Background(), audit.Filter{})
		if len(got) != 0 {
			t.Fatalf("%d records survived the rollback", len(got))
		}
	})
}

func TestConcurrentAppendsKeepOneChain(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		l := audit.NewLog(d)
		var wg sync.WaitGroup
		errs := make(chan error, 160)
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 20; i++ {
					if _, err := l.Append(context.Background(), audit.Event{Action: audit.ActionLogin, Result: audit.ResultSuccess}); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		res, err := l.Verify(context.Background())
		if err != nil || !res.OK || res.Checked != 160 {
			t.Fatalf("verify: %+v %v", res, err)
		}
	})
}

func TestVerifyDetectsTampering(t *testing.T) {
	tests := []struct {
		name, sql string
		broken    int // index of the record Verify must name
		reason    string
	}{
		{"edited reason", `UPDATE audit_events SET reason = 'nothing happened' WHERE seq = ?`, 2, "edited"},
		{"edited actor", `UPDATE audit_events SET actor = 'someone else' WHERE seq = ?`, 2, "edited"},
		{"deleted record", `DELETE FROM audit_events WHERE seq = ?`, 3, "deleted"},
		{"deleted first record", `DELETE FROM audit_events WHERE seq = ?`, 1, "genesis"},
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
				target := ev[2].Seq
				if tc.name == "deleted first record" {
					target = ev[0].Seq
				}
				if _, err := d.Exec(ctx, tc.sql, target); err != nil {
					t.Fatal(err)
				}
				res, err := l.Verify(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if res.OK || res.BrokenSeq != ev[tc.broken].Seq || !strings.Contains(res.Reason, tc.reason) {
					t.Fatalf("got %+v, want broken at %d (%s)", res, ev[tc.broken].Seq, tc.reason)
				}
			})
		}
	})
}

func TestListFilters(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		l := audit.NewLog(d)
		before := time.Now().Add(-time.Hour)
		for _, e := range []audit.Event{
			{Actor: "alice", Subject: "u1", ClientID: "tax", Action: audit.ActionLogin, Result: audit.ResultSuccess},
			{Actor: "bob", Subject: "u2", Action: audit.ActionLogin, Result: audit.ResultFailure},
			{Actor: "alice", Subject: "u2", Action: audit.ActionUserDisable, Result: audit.ResultSuccess},
			{Actor: "cli", Action: audit.ActionKeysRotate, Result: audit.ResultSuccess, OccurredAt: before},
		} {
			if _, err := l.Append(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		tests := []struct {
			name string
			f    audit.Filter
			want int
		}{
			{"all", audit.Filter{}, 4},
			{"actor", audit.Filter{Actor: "alice"}, 2},
			{"subject", audit.Filter{Subject: "u2"}, 2},
			{"client", audit.Filter{ClientID: "tax"}, 1},
			{"action and result", audit.Filter{Action: audit.ActionLogin, Result: audit.ResultFailure}, 1},
			{"since", audit.Filter{Since: before.Add(time.Minute)}, 3},
			{"until", audit.Filter{Until: before.Add(time.Minute)}, 1},
			{"limit", audit.Filter{Limit: 2}, 2},
			{"nothing", audit.Filter{Actor: "mallory"}, 0},
		}
		for _, tc := range tests {
			got, err := l.List(ctx, tc.f)
			if err != nil || len(got) != tc.want {
				t.Errorf("%s: %d records, %v; want %d", tc.name, len(got), err, tc.want)
			}
		}
		first, _ := l.List(ctx, audit.Filter{Limit: 2})
		rest, _ := l.List(ctx, audit.Filter{AfterSeq: first[1].Seq})
		if len(rest) != 2 || rest[0].Seq <= first[1].Seq {
			t.Errorf("paging after seq %d: %+v", first[1].Seq, rest)
		}
	})
}

func TestHostileInputIsStoredCleanAndVerifies(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		l := audit.NewLog(d)
		e, err := l.Append(ctx, audit.Event{Action: audit.ActionLogin, Result: audit.ResultFailure,
			UserAgent: strings.Repeat("A", 10000), Reason: "bad \xff\xfe utf-8", Details: map[string]string{}})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := l.List(ctx, audit.Filter{})
		if len(got[0].UserAgent) > 512 || strings.Contains(got[0].Reason, "\xff") || got[0].Hash != e.Hash {
			t.Fatalf("stored %d-byte user agent, reason %q", len(got[0].UserAgent), got[0].Reason)
		}
		if res, _ := l.Verify(ctx); !res.OK {
			t.Fatalf("verify: %+v", res)
		}
	})
}
