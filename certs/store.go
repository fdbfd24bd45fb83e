package certs

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/govsso/sso/db"
)

// store holds all SQL of the certs package.
type store struct{ db *db.DB }

const certColumns = `id, serial, kind, subject, issuer, not_before, not_after, status,
	revoked_at, revocation_reason, der, owner_user_id, created_at`

func (s *store) insert(ctx context.Context, c *Certificate, sealedKey []byte) error {
	return s.db.InTx(ctx, func(ctx context.Context) error {
		_, err := s.db.Exec(ctx, `INSERT INTO certificates (`+certColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, 0, ?, ?, ?)`,
			c.ID, c.Serial, string(c.Kind), c.Subject, c.Issuer, c.NotBefore.UTC(), c.NotAfter.UTC(),
			string(StatusActive), c.DER, c.OwnerUserID, c.CreatedAt.UTC())
		if err != nil {
			return fmt.Errorf("certs: insert certificate: %w", err)
		}
		if sealedKey == nil {
			return nil
		}
		_, err = s.db.Exec(ctx, `INSERT INTO certificate_keys (certificate_id, sealed_key, created_at) VALUES (?, ?, ?)`,
			c.ID, sealedKey, c.CreatedAt.UTC())
		if err != nil {
			return fmt.Errorf("certs: insert key: %w", err)
		}
		return nil
	})
}

func (s *store) byID(ctx context.Context, id string) (*Certificate, error) {
	return s.scanOne(s.db.QueryRow(ctx, `SELECT `+certColumns+` FROM certificates WHERE id = ?`, id))
}

func (s *store) bySerial(ctx context.Context, serial string) (*Certificate, error) {
	return s.scanOne(s.db.QueryRow(ctx, `SELECT `+certColumns+` FROM certificates WHERE serial = ?`, serial))
}

// byKind returns the newest certificate of a kind; used for the root and the issuing CA.
func (s *store) byKind(ctx context.Context, k Kind) (*Certificate, error) {
	return s.scanOne(s.db.QueryRow(ctx, `SELECT `+certColumns+` FROM certificates
		WHERE kind = ? ORDER BY created_at DESC, id DESC LIMIT 1`, string(k)))
}

func (s *store) list(ctx context.Context) ([]*Certificate, error) {
	return s.scanAll(ctx, `SELECT `+certColumns+` FROM certificates ORDER BY created_at, id`)
}

// activeOwnedBy lists a person's active end-entity certificates.
func (s *store) activeOwnedBy(ctx context.Context, userID string) ([]*Certificate, error) {
	return s.scanAll(ctx, `SELECT `+certColumns+` FROM certificates
		WHERE owner_user_id = ? AND status = 'active' AND kind IN ('user', 'org') ORDER BY created_at, id`, userID)
}

// deleteOwnedKeys destroys the private keys of a person's end-entity
// certificates and says how many there were.
func (s *store) deleteOwnedKeys(ctx context.Context, userID string) (int, error) {
	res, err := s.db.Exec(ctx, `DELETE FROM certificate_keys WHERE certificate_id IN
		(SELECT id FROM certificates WHERE owner_user_id = ? AND kind IN ('user', 'org'))`, userID)
	if err != nil {
		return 0, fmt.Errorf("certs: destroy keys of %s: %w", userID, err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// revokedEndEntities lists what the issuing CA's CRL must name.
func (s *store) revokedEndEntities(ctx context.Context) ([]*Certificate, error) {
	return s.scanAll(ctx, `SELECT `+certColumns+` FROM certificates
		WHERE status = 'revoked' AND kind IN ('user', 'org') ORDER BY revoked_at, id`)
}

// revoke marks an active certificate revoked; ErrNotFound when there is no
// such active certificate.
func (s *store) revoke(ctx context.Context, serial string, at time.Time, reason int) error {
	return s.db.ExecOne(ctx, `UPDATE certificates SET status = 'revoked', revoked_at = ?, revocation_reason = ?
		WHERE serial = ? AND status = 'active'`, at.UTC(), reason, serial)
}

func (s *store) sealedKey(ctx context.Context, certID string) ([]byte, error) {
	var sealed []byte
	err := s.db.Err(s.db.QueryRow(ctx, `SELECT sealed_key FROM certificate_keys WHERE certificate_id = ?`, certID).Scan(&sealed))
	return sealed, err
}

// crl returns the stored CRL of an issuer and its number.
func (s *store) crl(ctx context.Context, issuerID string) (der []byte, number int64, err error) {
	err = s.db.Err(s.db.QueryRow(ctx, `SELECT der, number FROM certificate_crls WHERE issuer_id = ?`, issuerID).Scan(&der, &number))
	return der, number, err
}

// crlNumberForUpdate locks the issuer's CRL row (when there is one) so that
// two revocations do not publish the same CRL number.
func (s *store) crlNumberForUpdate(ctx context.Context, issuerID string) (int64, error) {
	var n int64
	err := s.db.Err(s.db.QueryRow(ctx, `SELECT number FROM certificate_crls WHERE issuer_id = ?`+s.db.ForUpdate(), issuerID).Scan(&n))
	return n, err
}

// crlForUpdate locks the issuer's CRL row and says when it was signed.
func (s *store) crlForUpdate(ctx context.Context, issuerID string) (number int64, thisUpdate time.Time, err error) {
	err = s.db.Err(s.db.QueryRow(ctx, `SELECT number, this_update FROM certificate_crls WHERE issuer_id = ?`+s.db.ForUpdate(), issuerID).Scan(&number, &thisUpdate))
	return number, thisUpdate.UTC(), err
}

func (s *store) saveCRL(ctx context.Context, issuerID string, number int64, der []byte, thisUpdate time.Time) error {
	_, err := s.db.Exec(ctx, `INSERT INTO certificate_crls (issuer_id, number, der, this_update) VALUES (?, ?, ?, ?)
		ON CONFLICT (issuer_id) DO UPDATE SET number = excluded.number, der = excluded.der, this_update = excluded.this_update`,
		issuerID, number, der, thisUpdate.UTC())
	if err != nil {
		return fmt.Errorf("certs: save crl: %w", err)
	}
	return nil
}

type rowScanner interface{ Scan(dest ...any) error }

func (s *store) scanOne(row rowScanner) (*Certificate, error) {
	c, err := scanCert(row)
	if err != nil {
		return nil, s.db.Err(err)
	}
	return c, nil
}

func (s *store) scanAll(ctx context.Context, query string, args ...any) ([]*Certificate, error) {
	rows, err := s.db.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Certificate
	for rows.Next() {
		c, err := scanCert(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func scanCert(row rowScanner) (*Certificate, error) {
	var c Certificate
	var kind, status string
	var revokedAt sql.NullTime
	err := row.Scan(&c.ID, &c.Serial, &kind, &c.Subject, &c.Issuer, &c.NotBefore, &c.NotAfter, &status,
		&revokedAt, &c.RevocationReason, &c.DER, &c.OwnerUserID, &c.CreatedAt)
	if err != nil {
		return nil, err
	}
	c.Kind, c.Status = Kind(kind), Status(status)
	c.NotBefore, c.NotAfter, c.CreatedAt = c.NotBefore.UTC(), c.NotAfter.UTC(), c.CreatedAt.UTC()
	if revokedAt.Valid {
		t := revokedAt.Time.UTC()
		c.RevokedAt = &t
	}
	return &c, nil
}
