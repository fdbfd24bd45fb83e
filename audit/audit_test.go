package audit

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

// The canonical encoding is what every stored hash was computed over: if it
// changes, every existing record fails verification. This pins it.
func TestCanonicalEncodingIsPinned(t *testing.T) {
	e := Event{
		Seq: 42, Hash: "not hashed",
		PrevHash:   GenesisHash,
		ID:         "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
		OccurredAt: time.Date(2025, 1, 2, 3, 4, 5, 600000000, time.FixedZone("CST", 8*3600)),
		Actor:      "u-1", Subject: "u-2", ClientID: "tax", IP: "203.0.113.7", UserAgent: "Mozilla/5.0 <x>",
		Action: ActionLogin, Result: ResultFailure, Reason: "bad_password",
		Details: map[string]string{"method": "pwd", "identifier_type": "username"},
	}
	const wantBytes = `{"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000",` +
		`"id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","occurred_at":"2025-01-01T19:04:05.600000Z",` +
		`"actor":"u-1","subject":"u-2","client_id":"tax","ip":"203.0.113.7","user_agent":"Mozilla/5.0 \u003cx\u003e",` +
		`"action":"auth.login","result":"failure","reason":"bad_password",` +
		`"details":{"identifier_type":"username","method":"pwd"}}`
	if got := string(canonical(e)); got != wantBytes {
		t.Errorf("canonical encoding changed:\n got %s\nwant %s", got, wantBytes)
	}
	const wantHash = "8e17180a2ea69ab15d5b4629cab23bb0cd95851c3a802334ae16de9554be3abd" // cross-checked with OpenSSL's SM3
	if got := hashOf(e); got != wantHash {
		t.Errorf("hash %s, want %s", got, wantHash)
	}
}

// Moving text from one field to the next must change the hash; a naive
// concatenation would not notice.
func TestCanonicalEncodingIsUnambiguous(t *testing.T) {
	base := Event{PrevHash: GenesisHash, ID: "id", Action: ActionLogin, Result: ResultSuccess}
	variants := map[string]func(*Event){
		"base":                  func(*Event) {},
		"actor ab":              func(e *Event) { e.Actor = "ab" },
		"actor a, subject b":    func(e *Event) { e.Actor, e.Subject = "a", "b" },
		"subject ab":            func(e *Event) { e.Subject = "ab" },
		"actor with a quote":    func(e *Event) { e.Actor = `a","subject":"b` },
		"details a=b":           func(e *Event) { e.Details = map[string]string{"a": "b"} },
		"details a=, b=":        func(e *Event) { e.Details = map[string]string{"a": "", "b": ""} },
		"details a=b in reason": func(e *Event) { e.Reason = `a=b` },
		"one microsecond later": func(e *Event) { e.OccurredAt = e.OccurredAt.Add(time.Microsecond) },
	}
	seen := map[string]string{}
	for name, change := range variants {
		e := base
		change(&e)
		h := hashOf(e)
		if other, dup := seen[h]; dup {
			t.Errorf("%q and %q hash alike", name, other)
		}
		seen[h] = name
	}
}

// An attacker who edits a record and recomputes its hash is caught at the
// next record, whose prev_hash no longer matches; the walk crosses page
// boundaries to get there.
func TestVerifyCatchesARehashedEditAcrossPages(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		l := NewLog(d)
		l.pageSize = 3
		var ev []Event
		for i := range 10 {
			e, err := l.Append(ctx, Event{Action: ActionLogin, Result: ResultSuccess, Reason: fmt.Sprint(i)})
			if err != nil {
				t.Fatal(err)
			}
			ev = append(ev, e)
		}
		if _, err := l.Seal(ctx); err != nil {
			t.Fatal(err)
		}
		sealed, err := l.List(ctx, Filter{})
		if err != nil {
			t.Fatal(err)
		}
		ev = sealed
		if res, err := l.Verify(ctx); err != nil || !res.OK || res.Checked != 10 {
			t.Fatalf("intact chain: %+v %v", res, err)
		}
		forged := ev[6]
		forged.Reason = "nothing happened"
		if _, err := d.Exec(ctx, `UPDATE audit_events SET reason = ?, hash = ? WHERE seq = ?`,
			forged.Reason, hashOf(forged), forged.Seq); err != nil {
			t.Fatal(err)
		}
		res, err := l.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if res.OK || res.BrokenSeq != ev[7].Seq || res.Checked != 8 ||
			!strings.Contains(res.Reason, fmt.Sprintf("record %d's hash", ev[6].Seq)) {
			t.Fatalf("got %+v, want broken at %d", res, ev[7].Seq)
		}
	})
}

func TestClip(t *testing.T) {
	tests := []struct {
		name, in string
		n        int
		want     string
	}{
		{"short", "abc", 10, "abc"},
		{"cut", "abcdef", 3, "abc"},
		{"cut before a split character", "ab界", 4, "ab"},
		{"invalid UTF-8", "a\xff\xfeb", 10, "a\uFFFDb"},
		{"NUL", "a\x00b", 10, "a\uFFFDb"},
		{"escape and carriage return", "\x1b[2J\r", 10, "\uFFFD[2J\uFFFD"},
		{"tab and newline kept", "a\tb\nc", 10, "a\tb\nc"},
		{"C1 control", "a\u0085b", 10, "a\uFFFDb"},
		{"zero", "abc", 0, ""},
	}
	for _, tc := range tests {
		if got := clip(tc.in, tc.n); got != tc.want {
			t.Errorf("%s: clip(%q, %d) = %q, want %q", tc.name, tc.in, tc.n, got, tc.want)
		}
	}
}
