package signing_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v3"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/kek"
	"github.com/govsso/sso/oauth/signing"
)

func newKEK(t testing.TB) *kek.KEK {
	t.Helper()
	b := make([]byte, kek.KeySize)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	k, err := kek.New(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// ensured returns a Manager whose database has one active key per algorithm.
func ensured(t *testing.T, d *db.DB) *signing.Manager {
	t.Helper()
	m := signing.NewManager(d, newKEK(t))
	if _, err := m.EnsureKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	return m
}

func list(t *testing.T, m *signing.Manager) []*signing.Key {
	t.Helper()
	keys, err := m.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func activeCount(t *testing.T, m *signing.Manager) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, k := range list(t, m) {
		if k.Active {
			n[k.Algorithm]++
		}
	}
	return n
}

// jwksKids returns the kids in the JWKS published at now.
func jwksKids(t *testing.T, m *signing.Manager, now time.Time) map[string]bool {
	t.Helper()
	body, err := m.JWKS(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("JWKS %s: %v", body, err)
	}
	out := map[string]bool{}
	for _, k := range set.Keys {
		out[k.KeyID] = true
	}
	return out
}

func TestEnsureKeysCreatesOncePerAlgorithm(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		m := signing.NewManager(d, newKEK(t))
		created, err := m.EnsureKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var algs []string
		for _, k := range created {
			algs = append(algs, k.Algorithm)
			if !k.Active || k.CreatedAt.IsZero() || !k.RetireAfter.IsZero() {
				t.Errorf("created key %+v", k)
			}
			var pub jose.JSONWebKey
			if err := pub.UnmarshalJSON(k.PublicJWK); err != nil {
				t.Fatal(err)
			}
			thumb, err := pub.Thumbprint(crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if want := base64.RawURLEncoding.EncodeToString(thumb); k.ID != want || pub.KeyID != want {
				t.Errorf("%s: kid %q (JWK %q), want the RFC 7638 thumbprint %q", k.Algorithm, k.ID, pub.KeyID, want)
			}
		}
		sort.Strings(algs)
		if len(algs) != 2 || algs[0] != signing.ES256 || algs[1] != signing.RS256 {
			t.Fatalf("first EnsureKeys created %v, want one ES256 and one RS256", algs)
		}
		again, err := m.EnsureKeys(ctx)
		if err != nil || len(again) != 0 {
			t.Fatalf("second EnsureKeys created %d keys, %v", len(again), err)
		}
		if n := len(list(t, m)); n != 2 {
			t.Fatalf("%d keys stored, want 2", n)
		}
	})
}

func TestConcurrentEnsureKeysOnSeveralNodes(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := context.Background()
			url := dbtest.URL(t, dialect)
			k := newKEK(t)
			first, err := db.Open(ctx, url, db.PoolOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer first.Close()
			if _, err := first.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			const nodes = 4
			var wg sync.WaitGroup
			errs := make(chan error, nodes)
			created := make(chan int, nodes)
			for range nodes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					d, err := db.Open(ctx, url, db.PoolOptions{})
					if err != nil {
						errs <- err
						return
					}
					defer d.Close()
					keys, err := signing.NewManager(d, k).EnsureKeys(ctx)
					if err != nil {
						errs <- err
					}
					created <- len(keys)
				}()
			}
			wg.Wait()
			close(errs)
			close(created)
			for err := range errs {
				t.Error(err)
			}
			total := 0
			for n := range created {
				total += n
			}
			m := signing.NewManager(first, k)
			if n := activeCount(t, m); n[signing.RS256] != 1 || n[signing.ES256] != 1 {
				t.Fatalf("active keys after concurrent starts: %v", n)
			}
			if stored := len(list(t, m)); stored != 2 || total != 2 {
				t.Fatalf("%d keys stored, %d reported created; want 2 and 2", stored, total)
			}
		})
	}
}

