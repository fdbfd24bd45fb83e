package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"

	"github.com/govsso/sso/db"
)

// Retention moves the oldest sealed records out of the database into
// JSON-lines files, one record per line as Event encodes it. The chain is
// not rehashed: the database keeps, per file, the place and hash of its last
// record, so that what stays in audit_events verifies from there, and each
// file verifies on its own and against that row.

// Archive describes one file of records moved out of the database.
type Archive struct {
	ID         string    `json:"id"`
	FirstPos   int64     `json:"first_pos"`
	LastPos    int64     `json:"last_pos"`
	LastHash   string    `json:"last_hash"`
	Records    int64     `json:"records"`
	FileName   string    `json:"file_name"`
	FileSHA256 string    `json:"file_sha256"`
	Before     time.Time `json:"before"`
	ArchivedAt time.Time `json:"archived_at"`
}

// Archive errors, checked with errors.Is.
var (
	// ErrChainBroken means the records to archive do not verify: they are
	// never moved out, so that the evidence stays where it was found.
	ErrChainBroken = errors.New("audit chain broken")
	// ErrArchiveMoved means another archiver moved the start of the chain
	// since the export; the exported file must be thrown away.
	ErrArchiveMoved = errors.New("the start of the audit chain moved during archiving")
)

// archiveHead is the place and hash the records in the database continue
// from: the last archive's, or 0 and GenesisHash.
func (l *Log) archiveHead(ctx context.Context) (int64, string, error) {
	var pos int64
	var h string
	err := l.d.Err(l.d.QueryRow(ctx, `SELECT last_pos, last_hash FROM audit_archives ORDER BY last_pos DESC LIMIT 1`).Scan(&pos, &h))
	if errors.Is(err, db.ErrNotFound) {
		return 0, GenesisHash, nil
	}
	return pos, h, err
}

// ExportArchive writes to w, as JSON lines, the sealed records from the
// start of the chain onwards that occurred before before, at most max of
// them, stopping at the first younger one. It checks their chain as it goes
// (ErrChainBroken names the record) and returns the Archive to commit with
// CommitArchive once w is safely stored; Records is 0 when none is old
// enough. It changes nothing in the database.
func (l *Log) ExportArchive(ctx context.Context, before time.Time, max int, w io.Writer) (Archive, error) {
	a := Archive{ID: uuid.Must(uuid.NewV7()).String(), Before: before.UTC()}
	prevPos, prevHash, err := l.archiveHead(ctx)
	if err != nil {
		return a, fmt.Errorf("audit archive: %w", err)
	}
	prevDesc := describePrev(prevPos, 0)
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for a.Records < int64(max) {
		page, err := l.query(ctx, `SELECT `+eventColumns+` FROM audit_events WHERE chain_pos > ? ORDER BY chain_pos LIMIT ?`,
			prevPos, min(l.pageSize, max-int(a.Records)))
		if err != nil {
			return a, fmt.Errorf("audit archive after place %d: %w", prevPos, err)
		}
		for _, r := range page {
			if !r.OccurredAt.Before(before) {
				return a, flush(bw, a)
			}
			if reason := check(r, prevHash, prevDesc); reason != "" {
				return a, fmt.Errorf("%w: %s", ErrChainBroken, reason)
			}
			if r.ChainPos != prevPos+1 {
				return a, fmt.Errorf("%w: record %d is at place %d, not %d", ErrChainBroken, r.Seq, r.ChainPos, prevPos+1)
			}
			e, _ := r.event() // check decoded it already
			if err := enc.Encode(e); err != nil {
				return a, fmt.Errorf("audit archive: write: %w", err)
			}
			if a.Records == 0 {
				a.FirstPos = r.ChainPos
			}
			a.Records++
			a.LastPos, a.LastHash = r.ChainPos, r.Hash
			prevPos, prevHash, prevDesc = r.ChainPos, r.Hash, describePrev(r.ChainPos, r.Seq)
		}
		if len(page) == 0 {
			break
		}
	}
	return a, flush(bw, a)
}

func flush(bw *bufio.Writer, a Archive) error {
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("audit archive %d..%d: write: %w", a.FirstPos, a.LastPos, err)
	}
	return nil
}

