package signing

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/kek"
)

// purgeAfter is how long an expired key is kept after it left the JWKS, so
// that `sso keys list` can still explain a signature someone asks about.
const purgeAfter = 30 * 24 * time.Hour

// Manager generates, rotates, loads and publishes signing keys. It is safe
// for concurrent use, and several Managers (one per node) may share a
// database.
type Manager struct {
	store store
	kek   *kek.KEK

	// Every call reads the database, and Active decrypts the private key
	// each time. A short-TTL cache of the published keys and of the active
	// keys belongs here: Rotate keeps old keys published for longer than any
	// such TTL, so a node serving a stale entry stays correct.
}

// KeysInvalidation is the kind of cache invalidation (db.Invalidate) sent
// when the active keys change; nodes drop their cached keys.
const KeysInvalidation = "signing_keys"

// NewManager returns a Manager over the signing_keys table of d, sealing
// private keys with k.
func NewManager(d *db.DB, k *kek.KEK) *Manager {
	return &Manager{store: store{d: d}, kek: k}
}

// sealedKey is a generated key whose private half is ready to be stored.
type sealedKey struct {
	key    *Key
	sealed []byte
}

// newKey generates a key of alg and seals its private half. It runs before
// any lock is taken: RSA key generation can take a large fraction of a
// second, and other nodes should not wait for it.
func (m *Manager) newKey(alg string) (sealedKey, error) {
	k, der, err := generate(alg)
	if err != nil {
		return sealedKey{}, err
	}
	sealed, err := m.kek.Seal(der, aad(k.ID))
	clear(der)
	if err != nil {
		return sealedKey{}, fmt.Errorf("seal %s signing key: %w", alg, err)
	}
	return sealedKey{key: k, sealed: sealed}, nil
}

// insert stores s as created at now.
func (m *Manager) insert(ctx context.Context, s sealedKey, now time.Time) (*Key, error) {
	s.key.CreatedAt = now
	if err := m.store.insert(ctx, s.key, s.sealed); err != nil {
		return nil, err
	}
	return s.key, nil
}

// EnsureKeys creates an active key for every algorithm that has none and
// returns the keys it created (none on every start but the first). Nodes
// starting together on one database end up with exactly one active key per
// algorithm: the others discard the keys they generated.
func (m *Manager) EnsureKeys(ctx context.Context) ([]*Key, error) {
	fresh := map[string]sealedKey{}
	for _, alg := range Algorithms {
		ok, err := m.store.hasActive(ctx, alg)
		if err != nil {
			return nil, err
		}
		if ok {
			continue
		}
		if fresh[alg], err = m.newKey(alg); err != nil {
			return nil, err
		}
	}
	if len(fresh) == 0 {
		return nil, nil
	}
	var created []*Key
	err := m.store.d.InTx(ctx, func(ctx context.Context) error {
		if err := m.store.lock(ctx); err != nil {
			return err
		}
		now := nowMicro()
		for _, alg := range Algorithms {
			ok, err := m.store.hasActive(ctx, alg)
			if err != nil {
				return err
			}
			if ok { // another node got the lock first
				continue
			}
			s, ok := fresh[alg]
			if !ok { // its key disappeared between the two looks
				if s, err = m.newKey(alg); err != nil {
					return err
				}
			}
			k, err := m.insert(ctx, s, now)
			if err != nil {
				return err
			}
			created = append(created, k)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ensure signing keys: %w", err)
	}
	return created, nil
}

// Rotate makes a new key active for every algorithm and retires the keys
// they replace, keeping them published for keepPublished, which must be at
// least the lifetime of the longest-lived token they signed. It returns the
// new keys.
func (m *Manager) Rotate(ctx context.Context, keepPublished time.Duration) ([]*Key, error) {
	if keepPublished < 0 {
		return nil, fmt.Errorf("rotate signing keys: negative publication time %s", keepPublished)
	}
	fresh := make([]sealedKey, 0, len(Algorithms))
	for _, alg := range Algorithms {
		s, err := m.newKey(alg)
		if err != nil {
			return nil, err
		}
		fresh = append(fresh, s)
	}
	var created []*Key
	err := m.store.d.InTx(ctx, func(ctx context.Context) error {
		if err := m.store.lock(ctx); err != nil {
			return err
		}
		// The clock is read under the lock, so that of two rotations the one
		// that commits last has the newest keys.
		now := nowMicro()
		if err := m.store.retireActive(ctx, now, now.Add(keepPublished)); err != nil {
			return err
		}
		for _, s := range fresh {
			k, err := m.insert(ctx, s, now)
			if err != nil {
				return err
			}
			created = append(created, k)
		}
		return m.store.d.Invalidate(ctx, KeysInvalidation, "")
	})
	if err != nil {
		return nil, fmt.Errorf("rotate signing keys: %w", err)
	}
	return created, nil
}

// List returns every key, active, retired and expired, newest first and
// without private keys.
func (m *Manager) List(ctx context.Context) ([]*Key, error) {
	return m.store.all(ctx)
}

// Published returns the keys relying parties may meet at now: the active
// ones and the retired ones whose tokens may still be alive. Newest first,
// without private keys.
func (m *Manager) Published(ctx context.Context, now time.Time) ([]*Key, error) {
	return m.store.published(ctx, now)
}

// Active returns the active key of alg with its private key, or an error
// wrapping db.ErrNotFound when there is none, or kek.ErrDecrypt when the
// key-encryption key is not the one it was sealed with.
func (m *Manager) Active(ctx context.Context, alg string) (*Key, error) {
	k, sealed, err := m.store.active(ctx, alg)
	if err != nil {
		return nil, err
	}
	der, err := m.kek.Open(sealed, aad(k.ID))
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", k.ID, err)
	}
	k.private, err = parsePrivate(der, alg, k.ID)
	clear(der)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", k.ID, err)
	}
	return k, nil
}

// JWKS returns the JSON Web Key Set ({"keys":[...]}) of the keys published
// at now, each with kid, alg, use "sig", kty and its public parameters.
func (m *Manager) JWKS(ctx context.Context, now time.Time) ([]byte, error) {
	keys, err := m.Published(ctx, now)
	if err != nil {
		return nil, err
	}
	set := struct {
		Keys []json.RawMessage `json:"keys"`
	}{Keys: make([]json.RawMessage, 0, len(keys))}
	for _, k := range keys {
		if err := checkPublic(k.ID, k.PublicJWK); err != nil {
			return nil, err
		}
		set.Keys = append(set.Keys, k.PublicJWK)
	}
	return json.Marshal(set)
}

// PurgeRetired deletes the keys that left the JWKS more than 30 days before
// now and returns how many it deleted; they can no longer verify anything
// anyone holds.
func (m *Manager) PurgeRetired(ctx context.Context, now time.Time) (int64, error) {
	return m.store.deleteRetiredBefore(ctx, now.Add(-purgeAfter))
}

// nowMicro is the current time as the database stores it, so that a Key
// returned by EnsureKeys or Rotate equals the one List reads back.
func nowMicro() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
