package users

import (
	"bufio"
	"cmp"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
)

// ImportColumns are the columns an import file may have, in the order the
// documentation lists them. The header row names the columns in any order;
// username and kind are required, the others may be left out.
var ImportColumns = []string{"username", "display_name", "phone", "email", "id_number", "kind", "org_unit_code", "role"}

// requiredImportColumns must appear in every header.
var requiredImportColumns = []string{"username", "kind"}

// importRoles are the roles a row may give its person in its org unit.
var importRoles = map[string]bool{"member": true, "admin": true, "auditor": true, "client_manager": true}

// ActionUserImport is the audit action summing up one import.
const ActionUserImport = "user.import"

// DefaultImportBatch is how many rows one transaction writes.
const DefaultImportBatch = 500

// ErrImportFile means the file as a whole cannot be imported: no header,
// an unknown or repeated column, an unknown encoding. Nothing was written.
var ErrImportFile = errors.New("import file refused")

// ImportFileError names what is wrong with the file as a whole.
type ImportFileError struct {
	Column string // the offending header column, if any
	Reason string
}

func (e *ImportFileError) Error() string {
	if e.Column != "" {
		return fmt.Sprintf("%v: column %q: %s", ErrImportFile, e.Column, e.Reason)
	}
	return fmt.Sprintf("%v: %s", ErrImportFile, e.Reason)
}

// Unwrap lets callers match ErrImportFile.
func (e *ImportFileError) Unwrap() error { return ErrImportFile }

// ImportOptions says how to read the file and what to write.
type ImportOptions struct {
	// Encoding is "utf8" (the default; a byte-order mark is skipped) or "gbk".
	Encoding string
	// DryRun validates every row, against the database too, and writes nothing.
	DryRun bool
	// AllOrNothing writes everything in one transaction, and nothing at all
	// when any row is rejected.
	AllOrNothing bool
	// BatchSize is how many rows one transaction writes (DefaultImportBatch if 0).
	BatchSize int
	// Allow says whether the caller may create accounts in unit (nil for a
	// row without org_unit_code); nil allows everything (the CLI).
	Allow func(unit *OrgUnit) bool
	// AllowRole says whether the caller may give role ("member" when the
	// row names none) in unit; nil allows every role (the CLI).
	AllowRole func(unit *OrgUnit, role string) bool
	// Audit is the template of the records written: Actor, ClientID, IP
	// and UserAgent are taken from it.
	Audit audit.Event
	// OnCreated, if set, runs in each batch's transaction with the
	// accounts it created (change events are written there).
	OnCreated func(ctx context.Context, created []ImportedUser) error
}

// ImportedUser is an account an import created, with its org unit (nil
// for none) and role there.
type ImportedUser struct {
	User *User
	Unit *OrgUnit
	Role string
}

// RowError is one reason a row was rejected. Line is the file's line
// number where the row starts (the header is line 1); Column is empty when
// the row as a whole is wrong.
type RowError struct {
	Line   int    `json:"line"`
	Column string `json:"column,omitempty"`
	Reason string `json:"reason"`
}

// ImportReport tells what an import did.
type ImportReport struct {
	DryRun       bool `json:"dry_run"`
	AllOrNothing bool `json:"all_or_nothing"`
	// Rows is the number of data rows read; Valid of those passed every
	// check; Imported were written (0 on a dry run or a refused
	// all-or-nothing import); Rejected had at least one error.
	Rows     int `json:"rows"`
	Valid    int `json:"valid"`
	Imported int `json:"imported"`
	Rejected int `json:"rejected"`
	// Aborted is set when reading stopped before the end of the file
	// (broken quoting, an unreadable stream): the rows after Errors' last
	// line were not read.
	Aborted bool       `json:"aborted"`
	Errors  []RowError `json:"errors"`
	// UserIDs are the ids of the accounts created, in file order; left out
	// of JSON, where a large import would bloat the answer.
	UserIDs []string `json:"-"`
}

