package audit

import (
	"context"
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
	d *db.DB
}

// NewLog returns the audit log stored in d.
func NewLog(d *db.DB) *Log { return &Log{d: d} }

const eventColumns = `seq, id, occurred_at, actor, subject, client_id, ip, user_agent, action, result, reason, details, prev_hash, hash`

// Append records e in the context's transaction (or its own) and returns it
// as stored, with Seq, ID, time and hashes filled in. Appenders are
// serialized cluster-wide so that the chain has exactly one order: by an
// advisory lock on PostgreSQL, by the immediate write lock on SQLite.
func (l *Log) Append(ctx context.Context, e Event) (Event, error) {
	e = clean(e)
	if e.ID == "" {
		e.ID = uuid.Must(uuid.NewV7()).String()
	}
	if e.OccurredAt.IsZero() {
		e.OccurredAt = time.Now()
	}
	e.OccurredAt = e.OccurredAt.UTC().Truncate(time.Microsecond)
	details, err := json.Marshal(e.Details)
	if err != nil {
		return Event{}, err
	}
	if e.Details == nil {
		details = []byte("{}")
	}
	err = l.d.InTx(ctx, func(ctx context.Context) error {
		if l.d.Dialect() == db.Postgres {
			if _, err := l.d.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('sso.audit.' || current_schema()))`); err != nil {
				return err
			}
		}
		err := l.d.Err(l.d.QueryRow(ctx, `SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1`).Scan(&e.PrevHash))
		if errors.Is(err, db.ErrNotFound) {
			e.PrevHash = GenesisHash
		} else if err != nil {
			return err
		}
		e.Hash = hashOf(e)
		return l.d.Err(l.d.QueryRow(ctx, `INSERT INTO audit_events (id, occurred_at, actor, subject, client_id, ip, user_agent, action, result, reason, details, prev_hash, hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`,
			e.ID, e.OccurredAt, e.Actor, e.Subject, e.ClientID, e.IP, e.UserAgent, e.Action, e.Result, e.Reason, string(details), e.PrevHash, e.Hash).Scan(&e.Seq))
	})
	if err != nil {
		return Event{}, fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return e, nil
}

// Filter selects records; zero fields match everything.
type Filter struct {
	Actor, Subject, ClientID, Action, Result string
	Since, Until                             time.Time
	AfterSeq                                 int64
	Limit                                    int // default 100, at most 1000
}

// List returns the records matching f in the order they were written.
func (l *Log) List(ctx context.Context, f Filter) ([]Event, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		where = append(where, cond)
		args = append(args, v)
	}
	for _, c := range []struct {
		col, v string
	}{{"actor", f.Actor}, {"subject", f.Subject}, {"client_id", f.ClientID}, {"action", f.Action}, {"result", f.Result}} {
		if c.v != "" {
			add(c.col+" = ?", c.v)
		}
	}
	if !f.Since.IsZero() {
		add("occurred_at >= ?", f.Since.UTC())
	}
	if !f.Until.IsZero() {
		add("occurred_at < ?", f.Until.UTC())
	}
	add("seq > ?", f.AfterSeq)
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	args = append(args, limit)
	return l.query(ctx, `SELECT `+eventColumns+` FROM audit_events WHERE `+strings.Join(where, " AND ")+` ORDER BY seq LIMIT ?`, args...)
}

func (l *Log) query(ctx context.Context, q string, args ...any) ([]Event, error) {
	rows, err := l.d.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var details string
		if err := rows.Scan(&e.Seq, &e.ID, &e.OccurredAt, &e.Actor, &e.Subject, &e.ClientID, &e.IP, &e.UserAgent,
			&e.Action, &e.Result, &e.Reason, &details, &e.PrevHash, &e.Hash); err != nil {
			return nil, l.d.Err(err)
		}
		e.OccurredAt = e.OccurredAt.UTC()
		if details != "{}" && details != "" && details != "null" {
			if err := json.Unmarshal([]byte(details), &e.Details); err != nil {
				return nil, fmt.Errorf("audit record %d: details: %w", e.Seq, err)
			}
		}
		out = append(out, e)
	}
	return out, l.d.Err(rows.Err())
}

// VerifyResult is what a walk of the chain found.
type VerifyResult struct {
	Checked   int64  `json:"checked"`
	OK        bool   `json:"ok"`
	BrokenSeq int64  `json:"broken_seq,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// Verify walks the whole chain in order, a page at a time, and stops at the
// first record whose hash does not match its contents (it was edited) or
// whose prev_hash does not match the record before it (a record was deleted
// or edited before it).
func (l *Log) Verify(ctx context.Context) (VerifyResult, error) {
	var res VerifyResult
	prevHash, prevSeq := GenesisHash, int64(0)
	for {
		page, err := l.query(ctx, `SELECT `+eventColumns+` FROM audit_events WHERE seq > ? ORDER BY seq LIMIT 1000`, prevSeq)
		if err != nil {
			return res, err
		}
		for _, e := range page {
			res.Checked++
			if e.PrevHash != prevHash {
				res.BrokenSeq = e.Seq
				res.Reason = fmt.Sprintf("record %d: prev_hash does not match the hash of record %d (a record between them was deleted, or record %d was edited)", e.Seq, prevSeq, prevSeq)
				if prevSeq == 0 {
					res.Reason = fmt.Sprintf("record %d: prev_hash is not the genesis hash (earlier records were deleted)", e.Seq)
				}
				return res, nil
			}
			if hashOf(e) != e.Hash {
				res.BrokenSeq = e.Seq
				res.Reason = fmt.Sprintf("record %d: hash does not match its contents (edited)", e.Seq)
				return res, nil
			}
			prevHash, prevSeq = e.Hash, e.Seq
		}
		if len(page) < 1000 {
			res.OK = true
			return res, nil
		}
	}
}
