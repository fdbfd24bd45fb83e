package signing

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/kek"
)

// Manager generates, rotates, loads and publishes signing keys.
//
// It reads the database on every call; a short-lived cache for the JWKS and
// the active keys belongs here when several nodes make it worth it.
type Manager struct {
	d   *db.DB
	kek *kek.KEK
}

// NewManager returns a Manager over the signing_keys table.
func NewManager(d *db.DB, k *kek.KEK) *Manager { return &Manager{d: d, kek: k} }

const keyColumns = `id, algorithm, active, created_at, retired_at, retire_after, public_jwk`

// lock serializes key changes across nodes: PostgreSQL needs an advisory
// lock, SQLite's immediate transactions already hold the write lock.
func (m *Manager) lock(ctx context.Context) error {
	if m.d.Dialect() != db.Postgres {
		return nil
	}
	_, err := m.d.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('sso.signing.' || current_schema()))`)
	return err
}

// EnsureKeys creates an active key for every algorithm that has none and
// returns the keys it created. Nodes starting together end up with exactly
// one active key per algorithm.
func (m *Manager) EnsureKeys(ctx context.Context) ([]*Key, error) {
	var created []*Key
	err := m.d.InTx(ctx, func(ctx context.Context) error {
		created = nil
		if err := m.lock(ctx); err != nil {
			return err
		}
		for _, alg := range Algorithms {
			var n int
			if err := m.d.QueryRow(ctx, `SELECT count(*) FROM signing_keys WHERE algorithm = ? AND active = ?`, alg, true).Scan(&n); err != nil {
				return m.d.Err(err)
			}
			if n > 0 {
				continue
			}
			k, err := m.insertNew(ctx, alg, time.Now())
			if err != nil {
				return err
			}
			created = append(created, k)
		}
		return nil
	})
	return created, err
}

// Rotate retires the active key of every algorithm, keeping it published for
// keepPublished, and makes a new key active. It returns the new keys.
func (m *Manager) Rotate(ctx context.Context, keepPublished time.Duration) ([]*Key, error) {
	var created []*Key
	err := m.d.InTx(ctx, func(ctx context.Context) error {
		created = nil
		if err := m.lock(ctx); err != nil {
			return err
		}
		now := time.Now().UTC().Truncate(time.Microsecond)
		if _, err := m.d.Exec(ctx, `UPDATE signing_keys SET active = ?, retired_at = ?, retire_after = ? WHERE active = ?`,
			false, now, now.Add(keepPublished), true); err != nil {
			return err
		}
		for _, alg := range Algorithms {
			k, err := m.insertNew(ctx, alg, now)
			if err != nil {
				return err
			}
			created = append(created, k)
		}
		return nil
	})
	return created, err
}

func (m *Manager) insertNew(ctx context.Context, alg string, now time.Time) (*Key, error) {
	k, der, err := generate(alg, now)
	if err != nil {
		return nil, err
	}
	sealed, err := m.kek.Seal(der, aad(k.ID))
	if err != nil {
		return nil, err
	}
	_, err = m.d.Exec(ctx, `INSERT INTO signing_keys (id, algorithm, private_key_enc, public_jwk, active, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		k.ID, k.Algorithm, sealed, string(k.PublicJWK), true, k.CreatedAt)
	if err != nil {
		return nil, fmt.Errorf("store signing key: %w", err)
	}
	return k, nil
}

// List returns every key, newest first, without private keys.
func (m *Manager) List(ctx context.Context) ([]*Key, error) {
	return m.query(ctx, `SELECT `+keyColumns+` FROM signing_keys ORDER BY created_at DESC, id`)
}

// Published returns the keys relying parties may meet: the active ones and
// the retired ones whose tokens may still be alive at now.
func (m *Manager) Published(ctx context.Context, now time.Time) ([]*Key, error) {
	return m.query(ctx, `SELECT `+keyColumns+` FROM signing_keys WHERE active = ? OR retire_after > ? ORDER BY created_at DESC, id`, true, now.UTC())
}

// Active returns the active key of alg with its private key, or an error
// wrapping db.ErrNotFound.
func (m *Manager) Active(ctx context.Context, alg string) (*Key, error) {
	var sealed []byte
	k := &Key{}
	var retiredAt, retireAfter sql.NullTime
	var jwk string
	err := m.d.QueryRow(ctx, `SELECT `+keyColumns+`, private_key_enc FROM signing_keys WHERE algorithm = ? AND active = ? ORDER BY created_at DESC LIMIT 1`, alg, true).
		Scan(&k.ID, &k.Algorithm, &k.Active, &k.CreatedAt, &retiredAt, &retireAfter, &jwk, &sealed)
	if err != nil {
		return nil, fmt.Errorf("active %s key: %w", alg, m.d.Err(err))
	}
	k.CreatedAt = k.CreatedAt.UTC()
	k.PublicJWK = json.RawMessage(jwk)
	der, err := m.kek.Open(sealed, aad(k.ID))
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", k.ID, err)
	}
	if k.private, err = parsePrivate(der, alg); err != nil {
		return nil, fmt.Errorf("signing key %s: %w", k.ID, err)
	}
	if !thumbprintOK(k.ID, k.private.Public()) {
		return nil, fmt.Errorf("signing key %s: kid does not match the key", k.ID)
	}
	return k, nil
}

// JWKS returns the JSON Web Key Set of the published public keys.
func (m *Manager) JWKS(ctx context.Context, now time.Time) ([]byte, error) {
	keys, err := m.Published(ctx, now)
	if err != nil {
		return nil, err
	}
	set := struct {
		Keys []json.RawMessage `json:"keys"`
	}{Keys: []json.RawMessage{}}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.PublicJWK)
	}
	return json.Marshal(set)
}

// PurgeExpired deletes retired keys that left the JWKS more than a month
// before now; they can no longer verify anything anyone holds.
func (m *Manager) PurgeExpired(ctx context.Context, now time.Time) (int64, error) {
	res, err := m.d.Exec(ctx, `DELETE FROM signing_keys WHERE active = ? AND retire_after < ?`, false, now.UTC().Add(-30*24*time.Hour))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (m *Manager) query(ctx context.Context, q string, args ...any) ([]*Key, error) {
	rows, err := m.d.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Key
	for rows.Next() {
		k := &Key{}
		var retiredAt, retireAfter sql.NullTime
		var jwk string
		if err := rows.Scan(&k.ID, &k.Algorithm, &k.Active, &k.CreatedAt, &retiredAt, &retireAfter, &jwk); err != nil {
			return nil, m.d.Err(err)
		}
		k.CreatedAt = k.CreatedAt.UTC()
		if retiredAt.Valid {
			k.RetiredAt = retiredAt.Time.UTC()
		}
		if retireAfter.Valid {
			k.RetireAfter = retireAfter.Time.UTC()
		}
		k.PublicJWK = json.RawMessage(jwk)
		out = append(out, k)
	}
	return out, m.d.Err(rows.Err())
}
