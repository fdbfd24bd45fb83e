package signing

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/govsso/sso/db"
)

// store is every SQL statement on the signing_keys table; Manager holds the
// logic around them.
type store struct{ d *db.DB }

// keyColumns are the columns of a Key, in the order scanKey reads them.
const keyColumns = `id, algorithm, active, created_at, retired_at, retire_after, public_jwk`

// lock serializes key changes across nodes until the transaction ends.
// PostgreSQL needs an advisory lock (per schema, like the migration lock);
// SQLite's immediate transactions already hold the database's write lock.
func (s store) lock(ctx context.Context) error {
	if !db.InTransaction(ctx) {
		return errors.New("signing: key changes must run in a transaction")
	}
	if s.d.Dialect() != db.Postgres {
		return nil
	}
	if _, err := s.d.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('sso.signing.' || current_schema()))`); err != nil {
		return fmt.Errorf("take signing key lock: %w", err)
	}
	return nil
}

// hasActive reports whether alg has an active key.
func (s store) hasActive(ctx context.Context, alg string) (bool, error) {
	var n int
	err := s.d.QueryRow(ctx, `SELECT count(*) FROM signing_keys WHERE algorithm = ? AND active = ?`, alg, true).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look for an active %s key: %w", alg, s.d.Err(err))
	}
	return n > 0, nil
}

// insert stores a new active key with its sealed private key.
func (s store) insert(ctx context.Context, k *Key, sealed []byte) error {
	_, err := s.d.Exec(ctx, `INSERT INTO signing_keys (id, algorithm, private_key_enc, public_jwk, active, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		k.ID, k.Algorithm, sealed, string(k.PublicJWK), true, k.CreatedAt.UTC())
	if err != nil {
		return fmt.Errorf("store %s signing key %s: %w", k.Algorithm, k.ID, err)
	}
	return nil
}

// retireActive makes every active key inactive, published until retireAfter.
func (s store) retireActive(ctx context.Context, retiredAt, retireAfter time.Time) error {
	_, err := s.d.Exec(ctx, `UPDATE signing_keys SET active = ?, retired_at = ?, retire_after = ? WHERE active = ?`,
		false, retiredAt.UTC(), retireAfter.UTC(), true)
	if err != nil {
		return fmt.Errorf("retire active signing keys: %w", err)
	}
	return nil
}

// all returns every key, newest first.
func (s store) all(ctx context.Context) ([]*Key, error) {
	return s.keys(ctx, `SELECT `+keyColumns+` FROM signing_keys ORDER BY created_at DESC, id`)
}

// published returns the active keys and the retired ones still published at
// now, newest first.
func (s store) published(ctx context.Context, now time.Time) ([]*Key, error) {
	return s.keys(ctx, `SELECT `+keyColumns+` FROM signing_keys WHERE active = ? OR retire_after > ? ORDER BY created_at DESC, id`,
		true, now.UTC())
}

// active returns the active key of alg and its sealed private key.
func (s store) active(ctx context.Context, alg string) (*Key, []byte, error) {
	var sealed []byte
	k, err := scanKey(s.d.QueryRow(ctx, `SELECT `+keyColumns+`, private_key_enc FROM signing_keys WHERE algorithm = ? AND active = ?`, alg, true), &sealed)
	if err != nil {
		return nil, nil, fmt.Errorf("active %s signing key: %w", alg, s.d.Err(err))
	}
	return k, sealed, nil
}

// deleteRetiredBefore deletes the inactive keys whose retire_after is before t.
func (s store) deleteRetiredBefore(ctx context.Context, t time.Time) (int64, error) {
	res, err := s.d.Exec(ctx, `DELETE FROM signing_keys WHERE active = ? AND retire_after < ?`, false, t.UTC())
	if err != nil {
		return 0, fmt.Errorf("purge retired signing keys: %w", err)
	}
	return res.RowsAffected()
}

func (s store) keys(ctx context.Context, query string, args ...any) ([]*Key, error) {
	rows, err := s.d.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	defer rows.Close()
	var out []*Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list signing keys: %w", s.d.Err(err))
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list signing keys: %w", s.d.Err(err))
	}
	return out, nil
}

// scanKey reads keyColumns, then any extra columns into extra.
func scanKey(row interface{ Scan(...any) error }, extra ...any) (*Key, error) {
	k := &Key{}
	var retiredAt, retireAfter sql.NullTime
	var jwk string
	dest := append([]any{&k.ID, &k.Algorithm, &k.Active, &k.CreatedAt, &retiredAt, &retireAfter, &jwk}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	k.CreatedAt = k.CreatedAt.UTC()
	if retiredAt.Valid {
		k.RetiredAt = retiredAt.Time.UTC()
	}
	if retireAfter.Valid {
		k.RetireAfter = retireAfter.Time.UTC()
	}
	k.PublicJWK = json.RawMessage(jwk)
	return k, nil
}
