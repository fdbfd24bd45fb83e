package users

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/kek"
)

// Store keeps accounts.
type Store interface {
	Create(ctx context.Context, u *User) error
	Get(ctx context.Context, id string) (*User, error)
	GetByUsername(ctx context.Context, username string) (*User, error)
	GetByPhone(ctx context.Context, phone string) (*User, error)
	GetByIDNumber(ctx context.Context, idNumber string) (*User, error)
	List(ctx context.Context, opts ListOptions) ([]*User, error)
	Update(ctx context.Context, id string, fn func(*User) error) (*User, error)
	Count(ctx context.Context) (int, error)
}

// ListOptions pages through accounts in creation order; zero filters match all.
type ListOptions struct {
	AfterID string // the last ID of the previous page
	Limit   int    // default 100, at most 1000
	Status  Status
	Kind    Kind
}

// SQLStore is the Store on SQLite or PostgreSQL. Phone and ID numbers are
// sealed under the key-encryption key and found through keyed blind indexes.
type SQLStore struct {
	d          *db.DB
	kek        *kek.KEK
	indexKey   []byte
	idIndexKey []byte
	// changes hears of every change (see SetChangeListener).
	changes ChangeListener
}

var _ Store = (*SQLStore)(nil)

// NewSQLStore returns the account store in d.
func NewSQLStore(d *db.DB, k *kek.KEK) *SQLStore {
	return &SQLStore{d: d, kek: k, indexKey: k.Derive("sso users phone index"), idIndexKey: k.Derive("sso users id_number index")}
}

// phoneAAD and idNumberAAD bind sealed values to their column.
var (
	phoneAAD    = []byte("users.phone")
	idNumberAAD = []byte("users.id_number")
)

// blindIndex is HMAC-SHA-256 of a normalized value: equal inputs give equal
// indexes, and without the key the index reveals nothing.
func (s *SQLStore) blindIndex(v string) string {
	return hmacHex(s.indexKey, v)
}

func hmacHex(key []byte, v string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(v))
	return hex.EncodeToString(m.Sum(nil))
}

const userColumns = `id, username, kind, display_name, email, phone_enc, id_number_enc, password_hash, is_admin, status, assurance_level, created_at, updated_at`

// userSelect is what reads fetch: the columns Create writes and the
// deletion times.
const userSelect = userColumns + `, deleted_at, erased_at`

