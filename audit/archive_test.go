package audit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

// appendAt appends one record per time, in order, and seals them.
func appendAt(t *testing.T, l *audit.Log, times ...time.Time) {
	t.Helper()
	for i, at := range times {
		if _, err := l.Append(context.Background(), audit.Event{OccurredAt: at, Actor: "cli", Action: audit.ActionUserCreate,
			Result: audit.ResultSuccess, Details: map[string]string{"i": fmt.Sprint(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	seal(t, l)
}

// archive exports and commits the records before before, returning the file.
func archive(t *testing.T, l *audit.Log, before time.Time) (audit.Archive, []byte) {
	t.Helper()
	var buf bytes.Buffer
	a, err := l.ExportArchive(context.Background(), before, 1<<20, &buf)
	if err != nil {
		t.Fatal(err)
	}
	a.FileName, a.FileSHA256 = fmt.Sprintf("audit-%d-%d.jsonl", a.FirstPos, a.LastPos), "test"
	if err := l.CommitArchive(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	return a, buf.Bytes()
}

func verifyOK(t *testing.T, l *audit.Log) audit.VerifyResult {
	t.Helper()
	res, err := l.Verify(context.Background())
	if err != nil || !res.OK {
		t.Fatalf("verify: %+v, %v", res, err)
	}
	return res
}

func TestArchiveKeepsTheChainVerifiable(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		l := audit.NewLog(d)
		t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		var times []time.Time
		for i := range 10 {
			times = append(times, t0.Add(time.Duration(i)*time.Hour))
		}
		appendAt(t, l, times...)

		a, file := archive(t, l, times[6])
		if a.Records != 6 || a.FirstPos != 1 || a.LastPos != 6 || strings.Count(string(file), "\n") != 6 {
			t.Fatalf("archive %+v with %d lines, want places 1..6", a, strings.Count(string(file), "\n"))
		}
		if got := len(listAll(t, ctx, l)); got != 5 { // 4 left and the archive's own record
			t.Fatalf("%d records left in the database, want 5", got)
		}
		seal(t, l)
		if res := verifyOK(t, l); res.Checked != 5 {
			t.Fatalf("verify checked %d records, want 5", res.Checked)
		}
		if res, err := audit.VerifyArchive(bytes.NewReader(file), a, audit.GenesisHash); err != nil || !res.OK || res.Checked != 6 {
			t.Fatalf("verify archive: %+v, %v", res, err)
		}

		// Archive everything: new records then chain on from the archive.
		b, file2 := archive(t, l, time.Now().Add(time.Hour))
		if b.FirstPos != a.LastPos+1 || len(listAll(t, ctx, l)) != 1 {
			t.Fatalf("second archive %+v, %d records left", b, len(listAll(t, ctx, l)))
		}
		if res, err := audit.VerifyArchive(bytes.NewReader(file2), b, a.LastHash); err != nil || !res.OK {
			t.Fatalf("verify second archive: %+v, %v", res, err)
		}
		appendAt(t, l, time.Now())
		verifyOK(t, l)
		list, err := l.Archives(ctx)
		if err != nil || len(list) != 2 || list[0].ID != a.ID || list[1].LastHash != b.LastHash {
			t.Fatalf("archives %+v, %v", list, err)
		}
	})
}

func TestArchiveFileTamperingIsFound(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		l := audit.NewLog(d)
		t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		appendAt(t, l, t0, t0.Add(time.Minute), t0.Add(2*time.Minute))
		a, file := archive(t, l, t0.Add(time.Hour))
		lines := strings.SplitAfter(string(file), "\n")
		tests := []struct {
			name, file, want string
		}{
			{"edited record", strings.Replace(string(file), `"actor":"cli"`, `"actor":"someone"`, 1), "edited"},
			{"removed record", lines[0] + lines[2], "deleted or edited"},
			{"cut off at the end", lines[0] + lines[1], "removed from its end"},
			{"not JSON", lines[0] + "garbage\n", "not a record"},
		}
		for _, tc := range tests {
			res, err := audit.VerifyArchive(strings.NewReader(tc.file), a, audit.GenesisHash)
			if err != nil || res.OK || !strings.Contains(res.Reason, tc.want) {
				t.Errorf("%s: %+v, %v; want a reason with %q", tc.name, res, err, tc.want)
			}
		}
	})
}

func TestArchiveRefusesABrokenChainAndAStaleExport(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		l := audit.NewLog(d)
		t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		appendAt(t, l, t0, t0.Add(time.Minute), t0.Add(2*time.Minute))

		// Two archivers export the same records; only the first may commit.
		var one, two bytes.Buffer
		a1, err := l.ExportArchive(ctx, t0.Add(time.Hour), 100, &one)
		if err != nil {
			t.Fatal(err)
		}
		a2, err := l.ExportArchive(ctx, t0.Add(time.Hour), 100, &two)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.CommitArchive(ctx, a1); err != nil {
			t.Fatal(err)
		}
		if err := l.CommitArchive(ctx, a2); !errors.Is(err, audit.ErrArchiveMoved) {
			t.Fatalf("stale export committed: %v, want ErrArchiveMoved", err)
		}
		if list, _ := l.Archives(ctx); len(list) != 1 {
			t.Fatalf("%d archives recorded, want 1", len(list))
		}

		appendAt(t, l, t0.Add(3*time.Minute), t0.Add(4*time.Minute))
		if _, err := d.Exec(ctx, `UPDATE audit_events SET actor = 'forged' WHERE action = ?`, audit.ActionUserCreate); err != nil {
			t.Fatal(err)
		}
		before := len(listAll(t, ctx, l))
		var buf bytes.Buffer
		if _, err := l.ExportArchive(ctx, time.Now().Add(time.Hour), 100, &buf); !errors.Is(err, audit.ErrChainBroken) {
			t.Fatalf("exporting a broken chain: %v, want ErrChainBroken", err)
		}
		if after := len(listAll(t, ctx, l)); after != before {
			t.Fatalf("records went from %d to %d after a refused export", before, after)
		}
	})
}
