package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/govsso/sso/db"
)

// Log appends to and reads the audit_events table.
type Log struct {
	d        *db.DB
	pageSize int // records per query of Verify
}

// NewLog returns the audit log stored in d.
func NewLog(d *db.DB) *Log { return &Log{d: d, pageSize: 1000} }

const eventColumns = `seq, id, occurred_at, actor, subject, client_id, ip, user_agent, action, result, reason, details, chain_pos, prev_hash, hash`

// Append records e in the context's transaction (or its own) and returns it
// as stored, with Seq, ID and time filled in. Text fields are cleaned, not
// refused (see the package comment). Appending takes no lock: the record
// gets its place in the chain, and its hashes, when Seal next runs.
func (l *Log) Append(ctx context.Context, e Event) (Event, error) {
	e, err := prepare(e)
	if err != nil {
		return Event{}, fmt.Errorf("audit %s: %w", e.Action, err)
	}
	details := "{}"
	if e.Details != nil {
		b, err := json.Marshal(e.Details)
		if err != nil {
			return Event{}, fmt.Errorf("audit %s: details: %w", e.Action, err)
		}
		details = string(b)
	}
	err = l.d.Err(l.d.QueryRow(ctx, `INSERT INTO audit_events
		(id, occurred_at, actor, subject, client_id, ip, user_agent, action, result, reason, details)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`,
		e.ID, e.OccurredAt, e.Actor, e.Subject, e.ClientID, e.IP, e.UserAgent, e.Action, e.Result, e.Reason, details).Scan(&e.Seq))
	if err != nil {
		return Event{}, fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return e, nil
}

// sealBatch is how many records one Seal transaction chains; sealChunk is
// how many one UPDATE writes. One statement per record used to be a tenth
// of all statements a busy token endpoint sent to the database.
const (
	sealBatch = 500
	sealChunk = 100
)

// Seal chains every committed record that has no place yet, in the order
// of seq, and returns how many it sealed. A record whose transaction
// commits late simply gets a later place: chain order is sealing order, so
// no record is ever skipped. One sealer runs at a time cluster-wide.
func (l *Log) Seal(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := l.sealOnce(ctx)
		total += n
		if err != nil || n < sealBatch {
			return total, err
		}
	}
}

func (l *Log) sealOnce(ctx context.Context) (int, error) {
	n := 0
	err := l.d.InTx(ctx, func(ctx context.Context) error {
		n = 0
		if err := l.lockChain(ctx); err != nil {
			return err
		}
		pos, prev, err := l.chainHead(ctx)
		if err != nil {
			return err
		}
		pending, err := l.query(ctx, `SELECT `+eventColumns+` FROM audit_events WHERE chain_pos IS NULL ORDER BY seq LIMIT ?`, sealBatch)
		if err != nil {
			return err
		}
		sealed := make([]Event, 0, len(pending))
		for _, r := range pending {
			e, err := r.event()
			if err != nil {
				return err
			}
			pos++
			e.ChainPos, e.PrevHash = pos, prev
			e.Hash = hashOf(e)
			prev = e.Hash
			sealed = append(sealed, e)
		}
		for start := 0; start < len(sealed); start += sealChunk {
			if err := l.writeSeals(ctx, sealed[start:min(start+sealChunk, len(sealed))]); err != nil {
				return err
			}
		}
		n = len(sealed)
		return nil
	})
	return n, err
}

// writeSeals stores the places and hashes of events with one UPDATE. Every
// row must still be unsealed: the chain lock makes anything else a bug.
func (l *Log) writeSeals(ctx context.Context, events []Event) error {
	var q strings.Builder
	q.WriteString(`UPDATE audit_events SET chain_pos = v.column2, prev_hash = v.column3, hash = v.column4 FROM (VALUES `)
	args := make([]any, 0, 4*len(events))
	for i, e := range events {
		if i > 0 {
			q.WriteString(", ")
		}
		// Both databases name a VALUES list's columns column1, column2 ...;
		// the casts type them for PostgreSQL, which would otherwise read the
		// parameters as text.
		q.WriteString(`(CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS TEXT))`)
		args = append(args, e.Seq, e.ChainPos, e.PrevHash, e.Hash)
	}
	q.WriteString(`) AS v WHERE audit_events.seq = v.column1 AND audit_events.chain_pos IS NULL`)
	res, err := l.d.Exec(ctx, q.String(), args...)
	if err != nil {
		return fmt.Errorf("seal records %d-%d: %w", events[0].Seq, events[len(events)-1].Seq, err)
	}
	if got, err := res.RowsAffected(); err != nil || got != int64(len(events)) {
		return fmt.Errorf("seal records %d-%d: %d of %d rows updated (%v)", events[0].Seq, events[len(events)-1].Seq, got, len(events), err)
	}
	return nil
}

