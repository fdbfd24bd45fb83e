package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/config"
)

// maxArchiveRecords is how many records one archive file holds at most.
const maxArchiveRecords = 1_000_000

// archiveDir is where audit archive files go.
func archiveDir(cfg *config.Config) string {
	if cfg.AuditArchiveDir != "" {
		return cfg.AuditArchiveDir
	}
	return filepath.Join(cfg.DataDir, "audit-archive")
}

// archiveAudit moves the sealed records that occurred before before into
// new files in dir, one per max records, and returns what it moved. Each
// file is written under a temporary name, synced and renamed before the
// records leave the database; if the database refuses, the file goes.
func archiveAudit(ctx context.Context, l *audit.Log, before time.Time, dir string, max int) ([]audit.Archive, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit archive directory: %w", err)
	}
	var done []audit.Archive
	for {
		a, err := archiveOnce(ctx, l, before, dir, max)
		if err != nil || a.Records == 0 {
			return done, err
		}
		done = append(done, a)
	}
}

func archiveOnce(ctx context.Context, l *audit.Log, before time.Time, dir string, max int) (audit.Archive, error) {
	tmp, err := os.CreateTemp(dir, ".audit-*.jsonl.tmp") // mode 0600
	if err != nil {
		return audit.Archive{}, fmt.Errorf("audit archive: %w", err)
	}
	defer os.Remove(tmp.Name()) // harmless once renamed
	h := sha256.New()
	a, err := l.ExportArchive(ctx, before, max, io.MultiWriter(tmp, h))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil || a.Records == 0 {
		return a, err
	}
	a.FileName = fmt.Sprintf("audit-%012d-%012d.jsonl", a.FirstPos, a.LastPos)
	a.FileSHA256 = hex.EncodeToString(h.Sum(nil))
	final := filepath.Join(dir, a.FileName)
	if _, err := os.Stat(final); err == nil {
		return a, fmt.Errorf("audit archive: %s already exists", final)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return a, fmt.Errorf("audit archive: %w", err)
	}
	if d, err := os.Open(dir); err == nil { // make the rename durable
		d.Sync()
		d.Close()
	}
	if err := l.CommitArchive(ctx, a); err != nil {
		os.Remove(final)
		return a, err
	}
	return a, nil
}

// verifyArchives checks every archive the database lists against its file
// in dir: the file's hash, and its chain from the archive before it.
func verifyArchives(ctx context.Context, l *audit.Log, dir string) (int, error) {
	list, err := l.Archives(ctx)
	if err != nil {
		return 0, err
	}
	prev := audit.GenesisHash
	for _, a := range list {
		path := filepath.Join(dir, a.FileName)
		b, err := os.ReadFile(path)
		if err != nil {
			return 0, fmt.Errorf("audit archive %s (places %d..%d): %w", path, a.FirstPos, a.LastPos, err)
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != a.FileSHA256 {
			return 0, fmt.Errorf("audit archive %s: its SHA-256 is not the one recorded when it was written (the file was changed)", path)
		}
		res, err := audit.VerifyArchive(bytes.NewReader(b), a, prev)
		if err != nil {
			return 0, err
		}
		if !res.OK {
			return 0, fmt.Errorf("audit archive %s broken: %s", path, res.Reason)
		}
		prev = a.LastHash
	}
	return len(list), nil
}

func runAuditArchive(ctx context.Context, e env, args []string) error {
	f := newFlags("audit archive", e)
	beforeFlag := f.String("before", "", "move records that occurred before this date (2006-01-02) or time (RFC 3339)")
	olderThan := f.Duration("older-than", 0, "move records older than this (e.g. 4320h); instead of --before")
	dirFlag := f.String("dir", "", "directory for the archive files (default: audit_archive_dir)")
	if err := f.parse(args); err != nil {
		return err
	}
	before, err := archiveCutoff(*beforeFlag, *olderThan)
	if err != nil {
		return err
	}
	a, err := openFromFlags(ctx, f, e, true)
	if err != nil {
		return err
	}
	defer a.close()
	dir := *dirFlag
	if dir == "" {
		dir = archiveDir(a.cfg)
	}
	if _, err := a.audit.Seal(ctx); err != nil {
		return err
	}
	done, err := archiveAudit(ctx, a.audit, before, dir, maxArchiveRecords)
	if err != nil {
		return err
	}
	return output(e.stdout, *f.json, done, []string{"FILE", "PLACES", "RECORDS", "SHA-256"}, func() [][]string {
		var rows [][]string
		for _, x := range done {
			rows = append(rows, []string{filepath.Join(dir, x.FileName), fmt.Sprintf("%d..%d", x.FirstPos, x.LastPos), fmt.Sprint(x.Records), x.FileSHA256})
		}
		return rows
	})
}

// archiveCutoff reads --before or --older-than; exactly one is needed.
func archiveCutoff(before string, olderThan time.Duration) (time.Time, error) {
	switch {
	case (before == "") == (olderThan == 0):
		return time.Time{}, usageError{msg: "give exactly one of --before DATE and --older-than DURATION"}
	case olderThan < 0:
		return time.Time{}, usageError{msg: "--older-than must be positive"}
	case olderThan > 0:
		return time.Now().Add(-olderThan), nil
	}
	for _, layout := range []string{time.DateOnly, time.RFC3339} {
		if t, err := time.ParseInLocation(layout, before, chinaTime); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usageError{msg: fmt.Sprintf("--before %q: want 2006-01-02 or an RFC 3339 time", before)}
}

// chinaTime is the zone a bare --before date is read in: the operators' own.
var chinaTime = time.FixedZone("CST", 8*3600)

// runAuditRetention archives, every interval, what is older than the
// retention, until ctx ends. Several nodes may run it: only one commit of
// the same records succeeds, the others throw their file away.
func runAuditRetention(ctx context.Context, l *audit.Log, retention time.Duration, dir string, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		done, err := archiveAudit(ctx, l, time.Now().Add(-retention), dir, maxArchiveRecords)
		switch {
		case errors.Is(err, audit.ErrArchiveMoved):
			log.Info("audit retention: another node archived first")
		case err != nil:
			log.Error("audit retention", "err", err)
		}
		for _, a := range done {
			log.Info("audit records archived", "file", a.FileName, "first_pos", a.FirstPos, "last_pos", a.LastPos, "records", a.Records)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