// Importer creates accounts from a CSV file.
type Importer struct {
	d     *db.DB
	users *SQLStore
	orgs  *OrgUnits
	audit *audit.Log
}

// NewImporter returns an importer writing through the given stores.
func NewImporter(d *db.DB, u *SQLStore, o *OrgUnits, a *audit.Log) *Importer {
	return &Importer{d: d, users: u, orgs: o, audit: a}
}

// importRow is one valid row waiting for its batch.
type importRow struct {
	line   int
	user   *User
	unit   *OrgUnit
	role   string
	phone  any // blind indexes, nil when empty
	idNum  any
	phEnc  []byte
	idEnc  []byte
	reject bool
}

// importRun is the state of one Import call.
type importRun struct {
	im      *Importer
	opts    ImportOptions
	rep     *ImportReport
	cols    map[string]int
	units   map[string]*OrgUnit // by code; nil value: unknown
	seen    map[string]int      // "username:x", "phone:<index>", "id:<index>" → line
	pending []*importRow
	// failed is set in all-or-nothing mode once any row is rejected:
	// nothing more is written and the transaction is rolled back.
	failed bool
}

// errRollback ends an all-or-nothing transaction that must write nothing.
var errRollback = errors.New("import rolled back")

// Import reads a CSV file with a header row and creates one account per
// row. Passwords are never imported: the accounts have none until the
// person sets one (password reset by SMS or a link). It returns the report
// and, when the import could not run at all or failed part-way for a
// reason outside the file, an error; rows already written in earlier
// batches then stay (except in all-or-nothing mode), as the report says.
func (im *Importer) Import(ctx context.Context, r io.Reader, opts ImportOptions) (*ImportReport, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultImportBatch
	}
	rep := &ImportReport{DryRun: opts.DryRun, AllOrNothing: opts.AllOrNothing, Errors: []RowError{}}
	in, err := decodeImport(r, opts.Encoding)
	if err != nil {
		return rep, err
	}
	cr := csv.NewReader(in)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return rep, &ImportFileError{Reason: "the file is empty; it needs a header row naming the columns"}
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return rep, &ImportFileError{Reason: "the header row cannot be read: " + pe.Err.Error()}
		}
		return rep, fmt.Errorf("read import header: %w", err)
	}
	run := &importRun{im: im, opts: opts, rep: rep, units: map[string]*OrgUnit{}, seen: map[string]int{}}
	if err := run.readHeader(header, opts.Encoding); err != nil {
		return rep, err
	}
	cr.FieldsPerRecord = len(header)
	if !opts.AllOrNothing || opts.DryRun {
		return rep, run.rows(ctx, cr)
	}
	err = im.d.InTx(ctx, func(ctx context.Context) error {
		if err := run.rows(ctx, cr); err != nil {
			return err
		}
		if run.failed {
			return errRollback
		}
		return nil
	})
	if errors.Is(err, errRollback) {
		rep.Imported, rep.UserIDs = 0, nil
		// The refusal itself is recorded, outside the rolled-back transaction.
		return rep, im.audit.AppendBatch(ctx, []audit.Event{run.summary(audit.ResultFailure, 0)})
	}
	if err != nil {
		rep.Imported, rep.UserIDs = 0, nil
	}
	return rep, err
}

// decodeImport turns the stream into UTF-8.
func decodeImport(r io.Reader, encoding string) (io.Reader, error) {
	switch strings.ToLower(encoding) {
	case "", "utf8", "utf-8":
		br := bufio.NewReaderSize(r, 64<<10)
		if b, err := br.Peek(3); err == nil && string(b) == "\xef\xbb\xbf" {
			br.Discard(3)
		}
		return br, nil
	case "gbk":
		// Invalid GBK sequences decode to U+FFFD, which checkEncoding reports.
		return simplifiedchinese.GBK.NewDecoder().Reader(bufio.NewReaderSize(r, 64<<10)), nil
	}
	return nil, &ImportFileError{Reason: fmt.Sprintf("unknown encoding %q: use utf8 or gbk", encoding)}
}

