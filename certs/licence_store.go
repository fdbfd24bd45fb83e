package certs

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/govsso/sso/db"
)

// licenceStore holds all SQL of the licence service.
type licenceStore struct{ db *db.DB }

func (s *licenceStore) insertType(ctx context.Context, t *LicenceType) error {
	fields, err := json.Marshal(t.Fields)
	if err != nil {
		return err
	}
	_, err = s.db.Exec(ctx, `INSERT INTO licence_types (type_code, name, defining_body_credit_code, fields, created_at)
		VALUES (?, ?, ?, ?, ?)`, t.TypeCode, t.Name, t.DefiningBodyCreditCode, string(fields), t.CreatedAt.UTC())
	if err != nil {
		return fmt.Errorf("certs: insert licence type %s: %w", t.TypeCode, err)
	}
	return nil
}

func (s *licenceStore) typeByCode(ctx context.Context, code string) (*LicenceType, error) {
	var t LicenceType
	var fields string
	err := s.db.Err(s.db.QueryRow(ctx, `SELECT type_code, name, defining_body_credit_code, fields, created_at
		FROM licence_types WHERE type_code = ?`, code).Scan(&t.TypeCode, &t.Name, &t.DefiningBodyCreditCode, &fields, &t.CreatedAt))
	if err != nil {
		return nil, err
	}
	t.CreatedAt = t.CreatedAt.UTC()
	if err := json.Unmarshal([]byte(fields), &t.Fields); err != nil {
		return nil, fmt.Errorf("certs: licence type %s fields: %w", code, err)
	}
	return &t, nil
}