func TestOneActiveKeyPerAlgorithmIsEnforcedBySchema(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		ensured(t, d)
		_, err := d.Exec(ctx, `INSERT INTO signing_keys (id, algorithm, private_key_enc, public_jwk, active, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			"another-kid", signing.RS256, []byte{1}, "{}", true, time.Now().UTC())
		if !errors.Is(err, db.ErrConflict) {
			t.Fatalf("second active RS256 key: got %v, want ErrConflict", err)
		}
	})
}

func TestPrivateKeysAreSealed(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		m := ensured(t, d)
		stored := func(kid string) []byte {
			var b []byte
			if err := d.QueryRow(ctx, `SELECT private_key_enc FROM signing_keys WHERE id = ?`, kid).Scan(&b); err != nil {
				t.Fatal(err)
			}
			return b
		}
		for _, alg := range signing.Algorithms {
			active, err := m.Active(ctx, alg)
			if err != nil {
				t.Fatal(err)
			}
			der, err := x509.MarshalPKCS8PrivateKey(active.Signer())
			if err != nil {
				t.Fatal(err)
			}
			if b := stored(active.ID); bytes.Contains(b, der) || bytes.Contains(b, secretPart(t, active.Signer())) {
				t.Fatalf("%s: the private key is stored in clear", alg)
			}
			if _, err := signing.NewManager(d, newKEK(t)).Active(ctx, alg); !errors.Is(err, kek.ErrDecrypt) {
				t.Fatalf("%s under another key-encryption key: got %v, want ErrDecrypt", alg, err)
			}
		}
		// A sealed key copied to another row does not open there: it is
		// bound to its kid.
		rs, _ := m.Active(ctx, signing.RS256)
		es, _ := m.Active(ctx, signing.ES256)
		if _, err := d.Exec(ctx, `UPDATE signing_keys SET private_key_enc = ? WHERE id = ?`, stored(rs.ID), es.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Active(ctx, signing.ES256); !errors.Is(err, kek.ErrDecrypt) {
			t.Fatalf("sealed key moved to another row: got %v, want ErrDecrypt", err)
		}
	})
}

// secretPart is the private scalar or a prime of key.
func secretPart(t *testing.T, key crypto.Signer) []byte {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		b, err := k.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		return b
	case *rsa.PrivateKey:
		return k.Primes[0].Bytes()
	}
	t.Fatalf("unexpected key type %T", key)
	return nil
}

func TestKeyJSONHoldsNoPrivateMaterial(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		m := ensured(t, d)
		for _, alg := range signing.Algorithms {
			k, err := m.Active(context.Background(), alg)
			if err != nil {
				t.Fatal(err)
			}
			if k.Signer() == nil {
				t.Fatalf("%s: Active returned no private key", alg)
			}
			js, err := json.Marshal(k)
			if err != nil {
				t.Fatal(err)
			}
			var fields map[string]any
			if err := json.Unmarshal(js, &fields); err != nil {
				t.Fatal(err)
			}
			for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "private"} {
				if _, ok := fields[private]; ok {
					t.Errorf("%s: JSON of a key has %q: %s", alg, private, js)
				}
			}
			if bytes.Contains(js, []byte(base64.RawURLEncoding.EncodeToString(secretPart(t, k.Signer())))) {
				t.Errorf("%s: JSON of a key holds the private key: %s", alg, js)
			}
			assertPublicJWK(t, k.PublicJWK)
		}
		for _, k := range list(t, m) {
			if k.Signer() != nil {
				t.Errorf("List returned the private key of %s", k.ID)
			}
		}
	})
}

// assertPublicJWK checks that raw has the members of a public signing key
// and nothing else.
func assertPublicJWK(t *testing.T, raw []byte) {
	t.Helper()
	var members map[string]any
	if err := json.Unmarshal(raw, &members); err != nil {
		t.Fatalf("JWK %s: %v", raw, err)
	}
	allowed := map[string]bool{"kty": true, "kid": true, "alg": true, "use": true, "n": true, "e": true, "crv": true, "x": true, "y": true}
	for name := range members {
		if !allowed[name] {
			t.Errorf("JWK has member %q: %s", name, raw)
		}
	}
	for _, name := range []string{"kty", "kid", "alg", "use"} {
		if members[name] == nil {
			t.Errorf("JWK lacks %q: %s", name, raw)
		}
	}
	if members["use"] != "sig" {
		t.Errorf("JWK use %v, want sig", members["use"])
	}
}

func TestJWKSHasOnlyPublicParameters(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		m := ensured(t, d)
		body, err := m.JWKS(context.Background(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		var set struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal(body, &set); err != nil {
			t.Fatal(err)
		}
		if len(set.Keys) != 2 {
			t.Fatalf("JWKS has %d keys, want 2: %s", len(set.Keys), body)
		}
		for _, k := range set.Keys {
			assertPublicJWK(t, k)
		}
	})
}

func TestJWKSRefusesTamperedRowWithPrivateKey(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		m := ensured(t, d)
		k, err := m.Active(ctx, signing.ES256)
		if err != nil {
			t.Fatal(err)
		}
		private, err := k.JSONWebKey().MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Exec(ctx, `UPDATE signing_keys SET public_jwk = ? WHERE id = ?`, string(private), k.ID); err != nil {
			t.Fatal(err)
		}
		body, err := m.JWKS(ctx, time.Now())
		if err == nil || body != nil {
			t.Fatalf("JWKS with a private key in a row: %s, %v", body, err)
		}
	})
}

func TestRotateKeepsOldKeyPublishedUntilRetireAfter(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		m := ensured(t, d)
		old := map[string]*signing.Key{}
		for _, k := range list(t, m) {
			old[k.Algorithm] = k
		}
		const keep = time.Hour
		fresh, err := m.Rotate(ctx, keep)
		if err != nil || len(fresh) != 2 {
			t.Fatalf("rotate: %d keys, %v", len(fresh), err)
		}
		for _, k := range fresh {
			active, err := m.Active(ctx, k.Algorithm)
			if err != nil {
				t.Fatal(err)
			}
			if active.ID != k.ID || k.ID == old[k.Algorithm].ID {
				t.Fatalf("%s: active %s, rotated to %s, old %s", k.Algorithm, active.ID, k.ID, old[k.Algorithm].ID)
			}
		}
		if n := activeCount(t, m); n[signing.RS256] != 1 || n[signing.ES256] != 1 {
			t.Fatalf("active keys after rotation: %v", n)
		}
		var retireAfter time.Time
		for _, k := range list(t, m) {
			if k.ID != old[k.Algorithm].ID {
				continue
			}
			if k.Active || k.RetiredAt.IsZero() || !k.RetireAfter.Equal(k.RetiredAt.Add(keep)) {
				t.Fatalf("retired key %+v", k)
			}
			retireAfter = k.RetireAfter
		}
		tests := []struct {
			name    string
			now     time.Time
			wantOld bool
		}{
			{"right after rotation", retireAfter.Add(-keep), true},
			{"just before retire_after", retireAfter.Add(-time.Microsecond), true},
			{"at retire_after", retireAfter, false},
			{"long after", retireAfter.Add(24 * time.Hour), false},
		}
		for _, tc := range tests {
			kids := jwksKids(t, m, tc.now)
			for _, k := range fresh {
				if !kids[k.ID] {
					t.Errorf("%s: new %s key %s not published", tc.name, k.Algorithm, k.ID)
				}
			}
			for alg, k := range old {
				if kids[k.ID] != tc.wantOld {
					t.Errorf("%s: old %s key published = %v, want %v", tc.name, alg, kids[k.ID], tc.wantOld)
				}
			}
		}
	})
}

func TestRotateRefusesNegativePublication(t *testing.T) {
	d := dbtest.Open(t, db.SQLite)
	m := ensured(t, d)
	before := list(t, m)
	if _, err := m.Rotate(context.Background(), -time.Hour); err == nil {
		t.Fatal("Rotate with a negative publication time succeeded")
	}
	if after := list(t, m); len(after) != len(before) {
		t.Fatalf("a refused rotation changed the keys: %d -> %d", len(before), len(after))
	}
}

func TestListNewestFirstWithEveryState(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		m := ensured(t, d)
		expired := list(t, m)
		if _, err := m.Rotate(ctx, 0); err != nil { // the first keys leave the JWKS at once
			t.Fatal(err)
		}
		current, err := m.Rotate(ctx, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		keys := list(t, m)
		if len(keys) != 6 {
			t.Fatalf("List returned %d keys, want 6", len(keys))
		}
		for i := 1; i < len(keys); i++ {
			if keys[i].CreatedAt.After(keys[i-1].CreatedAt) {
				t.Fatalf("List not newest first: %s at %d after %s", keys[i].CreatedAt, i, keys[i-1].CreatedAt)
			}
		}
		wantFirst := map[string]bool{current[0].ID: true, current[1].ID: true}
		if !wantFirst[keys[0].ID] || !wantFirst[keys[1].ID] || !keys[0].Active || !keys[1].Active {
			t.Fatalf("the newest keys are not listed first: %s, %s", keys[0].ID, keys[1].ID)
		}
		published, err := m.Published(ctx, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(published) != 4 {
			t.Fatalf("Published returned %d keys, want the 2 active and the 2 retired within the hour", len(published))
		}
		for _, p := range published {
			for _, e := range expired {
				if p.ID == e.ID {
					t.Fatalf("expired key %s still published", e.ID)
				}
			}
		}
	})
}

func TestPurgeRetiredDeletesLongExpiredKeysOnly(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		m := ensured(t, d)
		if _, err := m.Rotate(ctx, time.Hour); err != nil {
			t.Fatal(err)
		}
		var retireAfter time.Time
		for _, k := range list(t, m) {
			if !k.Active {
				retireAfter = k.RetireAfter
			}
		}
		tests := []struct {
			name string
			now  time.Time
			want int64
		}{
			{"still published", retireAfter.Add(-time.Minute), 0},
			{"expired 29 days ago", retireAfter.Add(29 * 24 * time.Hour), 0},
			{"expired 31 days ago", retireAfter.Add(31 * 24 * time.Hour), 2},
			{"nothing left to purge", retireAfter.Add(31 * 24 * time.Hour), 0},
		}
		for _, tc := range tests {
			n, err := m.PurgeRetired(ctx, tc.now)
			if err != nil || n != tc.want {
				t.Fatalf("%s: purged %d, %v; want %d", tc.name, n, err, tc.want)
			}
		}
		if n := activeCount(t, m); len(list(t, m)) != 2 || n[signing.RS256] != 1 || n[signing.ES256] != 1 {
			t.Fatalf("after purge: %d keys, active %v", len(list(t, m)), n)
		}
	})
}

func TestSignaturesVerifyWithPublishedKeys(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		m := ensured(t, d)
		body, err := m.JWKS(ctx, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(body, &set); err != nil {
			t.Fatal(err)
		}
		digest := sha256.Sum256([]byte("header.payload"))
		for _, alg := range signing.Algorithms {
			k, err := m.Active(ctx, alg)
			if err != nil {
				t.Fatal(err)
			}
			pub := set.Key(k.ID)
			if len(pub) != 1 || pub[0].Algorithm != alg || pub[0].Use != "sig" {
				t.Fatalf("%s: published %+v", alg, pub)
			}
			sig, err := k.Signer().Sign(rand.Reader, digest[:], crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			switch p := pub[0].Key.(type) {
			case *rsa.PublicKey:
				if err := rsa.VerifyPKCS1v15(p, crypto.SHA256, digest[:], sig); err != nil {
					t.Fatalf("RS256: %v", err)
				}
			case *ecdsa.PublicKey:
				if !ecdsa.VerifyASN1(p, digest[:], sig) {
					t.Fatal("ES256 signature does not verify")
				}
			default:
				t.Fatalf("%s: unexpected key type %T", alg, p)
			}
			assertJOSESignature(t, k, pub[0])
		}
	})
}

// assertJOSESignature signs as fosite does, with k.JSONWebKey(), and checks
// that the header names the key and the published key verifies it.
func assertJOSESignature(t *testing.T, k *signing.Key, pub jose.JSONWebKey) {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.Algorithm), Key: k.JSONWebKey()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign([]byte(`{"sub":"test"}`))
	if err != nil {
		t.Fatal(err)
	}
	compact, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jose.ParseSigned(compact)
	if err != nil {
		t.Fatal(err)
	}
	if h := parsed.Signatures[0].Header; h.KeyID != k.ID || h.Algorithm != k.Algorithm {
		t.Fatalf("JWS header kid %q alg %q, want %q %q", h.KeyID, h.Algorithm, k.ID, k.Algorithm)
	}
	if _, err := parsed.Verify(pub); err != nil {
		t.Fatalf("%s JWS does not verify with the published key: %v", k.Algorithm, err)
	}
}

func TestActiveWithoutKeyIsNotFound(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		m := signing.NewManager(d, newKEK(t))
		if _, err := m.Active(ctx, signing.RS256); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("empty database: %v", err)
		}
		if _, err := m.EnsureKeys(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Active(ctx, "HS256"); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("unknown algorithm: %v", err)
		}
	})
}