// RunSealer seals new records every interval until ctx ends, once per
// interval across the cluster (db.RunDue), and once more as it stops;
// onError hears of failures (the next pass retries).
func (l *Log) RunSealer(ctx context.Context, every time.Duration, onError func(error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if _, err := l.Seal(context.WithoutCancel(ctx)); err != nil && onError != nil {
				onError(err)
			}
			return
		case <-t.C:
			// With many nodes one seals per interval; the others' records
			// are sealed by it, since the chain is shared.
			_, err := l.d.RunDue(ctx, "audit.seal", every, func(ctx context.Context) error {
				_, err := l.Seal(ctx)
				return err
			})
			if err != nil && onError != nil && ctx.Err() == nil {
				onError(err)
			}
		}
	}
}

// prepare cleans e and fills its ID and time. The time is cut to the
// microseconds the databases keep, so the hash recomputes after a round trip.
func prepare(e Event) (Event, error) {
	e = clean(e)
	e.Seq, e.ChainPos, e.PrevHash, e.Hash = 0, 0, "", ""
	if e.ID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return e, fmt.Errorf("new id: %w", err)
		}
		e.ID = id.String()
	}
	if e.OccurredAt.IsZero() {
		e.OccurredAt = time.Now()
	}
	e.OccurredAt = e.OccurredAt.UTC().Truncate(time.Microsecond)
	return e, nil
}

// lockChain makes this transaction the only sealer until it ends. The lock
// is per schema so that deployments (and test runs) sharing one PostgreSQL
// server in different schemas do not wait for each other. SQLite's
// immediate transactions already hold the database's write lock.
func (l *Log) lockChain(ctx context.Context) error {
	if l.d.Dialect() != db.Postgres {
		return nil
	}
	_, err := l.d.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('sso.audit.' || current_schema()))`)
	return err
}

// chainHead is the last sealed place and its hash (the last archived one
// when the table holds none; 0 and the genesis hash for an empty chain).
func (l *Log) chainHead(ctx context.Context) (int64, string, error) {
	var pos int64
	var h string
	err := l.d.Err(l.d.QueryRow(ctx, `SELECT chain_pos, hash FROM audit_events WHERE chain_pos IS NOT NULL ORDER BY chain_pos DESC LIMIT 1`).Scan(&pos, &h))
	if errors.Is(err, db.ErrNotFound) {
		return l.archiveHead(ctx) // everything sealed was archived, or nothing was sealed yet
	}
	return pos, h, err
}

// Filter selects records; zero fields match everything.
type Filter struct {
	Actor, Subject, ClientID, Action, Result string
	// Since is inclusive, Until exclusive.
	Since, Until time.Time
	// AfterSeq pages on: pass the Seq of the last record of the previous page.
	AfterSeq int64
	// Limit defaults to 100 and is capped at 1000.
	Limit int
}

// Limits of List.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// List returns the records matching f in the order they were written.
func (l *Log) List(ctx context.Context, f Filter) ([]Event, error) {
	where := []string{"seq > ?"}
	args := []any{f.AfterSeq}
	for _, c := range []struct{ cond, v string }{
		{"actor = ?", f.Actor}, {"subject = ?", f.Subject}, {"client_id = ?", f.ClientID},
		{"action = ?", f.Action}, {"result = ?", f.Result},
	} {
		if c.v != "" {
			where, args = append(where, c.cond), append(args, c.v)
		}
	}
	if !f.Since.IsZero() {
		where, args = append(where, "occurred_at >= ?"), append(args, f.Since.UTC())
	}
	if !f.Until.IsZero() {
		where, args = append(where, "occurred_at < ?"), append(args, f.Until.UTC())
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	args = append(args, min(limit, MaxListLimit))
	rows, err := l.query(ctx, `SELECT `+eventColumns+` FROM audit_events WHERE `+strings.Join(where, " AND ")+` ORDER BY seq LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("audit list: %w", err)
	}
	out := make([]Event, 0, len(rows))
	for _, r := range rows {
		e, err := r.event()
		if err != nil {
			return nil, fmt.Errorf("audit list: %w", err)
		}
		out = append(out, e)
	}
	return out, nil
}

// row is a record as stored, details still encoded, so that Verify can
// report a record whose details were garbled instead of failing on it.
type row struct {
	Event
	details string
}

// event decodes the details of r.
func (r row) event() (Event, error) {
	e := r.Event
	if r.details != "" && r.details != "{}" {
		if err := json.Unmarshal([]byte(r.details), &e.Details); err != nil {
			return Event{}, fmt.Errorf("record %d: details: %w", e.Seq, err)
		}
	}
	if len(e.Details) == 0 {
		e.Details = nil
	}
	return e, nil
}

func (l *Log) query(ctx context.Context, q string, args ...any) ([]row, error) {
	rs, err := l.d.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		var r row
		var pos sql.NullInt64
		var prev, hash sql.NullString
		if err := rs.Scan(&r.Seq, &r.ID, &r.OccurredAt, &r.Actor, &r.Subject, &r.ClientID, &r.IP, &r.UserAgent,
			&r.Action, &r.Result, &r.Reason, &r.details, &pos, &prev, &hash); err != nil {
			return nil, l.d.Err(err)
		}
		r.OccurredAt = r.OccurredAt.UTC()
		r.ChainPos, r.PrevHash, r.Hash = pos.Int64, prev.String, hash.String
		out = append(out, r)
	}
	return out, l.d.Err(rs.Err())
}