func (s *licenceStore) listTypes(ctx context.Context) ([]*LicenceType, error) {
	rows, err := s.db.Query(ctx, `SELECT type_code, name, defining_body_credit_code, fields, created_at
		FROM licence_types ORDER BY type_code`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*LicenceType
	for rows.Next() {
		var t LicenceType
		var fields string
		if err := rows.Scan(&t.TypeCode, &t.Name, &t.DefiningBodyCreditCode, &fields, &t.CreatedAt); err != nil {
			return nil, err
		}
		t.CreatedAt = t.CreatedAt.UTC()
		if err := json.Unmarshal([]byte(fields), &t.Fields); err != nil {
			return nil, fmt.Errorf("certs: licence type %s fields: %w", t.TypeCode, err)
		}
		out = append(out, &t)
	}
	return out, rows.Err()
}

// nextSerial counts the licences of a type, issuer and year; the upsert
// serialises concurrent issuers on the counter row.
func (s *licenceStore) nextSerial(ctx context.Context, typeCode, issuer string, year int) (int64, error) {
	var n int64
	err := s.db.Err(s.db.QueryRow(ctx, `INSERT INTO licence_serials (type_code, issuer_credit_code, year, last) VALUES (?, ?, ?, 1)
		ON CONFLICT (type_code, issuer_credit_code, year) DO UPDATE SET last = licence_serials.last + 1
		RETURNING last`, typeCode, issuer, year).Scan(&n))
	if err != nil {
		return 0, fmt.Errorf("certs: next licence serial: %w", err)
	}
	return n, nil
}

func (s *licenceStore) issuerCertificate(ctx context.Context, issuer string) (string, error) {
	var id string
	err := s.db.Err(s.db.QueryRow(ctx, `SELECT certificate_id FROM licence_issuer_certificates WHERE issuer_credit_code = ?`, issuer).Scan(&id))
	return id, err
}

func (s *licenceStore) setIssuerCertificate(ctx context.Context, issuer, certID string) error {
	_, err := s.db.Exec(ctx, `INSERT INTO licence_issuer_certificates (issuer_credit_code, certificate_id) VALUES (?, ?)
		ON CONFLICT (issuer_credit_code) DO UPDATE SET certificate_id = excluded.certificate_id`, issuer, certID)
	if err != nil {
		return fmt.Errorf("certs: remember issuer certificate: %w", err)
	}
	return nil
}

const licenceColumns = `identifier, type_code, serial, version, previous_identifier, superseded_by, licence_name,
	licence_number, holder_name, holder_id_type, holder_id_enc, holder_id_index, issuer_name, issuer_credit_code,
	issue_date, valid_from, valid_to, fields, status, status_reason, status_at, signed_data, signature,
	certificate_id, client_id, created_at`

func (s *licenceStore) insertLicence(ctx context.Context, l *Licence, holderIndex string) error {
	fields, err := json.Marshal(l.Fields)
	if err != nil {
		return err
	}
	_, err = s.db.Exec(ctx, `INSERT INTO licences (`+licenceColumns+`)
		VALUES (?, ?, ?, ?, ?, '', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', NULL, ?, ?, ?, ?, ?)`,
		l.Identifier, l.TypeCode, l.Serial, l.Version, l.PreviousIdentifier, l.LicenceName,
		l.LicenceNumber, l.HolderName, l.HolderIDType, l.holderIDEnc, holderIndex, l.IssuerName, l.IssuerCreditCode,
		l.IssueDate, l.ValidFrom, l.ValidTo, string(fields), string(l.Status), l.SignedData, l.Signature,
		l.CertificateID, l.ClientID, l.CreatedAt.UTC())
	if err != nil {
		return fmt.Errorf("certs: insert licence %s: %w", l.Identifier, err)
	}
	return nil
}

func (s *licenceStore) licence(ctx context.Context, identifier string) (*Licence, error) {
	return s.scanLicence(s.db.QueryRow(ctx, `SELECT `+licenceColumns+` FROM licences WHERE identifier = ?`, identifier))
}

func (s *licenceStore) licenceForUpdate(ctx context.Context, identifier string) (*Licence, error) {
	return s.scanLicence(s.db.QueryRow(ctx, `SELECT `+licenceColumns+` FROM licences WHERE identifier = ?`+s.db.ForUpdate(), identifier))
}

// setStatus records a lifecycle change; supersededBy is set on renewal only.
func (s *licenceStore) setStatus(ctx context.Context, identifier string, st LicenceStatus, reason string, at time.Time, supersededBy string) error {
	return s.db.ExecOne(ctx, `UPDATE licences SET status = ?, status_reason = ?, status_at = ?, superseded_by = ?
		WHERE identifier = ?`, string(st), reason, at.UTC(), supersededBy, identifier)
}

func (s *licenceStore) scanLicence(row rowScanner) (*Licence, error) {
	var l Licence
	var status, fields, holderIndex string
	var statusAt sql.NullTime
	err := row.Scan(&l.Identifier, &l.TypeCode, &l.Serial, &l.Version, &l.PreviousIdentifier, &l.SupersededBy, &l.LicenceName,
		&l.LicenceNumber, &l.HolderName, &l.HolderIDType, &l.holderIDEnc, &holderIndex, &l.IssuerName, &l.IssuerCreditCode,
		&l.IssueDate, &l.ValidFrom, &l.ValidTo, &fields, &status, &l.StatusReason, &statusAt, &l.SignedData, &l.Signature,
		&l.CertificateID, &l.ClientID, &l.CreatedAt)
	if err != nil {
		return nil, s.db.Err(err)
	}
	l.Status, l.CreatedAt = LicenceStatus(status), l.CreatedAt.UTC()
	if statusAt.Valid {
		t := statusAt.Time.UTC()
		l.StatusAt = &t
	}
	if err := json.Unmarshal([]byte(fields), &l.Fields); err != nil {
		return nil, fmt.Errorf("certs: licence %s fields: %w", l.Identifier, err)
	}
	return &l, nil
}

// byHolder lists the current versions of the licences of a holder index.
func (s *licenceStore) byHolder(ctx context.Context, index string) ([]*Licence, error) {
	rows, err := s.db.Query(ctx, `SELECT `+licenceColumns+` FROM licences
		WHERE holder_id_index = ? AND superseded_by = '' ORDER BY created_at DESC, identifier`, index)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*Licence{}
	for rows.Next() {
		lic, err := s.scanLicence(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, lic)
	}
	return out, rows.Err()
}

func (s *licenceStore) heldBy(ctx context.Context, identifier, index string) (bool, error) {
	var n int
	err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM licences WHERE identifier = ? AND holder_id_index = ?`, identifier, index).Scan(&n)
	return n == 1, err
}

func (s *licenceStore) grantConsent(ctx context.Context, userID, clientID, typeCode string, at time.Time) error {
	_, err := s.db.Exec(ctx, `INSERT INTO licence_consents (user_id, client_id, type_code, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id, client_id, type_code) DO NOTHING`, userID, clientID, typeCode, at.UTC())
	if err != nil {
		return fmt.Errorf("certs: grant licence consent: %w", err)
	}
	return nil
}

// revokeConsent deletes a consent; db.ErrNotFound when there is none.
func (s *licenceStore) revokeConsent(ctx context.Context, userID, clientID, typeCode string) error {
	return s.db.ExecOne(ctx, `DELETE FROM licence_consents WHERE user_id = ? AND client_id = ? AND type_code = ?`, userID, clientID, typeCode)
}

func (s *licenceStore) consentsOf(ctx context.Context, userID string) ([]LicenceConsent, error) {
	rows, err := s.db.Query(ctx, `SELECT client_id, type_code, created_at FROM licence_consents
		WHERE user_id = ? ORDER BY created_at, client_id, type_code`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []LicenceConsent{}
	for rows.Next() {
		var c LicenceConsent
		if err := rows.Scan(&c.ClientID, &c.TypeCode, &c.CreatedAt); err != nil {
			return nil, err
		}
		c.CreatedAt = c.CreatedAt.UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}