func (run *importRun) readHeader(header []string, encoding string) error {
	run.cols = map[string]int{}
	known := map[string]bool{}
	for _, c := range ImportColumns {
		known[c] = true
	}
	for i, name := range header {
		name = strings.ToLower(strings.TrimSpace(name))
		if bad := checkEncoding(name, encoding); bad != "" {
			return &ImportFileError{Column: strconv.Itoa(i + 1), Reason: "the header " + bad}
		}
		if !known[name] {
			return &ImportFileError{Column: name, Reason: "is not a known column; use " + strings.Join(ImportColumns, ", ")}
		}
		if _, dup := run.cols[name]; dup {
			return &ImportFileError{Column: name, Reason: "appears twice in the header"}
		}
		run.cols[name] = i
	}
	for _, c := range requiredImportColumns {
		if _, ok := run.cols[c]; !ok {
			return &ImportFileError{Column: c, Reason: "is required in the header"}
		}
	}
	return nil
}

// checkEncoding says what is wrong with a field's bytes, "" if nothing.
func checkEncoding(s, encoding string) string {
	if !utf8.ValidString(s) {
		return "is not valid UTF-8 (if the file is GBK, say so with the gbk encoding)"
	}
	if strings.EqualFold(encoding, "gbk") && strings.ContainsRune(s, utf8.RuneError) {
		return "holds bytes that are not valid GBK"
	}
	return ""
}

// rows reads every data row and writes the valid ones in batches.
func (run *importRun) rows(ctx context.Context, cr *csv.Reader) error {
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var pe *csv.ParseError
		switch {
		case errors.As(err, &pe) && errors.Is(pe.Err, csv.ErrFieldCount):
			run.rep.Rows++
			run.reject(&importRow{line: pe.StartLine}, "", fmt.Sprintf("has %d fields; the header has %d", len(rec), len(run.cols)))
			continue
		case errors.As(err, &pe):
			// After broken quoting the row boundaries are unknown: stop, and
			// write what was read before (in the modes that write).
			run.rep.Rows++
			run.reject(&importRow{line: pe.StartLine}, "", fmt.Sprintf("cannot be read past line %d, column %d: %v; the rest of the file was not read", pe.Line, pe.Column, pe.Err))
			run.rep.Aborted = true
			return run.finish(ctx)
		case err != nil:
			run.rep.Aborted = true
			if ferr := run.finish(ctx); ferr != nil {
				return errors.Join(fmt.Errorf("read import file: %w", err), ferr)
			}
			return fmt.Errorf("read import file: %w", err)
		}
		line, _ := cr.FieldPos(0)
		run.rep.Rows++
		row := run.parse(ctx, line, rec)
		if row == nil {
			continue
		}
		run.pending = append(run.pending, row)
		if len(run.pending) >= run.opts.BatchSize {
			if err := run.flush(ctx, false); err != nil {
				return err
			}
		}
	}
	return run.finish(ctx)
}

// finish writes the last batch together with the summary record.
func (run *importRun) finish(ctx context.Context) error {
	return run.flush(ctx, true)
}

func (run *importRun) reject(row *importRow, column, reason string) {
	if !row.reject {
		row.reject = true
		run.rep.Rejected++
	}
	run.rep.Errors = append(run.rep.Errors, RowError{Line: row.line, Column: column, Reason: reason})
	if run.opts.AllOrNothing {
		run.failed = true
	}
}

func (run *importRun) field(rec []string, name string) string {
	if i, ok := run.cols[name]; ok {
		return rec[i]
	}
	return ""
}