// VerifyResult is what a walk of the chain found.
type VerifyResult struct {
	// Checked counts the sealed records read, the broken one included.
	Checked int64 `json:"checked"`
	// OK is true when every sealed record checked out.
	OK bool `json:"ok"`
	// BrokenSeq is the seq of the first broken record, when not OK.
	BrokenSeq int64 `json:"broken_seq,omitempty"`
	// Reason says what is wrong with it, for the operator.
	Reason string `json:"reason,omitempty"`
	// Pending counts records not sealed yet (the last second or so of
	// activity); Seal before Verify to include them.
	Pending int64 `json:"pending"`
	// HeadHash is the hash of the last sealed record: write it down
	// elsewhere to detect later truncation of the log.
	HeadHash string `json:"head_hash,omitempty"`
}

// Verify walks the sealed chain in order, a page at a time, and stops at
// the first record that does not check out. It reports a broken chain in
// the result; an error means the walk itself failed. It writes nothing.
func (l *Log) Verify(ctx context.Context) (VerifyResult, error) {
	var res VerifyResult
	prevPos, prevHash, err := l.archiveHead(ctx) // records moved out by retention end here
	if err != nil {
		return res, fmt.Errorf("audit verify: %w", err)
	}
	prevDesc := describePrev(prevPos, 0)
	for {
		page, err := l.query(ctx, `SELECT `+eventColumns+` FROM audit_events WHERE chain_pos > ? ORDER BY chain_pos LIMIT ?`, prevPos, l.pageSize)
		if err != nil {
			return res, fmt.Errorf("audit verify after place %d: %w", prevPos, err)
		}
		for _, r := range page {
			res.Checked++
			if reason := check(r, prevHash, prevDesc); reason != "" {
				res.BrokenSeq, res.Reason = r.Seq, reason
				return res, nil
			}
			if r.ChainPos != prevPos+1 {
				res.BrokenSeq = r.Seq
				res.Reason = fmt.Sprintf("record %d: its place in the chain is %d, not %d (records were deleted and the chain rehashed)", r.Seq, r.ChainPos, prevPos+1)
				return res, nil
			}
			prevHash, prevPos, prevDesc = r.Hash, r.ChainPos, describePrev(r.ChainPos, r.Seq)
		}
		if len(page) < l.pageSize {
			break
		}
	}
	res.OK, res.HeadHash = true, prevHash
	if err := l.d.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE chain_pos IS NULL`).Scan(&res.Pending); err != nil {
		return res, l.d.Err(err)
	}
	return res, nil
}

// check says what is wrong with record r, given the hash of the record
// before it and how to name that one (describePrev), or "" if nothing is.
func check(r row, prevHash, prevDesc string) string {
	if r.PrevHash != prevHash {
		return fmt.Sprintf("record %d: prev_hash does not match %s (a record before it was deleted or edited)", r.Seq, prevDesc)
	}
	e, err := r.event()
	if err != nil {
		return fmt.Sprintf("record %d: details are not valid JSON (edited)", r.Seq)
	}
	if hashOf(e) != r.Hash {
		return fmt.Sprintf("record %d: hash does not match its contents (edited)", r.Seq)
	}
	return ""
}

// describePrev names, for a broken-chain message, the record at place pos
// (seq 0: known only from the archive table).
func describePrev(pos, seq int64) string {
	switch {
	case pos == 0:
		return "the genesis hash"
	case seq == 0:
		return fmt.Sprintf("the hash of the last archived record (place %d)", pos)
	}
	return fmt.Sprintf("record %d's hash", seq)
}

// AppendBatch records events in the context's transaction (or its own)
// with one multi-row INSERT per chunk, for bulk operations such as a user
// import where one statement per record would dominate the cost. Like
// Append, it takes no lock; Seal chains the records later.
func (l *Log) AppendBatch(ctx context.Context, events []Event) error {
	const chunk = 500 // 11 parameters a row stays far below both databases' limits
	return l.d.InTx(ctx, func(ctx context.Context) error {
		for start := 0; start < len(events); start += chunk {
			part := events[start:min(start+chunk, len(events))]
			var q strings.Builder
			q.WriteString(`INSERT INTO audit_events (id, occurred_at, actor, subject, client_id, ip, user_agent, action, result, reason, details) VALUES `)
			args := make([]any, 0, len(part)*11)
			for i, e := range part {
				e, err := prepare(e)
				if err != nil {
					return fmt.Errorf("audit %s: %w", e.Action, err)
				}
				details := "{}"
				if e.Details != nil {
					b, err := json.Marshal(e.Details)
					if err != nil {
						return fmt.Errorf("audit %s: details: %w", e.Action, err)
					}
					details = string(b)
				}
				if i > 0 {
					q.WriteString(", ")
				}
				q.WriteString(`(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
				args = append(args, e.ID, e.OccurredAt, e.Actor, e.Subject, e.ClientID, e.IP, e.UserAgent, e.Action, e.Result, e.Reason, details)
			}
			if _, err := l.d.Exec(ctx, q.String(), args...); err != nil {
				return fmt.Errorf("audit batch of %d: %w", len(part), err)
			}
		}
		return nil
	})
}
