package certs

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/govsso/sso/db"
)

// signStore holds all SQL of signature requests and their callbacks.
type signStore struct{ db *db.DB }

const signColumns = `id, client_id, user_id, subject, title, digest, document, digest_only, callback_url, status,
	certificate_id, cms, signature, created_at, expires_at, decided_at`

func (s *signStore) insert(ctx context.Context, r *SignRequest) error {
	_, err := s.db.Exec(ctx, `INSERT INTO sign_requests (`+signColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', NULL, NULL, ?, ?, NULL)`,
		r.ID, r.ClientID, r.UserID, r.Subject, r.Title, r.Digest, r.document, r.DigestOnly, r.CallbackURL, string(r.Status),
		r.CreatedAt.UTC(), r.ExpiresAt.UTC())
	if err != nil {
		return fmt.Errorf("certs: insert sign request: %w", err)
	}
	return nil
}

func (s *signStore) byID(ctx context.Context, id string) (*SignRequest, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, db.ErrNotFound // not one of ours; PostgreSQL needs no query to say so
	}
	r, err := scanSign(s.db.QueryRow(ctx, `SELECT `+signColumns+` FROM sign_requests WHERE id = ?`, id))
	if err != nil {
		return nil, s.db.Err(err)
	}
	return r, nil
}

// byIDForUpdate locks the request's row until the transaction ends.
func (s *signStore) byIDForUpdate(ctx context.Context, id string) (*SignRequest, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, db.ErrNotFound
	}
	r, err := scanSign(s.db.QueryRow(ctx, `SELECT `+signColumns+` FROM sign_requests WHERE id = ?`+s.db.ForUpdate(), id))
	if err != nil {
		return nil, s.db.Err(err)
	}
	return r, nil
}

// pendingForUser lists a person's requests still open at now, newest first.
func (s *signStore) pendingForUser(ctx context.Context, userID string, now time.Time) ([]*SignRequest, error) {
	return s.query(ctx, `SELECT `+signColumns+` FROM sign_requests
		WHERE user_id = ? AND status = 'pending' AND expires_at > ? ORDER BY created_at DESC, id DESC`, userID, now.UTC())
}

// due lists pending requests whose time ran out.
func (s *signStore) due(ctx context.Context, now time.Time, limit int) ([]*SignRequest, error) {
	return s.query(ctx, `SELECT `+signColumns+` FROM sign_requests
		WHERE status = 'pending' AND expires_at <= ? ORDER BY expires_at LIMIT ?`, now.UTC(), limit)
}

// settle moves a pending request to its outcome and drops the document;
// db.ErrNotFound when it is no longer pending.
func (s *signStore) settle(ctx context.Context, r *SignRequest) error {
	return s.db.ExecOne(ctx, `UPDATE sign_requests SET status = ?, certificate_id = ?, cms = ?, signature = ?,
		decided_at = ?, document = NULL WHERE id = ? AND status = 'pending'`,
		string(r.Status), r.CertificateID, r.CMS, r.Signature, r.DecidedAt.UTC(), r.ID)
}

// userSigningCertificate returns the newest active user certificate of a
// person whose key the server holds, valid at now.
func (s *signStore) userSigningCertificate(ctx context.Context, userID string, now time.Time) (string, error) {
	var id string
	err := s.db.Err(s.db.QueryRow(ctx, `SELECT c.id FROM certificates c JOIN certificate_keys k ON k.certificate_id = c.id
		WHERE c.owner_user_id = ? AND c.kind = 'user' AND c.status = 'active' AND c.not_before <= ? AND c.not_after > ?
		ORDER BY c.created_at DESC, c.id DESC LIMIT 1`, userID, now.UTC(), now.UTC()).Scan(&id))
	return id, err
}

func (s *signStore) query(ctx context.Context, q string, args ...any) ([]*SignRequest, error) {
	rows, err := s.db.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*SignRequest
	for rows.Next() {
		r, err := scanSign(rows)
		if err != nil {
			return nil, s.db.Err(err)
		}
		out = append(out, r)
	}
	return out, s.db.Err(rows.Err())
}

func scanSign(row rowScanner) (*SignRequest, error) {
	var r SignRequest
	var status string
	var decided sql.NullTime
	err := row.Scan(&r.ID, &r.ClientID, &r.UserID, &r.Subject, &r.Title, &r.Digest, &r.document, &r.DigestOnly, &r.CallbackURL, &status,
		&r.CertificateID, &r.CMS, &r.Signature, &r.CreatedAt, &r.ExpiresAt, &decided)
	if err != nil {
		return nil, err
	}
	r.Status = SignRequestStatus(status)
	r.CreatedAt, r.ExpiresAt = r.CreatedAt.UTC(), r.ExpiresAt.UTC()
	if decided.Valid {
		t := decided.Time.UTC()
		r.DecidedAt = &t
	}
	return &r, nil
}

