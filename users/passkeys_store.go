package users

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/govsso/sso/db"
)

// passkeyHandleBytes is the length of a WebAuthn user handle: random, so
// that it links an authenticator's entry to nothing outside this server.
const passkeyHandleBytes = 32

// PasskeyStore keeps passkeys, the accounts' WebAuthn user handles and the
// ceremonies in flight, in the database so that every node shares them.
type PasskeyStore struct {
	d   *db.DB
	now func() time.Time // replaced by tests
}

// NewPasskeyStore returns the passkeys stored in d.
func NewPasskeyStore(d *db.DB) *PasskeyStore {
	return &PasskeyStore{d: d, now: time.Now}
}

func (s *PasskeyStore) clock() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}

// UserHandle returns the account's WebAuthn user handle, creating it on
// first use. Two nodes creating one at once agree on the first written.
func (s *PasskeyStore) UserHandle(ctx context.Context, userID string) ([]byte, error) {
	handle := make([]byte, passkeyHandleBytes)
	rand.Read(handle) // never fails since Go 1.24
	if _, err := s.d.Exec(ctx, `INSERT INTO webauthn_users (user_id, handle, created_at) VALUES (?, ?, ?)
		ON CONFLICT (user_id) DO NOTHING`, userID, handle, s.clock()); err != nil {
		return nil, fmt.Errorf("passkey handle of %s: %w", userID, err)
	}
	var stored []byte
	if err := s.d.Err(s.d.QueryRow(ctx, `SELECT handle FROM webauthn_users WHERE user_id = ?`, userID).Scan(&stored)); err != nil {
		return nil, fmt.Errorf("passkey handle of %s: %w", userID, err)
	}
	return stored, nil
}

// UserIDByHandle returns the account a user handle belongs to; an unknown
// handle is an error wrapping db.ErrNotFound.
func (s *PasskeyStore) UserIDByHandle(ctx context.Context, handle []byte) (string, error) {
	var userID string
	if err := s.d.Err(s.d.QueryRow(ctx, `SELECT user_id FROM webauthn_users WHERE handle = ?`, handle).Scan(&userID)); err != nil {
		return "", fmt.Errorf("passkey user handle: %w", err)
	}
	return userID, nil
}

const passkeyColumns = `id, user_id, name, public_key, attestation_type, attestation_format, transports, attachment,
	user_present, user_verified, backup_eligible, backup_state, aaguid, sign_count, clone_warning, created_at, last_used_at`

// Add stores a new passkey, filling CreatedAt. A credential id already
// registered (to anyone) is an error wrapping db.ErrConflict.
func (s *PasskeyStore) Add(ctx context.Context, p *Passkey) error {
	p.CreatedAt = s.clock()
	var lastUsed sql.NullTime
	if !p.LastUsedAt.IsZero() {
		lastUsed = sql.NullTime{Time: p.LastUsedAt.UTC(), Valid: true}
	}
	_, err := s.d.Exec(ctx, `INSERT INTO webauthn_credentials (`+passkeyColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.ID, p.UserID, p.Name, p.PublicKey, p.AttestationType, p.AttestationFormat, strings.Join(p.Transports, " "), p.Attachment,
		p.UserPresent, p.UserVerified, p.BackupEligible, p.BackupState, p.AAGUID, int64(p.SignCount), p.CloneWarning,
		p.CreatedAt, lastUsed)
	if err != nil {
		return fmt.Errorf("add passkey for %s: %w", p.UserID, err)
	}
	return nil
}