// parse validates one row on its own and against the rows before it; it
// returns nil when the row is rejected.
func (run *importRun) parse(ctx context.Context, line int, rec []string) *importRow {
	row := &importRow{line: line}
	for name, i := range run.cols {
		if bad := checkEncoding(rec[i], run.opts.Encoding); bad != "" {
			run.reject(row, name, bad)
		}
	}
	if row.reject {
		return nil
	}
	u := &User{Username: run.field(rec, "username"), Kind: Kind(strings.ToLower(strings.TrimSpace(run.field(rec, "kind")))),
		DisplayName: run.field(rec, "display_name"), Email: run.field(rec, "email"),
		Phone: strings.TrimSpace(run.field(rec, "phone")), IDNumber: strings.TrimSpace(run.field(rec, "id_number"))}
	var v *ValidationError
	if err := u.Normalize(); errors.As(err, &v) {
		for _, f := range v.Fields {
			run.reject(row, f.Field, f.Reason)
		}
	} else if err != nil {
		run.reject(row, "", err.Error())
	}
	row.user = u
	code := strings.TrimSpace(run.field(rec, "org_unit_code"))
	if code != "" {
		unit, err := run.unit(ctx, code)
		switch {
		case err != nil:
			run.reject(row, "org_unit_code", "could not be looked up; try again")
		case unit == nil:
			run.reject(row, "org_unit_code", fmt.Sprintf("%q is not a known org unit code", code))
		default:
			row.unit = unit
		}
	}
	if !row.reject && run.opts.Allow != nil && !run.opts.Allow(row.unit) {
		col := "org_unit_code"
		reason := "is outside the org units you manage"
		if row.unit == nil {
			reason = "is required: you may only create accounts in the org units you manage"
		}
		run.reject(row, col, reason)
	}
	row.role = strings.ToLower(strings.TrimSpace(run.field(rec, "role")))
	switch {
	case row.role == "":
	case !importRoles[row.role]:
		run.reject(row, "role", "must be member, admin, auditor or client_manager")
	case code == "":
		run.reject(row, "role", "needs an org_unit_code")
	case !row.reject && row.unit != nil && run.opts.AllowRole != nil && !run.opts.AllowRole(row.unit, row.role):
		run.reject(row, "role", "is a role you may not grant in this org unit")
	}
	if row.reject {
		return nil
	}
	var err error
	if row.phEnc, row.phone, err = run.im.users.sealPhone(u.Phone); err == nil {
		row.idEnc, row.idNum, err = run.im.users.sealIDNumber(u.IDNumber)
	}
	if err != nil {
		run.reject(row, "", "could not be sealed; try again")
		return nil
	}
	// Duplicates within the file; the database is asked per batch.
	keys := []struct{ col, key string }{{"username", "username:" + u.Username}}
	if row.phone != nil {
		keys = append(keys, struct{ col, key string }{"phone", "phone:" + row.phone.(string)})
	}
	if row.idNum != nil {
		keys = append(keys, struct{ col, key string }{"id_number", "id:" + row.idNum.(string)})
	}
	for _, k := range keys {
		if first, ok := run.seen[k.key]; ok {
			run.reject(row, k.col, fmt.Sprintf("repeats line %d", first))
		}
	}
	if row.reject {
		return nil
	}
	for _, k := range keys {
		run.seen[k.key] = line
	}
	return row
}