// CommitArchive records a (with its FileName and FileSHA256 filled in) and
// deletes its records from the database, in one transaction that holds the
// chain's lock; the archive itself is audited. If another archiver moved the
// chain's start meanwhile, it changes nothing and returns ErrArchiveMoved.
func (l *Log) CommitArchive(ctx context.Context, a Archive) error {
	if a.Records == 0 {
		return nil
	}
	return l.d.InTx(ctx, func(ctx context.Context) error {
		if err := l.lockChain(ctx); err != nil {
			return err
		}
		head, _, err := l.archiveHead(ctx)
		if err != nil {
			return err
		}
		if head != a.FirstPos-1 {
			return fmt.Errorf("audit archive %d..%d: %w", a.FirstPos, a.LastPos, ErrArchiveMoved)
		}
		a.ArchivedAt = time.Now().UTC().Truncate(time.Microsecond)
		if _, err := l.d.Exec(ctx, `INSERT INTO audit_archives (id, first_pos, last_pos, last_hash, records, file_name, file_sha256, before_time, archived_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, a.ID, a.FirstPos, a.LastPos, a.LastHash, a.Records, a.FileName, a.FileSHA256, a.Before, a.ArchivedAt); err != nil {
			return fmt.Errorf("audit archive %d..%d: %w", a.FirstPos, a.LastPos, err)
		}
		res, err := l.d.Exec(ctx, `DELETE FROM audit_events WHERE chain_pos >= ? AND chain_pos <= ?`, a.FirstPos, a.LastPos)
		if err != nil {
			return fmt.Errorf("audit archive %d..%d: delete: %w", a.FirstPos, a.LastPos, err)
		}
		if n, err := res.RowsAffected(); err != nil || n != a.Records {
			return fmt.Errorf("audit archive %d..%d: %w (deleted %d rows, exported %d)", a.FirstPos, a.LastPos, ErrArchiveMoved, n, a.Records)
		}
		_, err = l.Append(ctx, Event{Actor: "system", Action: ActionArchive, Result: ResultSuccess, Details: map[string]string{
			"first_pos": fmt.Sprint(a.FirstPos), "last_pos": fmt.Sprint(a.LastPos), "file": a.FileName, "sha256": a.FileSHA256,
		}})
		return err
	})
}

// Archives lists the archives, oldest first.
func (l *Log) Archives(ctx context.Context) ([]Archive, error) {
	rs, err := l.d.Query(ctx, `SELECT id, first_pos, last_pos, last_hash, records, file_name, file_sha256, before_time, archived_at
		FROM audit_archives ORDER BY last_pos`)
	if err != nil {
		return nil, fmt.Errorf("audit archives: %w", l.d.Err(err))
	}
	defer rs.Close()
	var out []Archive
	for rs.Next() {
		var a Archive
		if err := rs.Scan(&a.ID, &a.FirstPos, &a.LastPos, &a.LastHash, &a.Records, &a.FileName, &a.FileSHA256, &a.Before, &a.ArchivedAt); err != nil {
			return nil, fmt.Errorf("audit archives: %w", l.d.Err(err))
		}
		a.Before, a.ArchivedAt = a.Before.UTC(), a.ArchivedAt.UTC()
		out = append(out, a)
	}
	return out, l.d.Err(rs.Err())
}

// VerifyArchive walks an archive file's chain from the record at place
// a.FirstPos, whose prev_hash must be prevHash, and checks that it ends at
// a.LastPos with a.LastHash. Like Verify, a broken file is reported in the
// result and an error means the file could not be read.
func VerifyArchive(r io.Reader, a Archive, prevHash string) (VerifyResult, error) {
	var res VerifyResult
	prevPos, prevDesc := a.FirstPos-1, describePrev(a.FirstPos-1, 0)
	dec := json.NewDecoder(bufio.NewReader(r))
	for {
		var e Event
		err := dec.Decode(&e)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			res.Reason = fmt.Sprintf("after place %d: not a record: %v", prevPos, err)
			return res, nil
		}
		res.Checked++
		raw, _ := json.Marshal(e.Details)
		rw := row{Event: e, details: string(raw)}
		if reason := check(rw, prevHash, prevDesc); reason != "" || e.ChainPos != prevPos+1 {
			if reason == "" {
				reason = fmt.Sprintf("record %d is at place %d, not %d", e.Seq, e.ChainPos, prevPos+1)
			}
			res.BrokenSeq, res.Reason = e.Seq, reason
			return res, nil
		}
		prevPos, prevHash, prevDesc = e.ChainPos, e.Hash, describePrev(e.ChainPos, e.Seq)
	}
	if prevPos != a.LastPos || prevHash != a.LastHash {
		res.Reason = fmt.Sprintf("the file ends at place %d with hash %s; the database recorded place %d with hash %s (records were removed from its end)",
			prevPos, prevHash, a.LastPos, a.LastHash)
		return res, nil
	}
	res.OK, res.HeadHash = true, prevHash
	return res, nil
}