// Get returns one passkey by credential id.
func (s *PasskeyStore) Get(ctx context.Context, id string) (*Passkey, error) {
	list, err := s.query(ctx, `SELECT `+passkeyColumns+` FROM webauthn_credentials WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("passkey: %w", db.ErrNotFound)
	}
	return list[0], nil
}

// List returns an account's passkeys, oldest first.
func (s *PasskeyStore) List(ctx context.Context, userID string) ([]*Passkey, error) {
	return s.query(ctx, `SELECT `+passkeyColumns+` FROM webauthn_credentials WHERE user_id = ? ORDER BY created_at, id`, userID)
}

// Count says how many passkeys an account has.
func (s *PasskeyStore) Count(ctx context.Context, userID string) (int, error) {
	var n int
	if err := s.d.Err(s.d.QueryRow(ctx, `SELECT COUNT(*) FROM webauthn_credentials WHERE user_id = ?`, userID).Scan(&n)); err != nil {
		return 0, fmt.Errorf("count passkeys of %s: %w", userID, err)
	}
	return n, nil
}

// Rename names one of the account's passkeys; a passkey of someone else is
// not found.
func (s *PasskeyStore) Rename(ctx context.Context, userID, id, name string) error {
	if err := s.d.ExecOne(ctx, `UPDATE webauthn_credentials SET name = ? WHERE id = ? AND user_id = ?`, name, id, userID); err != nil {
		return fmt.Errorf("rename passkey: %w", err)
	}
	return nil
}

// Delete removes one of the account's passkeys; a passkey of someone else
// is not found.
func (s *PasskeyStore) Delete(ctx context.Context, userID, id string) error {
	if err := s.d.ExecOne(ctx, `DELETE FROM webauthn_credentials WHERE id = ? AND user_id = ?`, id, userID); err != nil {
		return fmt.Errorf("delete passkey: %w", err)
	}
	return nil
}

// RecordUse writes back what a sign-in learned about a passkey: its
// signature counter, clone warning, user-verified and backup-state flags,
// and when it was used.
func (s *PasskeyStore) RecordUse(ctx context.Context, p *Passkey) error {
	err := s.d.ExecOne(ctx, `UPDATE webauthn_credentials
		SET sign_count = ?, clone_warning = ?, user_verified = ?, backup_state = ?, last_used_at = ? WHERE id = ?`,
		int64(p.SignCount), p.CloneWarning, p.UserVerified, p.BackupState, p.LastUsedAt.UTC(), p.ID)
	if err != nil {
		return fmt.Errorf("record passkey use: %w", err)
	}
	return nil
}

func (s *PasskeyStore) query(ctx context.Context, q string, args ...any) ([]*Passkey, error) {
	rows, err := s.d.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("passkeys: %w", err)
	}
	defer rows.Close()
	var out []*Passkey
	for rows.Next() {
		p := &Passkey{}
		var transports string
		var signCount int64
		var lastUsed sql.NullTime
		if err := rows.Scan(&p.ID, &p.UserID, &p.Name, &p.PublicKey, &p.AttestationType, &p.AttestationFormat, &transports, &p.Attachment,
			&p.UserPresent, &p.UserVerified, &p.BackupEligible, &p.BackupState, &p.AAGUID, &signCount, &p.CloneWarning,
			&p.CreatedAt, &lastUsed); err != nil {
			return nil, fmt.Errorf("passkeys: %w", s.d.Err(err))
		}
		p.Transports = strings.Fields(transports)
		p.SignCount = uint32(signCount)
		p.CreatedAt = p.CreatedAt.UTC()
		if lastUsed.Valid {
			p.LastUsedAt = lastUsed.Time.UTC()
		}
		out = append(out, p)
	}
	return out, s.d.Err(rows.Err())
}

// passkeyCeremony is the server-side state of a begun ceremony.
type passkeyCeremony struct {
	kind      string
	userID    string // the account registering; "" for a sign-in
	data      []byte // webauthn.SessionData as JSON
	expiresAt time.Time
}

// ceremonyID is what the database knows of a ceremony cookie: its hash, so
// that a copy of the table cannot finish anyone's ceremony.
func ceremonyID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// saveCeremony stores a begun ceremony under its cookie token and drops
// the ceremonies that expired, which browsers abandon all the time.
func (s *PasskeyStore) saveCeremony(ctx context.Context, token string, c passkeyCeremony) error {
	return s.d.InTx(ctx, func(ctx context.Context) error {
		if _, err := s.d.Exec(ctx, `DELETE FROM webauthn_challenges WHERE expires_at < ?`, s.clock()); err != nil {
			return fmt.Errorf("purge passkey ceremonies: %w", err)
		}
		if _, err := s.d.Exec(ctx, `INSERT INTO webauthn_challenges (id, ceremony, user_id, data, expires_at) VALUES (?, ?, ?, ?, ?)`,
			ceremonyID(token), c.kind, c.userID, c.data, c.expiresAt.UTC()); err != nil {
			return fmt.Errorf("save passkey ceremony: %w", err)
		}
		return nil
	})
}

// takeCeremony removes and returns the ceremony of kind that token names,
// so that it can be finished once. A missing, expired or other-kind
// ceremony is an error wrapping ErrPasskeyCeremony.
func (s *PasskeyStore) takeCeremony(ctx context.Context, token, kind string) (*passkeyCeremony, error) {
	c := &passkeyCeremony{}
	err := s.d.Err(s.d.QueryRow(ctx, `DELETE FROM webauthn_challenges WHERE id = ? AND ceremony = ?
		RETURNING ceremony, user_id, data, expires_at`, ceremonyID(token), kind).Scan(&c.kind, &c.userID, &c.data, &c.expiresAt))
	switch {
	case errors.Is(err, db.ErrNotFound):
		return nil, ErrPasskeyCeremony
	case err != nil:
		return nil, fmt.Errorf("take passkey ceremony: %w", err)
	case !s.clock().Before(c.expiresAt):
		return nil, fmt.Errorf("expired at %s: %w", c.expiresAt.UTC().Format(time.RFC3339), ErrPasskeyCeremony)
	}
	c.expiresAt = c.expiresAt.UTC()
	return c, nil
}