// unit finds an org unit by code, remembering the answer; nil, nil means
// no such unit.
func (run *importRun) unit(ctx context.Context, code string) (*OrgUnit, error) {
	if u, ok := run.units[code]; ok {
		return u, nil
	}
	u, err := run.im.orgs.GetByCode(ctx, code)
	if errors.Is(err, db.ErrNotFound) {
		run.units[code] = nil
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	run.units[code] = u
	return u, nil
}

// flush checks the pending rows against the database and, unless this is a
// dry run or a failed all-or-nothing import, writes the valid ones with
// their audit records; last adds the summary record.
func (run *importRun) flush(ctx context.Context, last bool) error {
	batch := run.pending
	run.pending = nil
	write := !run.opts.DryRun && !run.failed
	err := run.im.d.InTx(ctx, func(ctx context.Context) error {
		if err := run.checkTaken(ctx, batch); err != nil {
			return err
		}
		valid := batch[:0:0]
		for _, row := range batch {
			if !row.reject {
				valid = append(valid, row)
			}
		}
		if !write || run.failed {
			return nil
		}
		if err := run.im.users.insertBatch(ctx, valid); err != nil {
			return err
		}
		events := make([]audit.Event, 0, len(valid)+1)
		for _, row := range valid {
			e := run.opts.Audit
			e.Subject, e.Action, e.Result = row.user.ID, audit.ActionUserCreate, audit.ResultSuccess
			e.Details = map[string]string{"username": row.user.Username, "kind": string(row.user.Kind), "via": "import", "line": strconv.Itoa(row.line)}
			if row.unit != nil {
				e.Details["org_unit_id"] = row.unit.ID
				// A role given with the account is a grant like any other:
				// a search for who was made admin must find it.
				e.Details["role"] = cmp.Or(row.role, "member")
			}
			events = append(events, e)
		}
		if run.opts.OnCreated != nil && len(valid) > 0 {
			created := make([]ImportedUser, len(valid))
			for i, row := range valid {
				created[i] = ImportedUser{User: row.user, Unit: row.unit, Role: row.role}
			}
			if err := run.opts.OnCreated(ctx, created); err != nil {
				return err
			}
		}
		if last && !run.opts.AllOrNothing {
			events = append(events, run.summary(audit.ResultSuccess, run.rep.Imported+len(valid)))
		}
		return run.im.audit.AppendBatch(ctx, events)
	})
	if err != nil {
		return err
	}
	for _, row := range batch {
		if row.reject {
			continue
		}
		run.rep.Valid++
		if write && !run.failed {
			run.rep.Imported++
			run.rep.UserIDs = append(run.rep.UserIDs, row.user.ID)
		}
	}
	if last && run.opts.AllOrNothing && !run.opts.DryRun && !run.failed {
		return run.im.audit.AppendBatch(ctx, []audit.Event{run.summary(audit.ResultSuccess, run.rep.Imported)})
	}
	return nil
}

// summary is the one record of the import as a whole, imported rows having
// been written.
func (run *importRun) summary(result string, imported int) audit.Event {
	e := run.opts.Audit
	e.Subject, e.Action, e.Result = "", ActionUserImport, result
	mode := "default"
	if run.opts.AllOrNothing {
		mode = "all_or_nothing"
	}
	e.Details = map[string]string{"rows": strconv.Itoa(run.rep.Rows), "imported": strconv.Itoa(imported),
		"rejected": strconv.Itoa(run.rep.Rejected), "mode": mode, "aborted": strconv.FormatBool(run.rep.Aborted)}
	if result == audit.ResultFailure {
		e.Reason = "rows were rejected; nothing was imported"
	}
	return e
}

// checkTaken rejects the rows whose username, phone number or ID number
// another account already holds.
func (run *importRun) checkTaken(ctx context.Context, batch []*importRow) error {
	var live []*importRow
	for _, row := range batch {
		if !row.reject {
			live = append(live, row)
		}
	}
	if len(live) == 0 {
		return nil
	}
	taken, err := run.im.users.takenBatch(ctx, live)
	if err != nil {
		return err
	}
	for _, row := range live {
		if taken["username:"+row.user.Username] {
			run.reject(row, "username", "is already taken by another account")
		}
		if row.phone != nil && taken["phone:"+row.phone.(string)] {
			run.reject(row, "phone", "is already registered to another account")
		}
		if row.idNum != nil && taken["id:"+row.idNum.(string)] {
			run.reject(row, "id_number", "is already registered to another account")
		}
	}
	return nil
}

// ActivationText is the SMS that tells an imported person the account
// exists and where to set a password (with a code sent to the same
// number), in Chinese and English. It carries no secret.
func ActivationText(username, resetURL string) string {
	return fmt.Sprintf("【统一身份认证】您的账号 %s 已开通。请访问 %s ，用本手机号接收验证码设置密码。Your account %s is ready: set a password at %s with a code sent to this number.",
		username, resetURL, username, resetURL)
}