// signCallback is one outcome notification in the outbox.
type signCallback struct {
	ID, RequestID, ClientID, URI string
	Attempts                     int
}

func (s *signStore) enqueueCallback(ctx context.Context, r *SignRequest, at time.Time) error {
	_, err := s.db.Exec(ctx, `INSERT INTO sign_request_callbacks (id, request_id, client_id, uri, attempts, next_attempt_at, last_error, created_at)
		VALUES (?, ?, ?, ?, 0, ?, '', ?)`, uuid.Must(uuid.NewV7()).String(), r.ID, r.ClientID, r.CallbackURL, at.UTC(), at.UTC())
	if err != nil {
		return fmt.Errorf("certs: queue sign request callback: %w", err)
	}
	return nil
}

// claimCallbacks takes up to limit callbacks due at now, counts the
// attempt, and leases them so that no other node sends them meanwhile.
func (s *signStore) claimCallbacks(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*signCallback, error) {
	lock := ""
	if s.db.Dialect() == db.Postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	var out []*signCallback
	err := s.db.InTx(ctx, func(ctx context.Context) error {
		rows, err := s.db.Query(ctx, `SELECT id, request_id, client_id, uri, attempts FROM sign_request_callbacks
			WHERE delivered_at IS NULL AND gave_up_at IS NULL AND next_attempt_at <= ?
			ORDER BY next_attempt_at LIMIT ?`+lock, now.UTC(), limit)
		if err != nil {
			return err
		}
		for rows.Next() {
			var c signCallback
			if err := rows.Scan(&c.ID, &c.RequestID, &c.ClientID, &c.URI, &c.Attempts); err != nil {
				rows.Close()
				return s.db.Err(err)
			}
			out = append(out, &c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return s.db.Err(err)
		}
		for _, c := range out {
			c.Attempts++
			if err := s.db.ExecOne(ctx, `UPDATE sign_request_callbacks SET attempts = ?, next_attempt_at = ? WHERE id = ?`,
				c.Attempts, now.Add(lease).UTC(), c.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("certs: claim sign request callbacks: %w", err)
	}
	return out, nil
}

// finishCallback records an attempt's outcome: delivered, retry at next, or given up.
func (s *signStore) finishCallback(ctx context.Context, id string, delivered, gaveUp *time.Time, next time.Time, lastError string) error {
	var d, g any
	if delivered != nil {
		d = delivered.UTC()
	}
	if gaveUp != nil {
		g = gaveUp.UTC()
	}
	return s.db.ExecOne(ctx, `UPDATE sign_request_callbacks SET delivered_at = ?, gave_up_at = ?, next_attempt_at = ?, last_error = ?
		WHERE id = ?`, d, g, next.UTC(), lastError, id)
}

// purgeCallbacks deletes callbacks settled (delivered or given up) before
// before; the audit log keeps every attempt.
func (s *signStore) purgeCallbacks(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.db.Exec(ctx, `DELETE FROM sign_request_callbacks WHERE delivered_at < ? OR gave_up_at < ?`, before.UTC(), before.UTC())
	if err != nil {
		return 0, fmt.Errorf("certs: purge sign request callbacks: %w", err)
	}
	return res.RowsAffected()
}

// SignCallbackStatus is what the outbox knows of one callback.
type SignCallbackStatus struct {
	Attempts  int
	Delivered bool
	GaveUp    bool
	LastError string
}

func (s *signStore) callbacksOf(ctx context.Context, requestID string) ([]SignCallbackStatus, error) {
	rows, err := s.db.Query(ctx, `SELECT attempts, delivered_at, gave_up_at, last_error FROM sign_request_callbacks
		WHERE request_id = ? ORDER BY created_at, id`, requestID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []SignCallbackStatus
	for rows.Next() {
		var c SignCallbackStatus
		var d, g sql.NullTime
		if err := rows.Scan(&c.Attempts, &d, &g, &c.LastError); err != nil {
			return nil, s.db.Err(err)
		}
		c.Delivered, c.GaveUp = d.Valid, g.Valid
		out = append(out, c)
	}
	return out, s.db.Err(rows.Err())
}