// Create validates and stores u, filling ID and timestamps. A taken
// username or phone number is an error wrapping db.ErrConflict.
func (s *SQLStore) Create(ctx context.Context, u *User) error {
	if err := u.Normalize(); err != nil {
		return err
	}
	if u.ID == "" {
		u.ID = uuid.Must(uuid.NewV7()).String()
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	if u.CreatedAt.IsZero() {
		u.CreatedAt = now
	}
	u.UpdatedAt = u.CreatedAt
	phoneEnc, phoneIdx, err := s.sealPhone(u.Phone)
	if err != nil {
		return err
	}
	idEnc, idIdx, err := s.sealIDNumber(u.IDNumber)
	if err != nil {
		return err
	}
	return s.d.InTx(ctx, func(ctx context.Context) error {
		if err := s.checkTaken(ctx, u, phoneIdx, idIdx); err != nil {
			return err
		}
		_, err = s.d.Exec(ctx, `INSERT INTO users (`+userColumns+`, phone_index, id_number_index) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			u.ID, u.Username, string(u.Kind), u.DisplayName, nullIfEmpty(u.Email), phoneEnc, idEnc, nullIfEmpty(u.PasswordHash),
			u.IsAdmin, string(u.Status), u.AssuranceLevel, u.CreatedAt, u.UpdatedAt, phoneIdx, idIdx)
		if err != nil {
			return raceConflict(err)
		}
		return s.changed(ctx, ChangeCreated, u)
	})
}

// checkTaken names the unique field of u that another account already
// holds. It asks before writing because PostgreSQL aborts a transaction at
// the first unique violation, after which nothing more can be asked; the
// unique indexes still catch a concurrent writer (see raceConflict).
func (s *SQLStore) checkTaken(ctx context.Context, u *User, phoneIdx, idIdx any) error {
	rows, err := s.d.Query(ctx, `SELECT username, phone_index, id_number_index FROM users
		WHERE id <> ? AND (username = ? OR phone_index = ? OR id_number_index = ?)`, u.ID, u.Username, phoneIdx, idIdx)
	if err != nil {
		return err
	}
	defer rows.Close()
	var taken error
	for rows.Next() && taken == nil {
		var username string
		var phone, idNumber sql.NullString
		if err := rows.Scan(&username, &phone, &idNumber); err != nil {
			return s.d.Err(err)
		}
		switch {
		case username == u.Username:
			taken = fmt.Errorf("username %q %w", u.Username, db.ErrConflict)
		case phone.Valid && phone.String == phoneIdx:
			taken = fmt.Errorf("phone number %s %w", MaskPhone(u.Phone), db.ErrConflict)
		case idNumber.Valid && idNumber.String == idIdx:
			taken = fmt.Errorf("resident ID number %s %w", MaskIDNumber(u.IDNumber), db.ErrConflict)
		}
	}
	if taken != nil {
		return taken
	}
	return s.d.Err(rows.Err())
}

// raceConflict words a unique violation that checkTaken did not foresee:
// another transaction took the value in between. The driver's message is
// left out since it may quote the value.
func raceConflict(err error) error {
	if errors.Is(err, db.ErrConflict) {
		return fmt.Errorf("account %w: another account took its id, username, phone number or ID number at the same moment", db.ErrConflict)
	}
	return err
}

func (s *SQLStore) sealPhone(phone string) (enc []byte, index any, err error) {
	if phone == "" {
		return nil, nil, nil
	}
	if enc, err = s.kek.Seal([]byte(phone), phoneAAD); err != nil {
		return nil, nil, err
	}
	return enc, s.blindIndex(phone), nil
}

func (s *SQLStore) sealIDNumber(idNumber string) (enc []byte, index any, err error) {
	if idNumber == "" {
		return nil, nil, nil
	}
	if enc, err = s.kek.Seal([]byte(idNumber), idNumberAAD); err != nil {
		return nil, nil, err
	}
	return enc, hmacHex(s.idIndexKey, idNumber), nil
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Get returns the account with id.
func (s *SQLStore) Get(ctx context.Context, id string) (*User, error) {
	return s.getOne(ctx, `id = ?`, id, "account "+id)
}

// GetByUsername returns the account with username (any case).
func (s *SQLStore) GetByUsername(ctx context.Context, username string) (*User, error) {
	return s.getOne(ctx, `username = ?`, strings.ToLower(strings.TrimSpace(username)), fmt.Sprintf("username %q", username))
}

// GetByPhone returns the account with phone, in any accepted spelling.
func (s *SQLStore) GetByPhone(ctx context.Context, phone string) (*User, error) {
	p, err := NormalizePhone(phone)
	if err != nil {
		return nil, fmt.Errorf("phone number: %w", db.ErrNotFound)
	}
	return s.getOne(ctx, `phone_index = ?`, s.blindIndex(p), "phone number "+MaskPhone(p))
}

// GetByEmail returns the one live account with this e-mail address (any
// case). Addresses are not unique: when several accounts share one, none
// is returned (db.ErrNotFound), so that a reset by e-mail never picks one.
func (s *SQLStore) GetByEmail(ctx context.Context, email string) (*User, error) {
	e, err := NormalizeEmail(email)
	if err != nil || e == "" {
		return nil, fmt.Errorf("e-mail address: %w", db.ErrNotFound)
	}
	list, err := s.query(ctx, `SELECT `+userSelect+` FROM users WHERE email = ? AND deleted_at IS NULL LIMIT 2`, e)
	if err != nil {
		return nil, err
	}
	if len(list) != 1 {
		return nil, fmt.Errorf("one account with e-mail %s: %w", maskEmail(e), db.ErrNotFound)
	}
	return list[0], nil
}

// GetByIDNumber returns the account with a resident ID number (lower-case x accepted).
func (s *SQLStore) GetByIDNumber(ctx context.Context, idNumber string) (*User, error) {
	n, err := NormalizeIDNumber(idNumber)
	if err != nil {
		return nil, fmt.Errorf("resident ID number: %w", db.ErrNotFound)
	}
	return s.getOne(ctx, `id_number_index = ?`, hmacHex(s.idIndexKey, n), "resident ID number "+MaskIDNumber(n))
}

func (s *SQLStore) getOne(ctx context.Context, cond string, arg any, what string) (*User, error) {
	list, err := s.query(ctx, `SELECT `+userSelect+` FROM users WHERE `+cond, arg)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("%s %w", what, db.ErrNotFound)
	}
	return list[0], nil
}

// List returns a page of accounts in creation order (IDs are UUIDv7, so
// ordering by ID is ordering by creation and stays stable while rows are added).
func (s *SQLStore) List(ctx context.Context, o ListOptions) ([]*User, error) {
	q := `SELECT ` + userSelect + ` FROM users WHERE id > ?`
	args := []any{o.AfterID}
	switch o.Status {
	case StatusDeleted:
		q += ` AND deleted_at IS NOT NULL`
	case "":
		q += ` AND deleted_at IS NULL` // deleted accounts only when asked for
	default:
		q += ` AND status = ? AND deleted_at IS NULL`
		args = append(args, string(o.Status))
	}
	if o.Kind != "" {
		q += ` AND kind = ?`
		args = append(args, string(o.Kind))
	}
	limit := o.Limit
	if limit <= 0 {
		limit = 100
	}
	args = append(args, min(limit, 1000))
	return s.query(ctx, q+` ORDER BY id LIMIT ?`, args...)
}

// SearchByName returns a page of live accounts whose display name starts
// with prefix, in name order (then id), after the account named afterName
// with id afterID (both "" for the first page). The order follows an index
// whatever the prefix, so a common surname costs no more than a rare one.
func (s *SQLStore) SearchByName(ctx context.Context, prefix, afterName, afterID string, limit int) ([]*User, error) {
	name := `display_name`
	if s.d.Dialect() == db.Postgres {
		name = `display_name COLLATE "C"` // byte order, like SQLite's, and the index's
	}
	if limit <= 0 {
		limit = 100
	}
	// Every name that starts with prefix sorts from prefix up to prefix
	// followed by the last code point.
	q := `SELECT ` + userSelect + ` FROM users WHERE ` + name + ` >= ? AND ` + name + ` < ? AND deleted_at IS NULL`
	args := []any{prefix, prefix + "\U0010FFFF"}
	if afterName != "" || afterID != "" {
		q += ` AND (` + name + `, id) > (?, ?)`
		args = append(args, afterName, afterID)
	}
	args = append(args, min(limit, 1000))
	return s.query(ctx, q+` ORDER BY `+name+`, id LIMIT ?`, args...)
}

// Count returns the number of accounts.
func (s *SQLStore) Count(ctx context.Context) (int, error) {
	var n int
	err := s.d.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&n)
	return n, s.d.Err(err)
}

// Update reads the account, lets fn change it, validates and writes it back,
// all in one transaction. If fn or validation fails nothing is written.
func (s *SQLStore) Update(ctx context.Context, id string, fn func(*User) error) (*User, error) {
	var out *User
	err := s.d.InTx(ctx, func(ctx context.Context) error {
		list, err := s.query(ctx, `SELECT `+userSelect+` FROM users WHERE id = ?`+s.d.ForUpdate(), id)
		if err != nil {
			return err
		}
		if len(list) == 0 {
			return fmt.Errorf("account %s %w", id, db.ErrNotFound)
		}
		u := list[0]
		if u.Status == StatusDeleted {
			return fmt.Errorf("account %s: %w", id, ErrDeleted)
		}
		before := *u
		if err := fn(u); err != nil {
			return err
		}
		u.ID = id
		if err := u.Normalize(); err != nil {
			return err
		}
		u.UpdatedAt = time.Now().UTC().Truncate(time.Microsecond)
		phoneEnc, phoneIdx, err := s.sealPhone(u.Phone)
		if err != nil {
			return err
		}
		idEnc, idIdx, err := s.sealIDNumber(u.IDNumber)
		if err != nil {
			return err
		}
		if err := s.checkTaken(ctx, u, phoneIdx, idIdx); err != nil {
			return err
		}
		_, err = s.d.Exec(ctx, `UPDATE users SET username = ?, kind = ?, display_name = ?, email = ?, phone_enc = ?, phone_index = ?,
			id_number_enc = ?, id_number_index = ?, password_hash = ?, is_admin = ?, status = ?, assurance_level = ?, updated_at = ? WHERE id = ?`,
			u.Username, string(u.Kind), u.DisplayName, nullIfEmpty(u.Email), phoneEnc, phoneIdx, idEnc, idIdx,
			nullIfEmpty(u.PasswordHash), u.IsAdmin, string(u.Status), u.AssuranceLevel, u.UpdatedAt, id)
		if err != nil {
			return raceConflict(err)
		}
		out = u
		if c := updateChange(&before, u); c != "" {
			return s.changed(ctx, c, u)
		}
		return nil
	})
	return out, err
}

func (s *SQLStore) query(ctx context.Context, q string, args ...any) ([]*User, error) {
	rows, err := s.d.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*User
	for rows.Next() {
		u := &User{}
		var kind, status string
		var email, hash sql.NullString
		var phoneEnc, idEnc []byte
		var deleted, erased sql.NullTime
		if err := rows.Scan(&u.ID, &u.Username, &kind, &u.DisplayName, &email, &phoneEnc, &idEnc, &hash, &u.IsAdmin, &status,
			&u.AssuranceLevel, &u.CreatedAt, &u.UpdatedAt, &deleted, &erased); err != nil {
			return nil, s.d.Err(err)
		}
		u.Kind, u.Status, u.Email, u.PasswordHash = Kind(kind), Status(status), email.String, hash.String
		if deleted.Valid {
			// The status column keeps 'disabled' (see migration 0015).
			u.Status, u.DeletedAt = StatusDeleted, deleted.Time.UTC()
		}
		if erased.Valid {
			u.ErasedAt = erased.Time.UTC()
		}
		u.CreatedAt, u.UpdatedAt = u.CreatedAt.UTC(), u.UpdatedAt.UTC()
		if len(phoneEnc) > 0 {
			p, err := s.kek.Open(phoneEnc, phoneAAD)
			if err != nil {
				return nil, fmt.Errorf("account %s phone: %w", u.ID, err)
			}
			u.Phone = string(p)
		}
		if len(idEnc) > 0 {
			n, err := s.kek.Open(idEnc, idNumberAAD)
			if err != nil {
				return nil, fmt.Errorf("account %s resident ID number: %w", u.ID, err)
			}
			u.IDNumber = string(n)
		}
		out = append(out, u)
	}
	return out, s.d.Err(rows.Err())
}
