package signing_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
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
	b := make([]byte, kek.KeySize)
	rand.Read(b)
	k, err := kek.New(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func activeCount(t *testing.T, m *signing.Manager) map[string]int {
	t.Helper()
	keys, err := m.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, k := range keys {
		if k.Active {
			n[k.Algorithm]++
		}
	}
	return n
}

func TestEnsureKeysCreatesOncePerAlgorithm(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		m := signing.NewManager(d, newKEK(t))
		created, err := m.EnsureKeys(context.Background())
		if err != nil || len(created) != 2 {
			t.Fatalf("first EnsureKeys: %d keys, %v", len(created), err)
		}
		again, err := m.EnsureKeys(context.Background())
		if err != nil || len(again) != 0 {
			t.Fatalf("second EnsureKeys created %d keys, %v", len(again), err)
		}
		if n := activeCount(t, m); n["RS256"] != 1 || n["ES256"] != 1 {
			t.Fatalf("active keys: %v", n)
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
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for i := 0; i < 4; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					d, err := db.Open(ctx, url, db.PoolOptions{})
					if err != nil {
						errs <- err
						return
					}
					defer d.Close()
					if _, err := signing.NewManager(d, k).EnsureKeys(ctx); err != nil {
						errs <- err
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if n := activeCount(t, signing.NewManager(first, k)); n["RS256"] != 1 || n["ES256"] != 1 {
				t.Fatalf("active keys after concurrent starts: %v", n)
			}
		})
	}
}

func TestPrivateKeysAreSealed(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		m := signing.NewManager(d, newKEK(t))
		if _, err := m.EnsureKeys(ctx); err != nil {
			t.Fatal(err)
		}
		active, err := m.Active(ctx, signing.ES256)
		if err != nil {
			t.Fatal(err)
		}
		priv := active.Signer().(*ecdsa.PrivateKey)
		var stored []byte
		if err := d.QueryRow(ctx, `SELECT private_key_enc FROM signing_keys WHERE id = ?`, active.ID).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(stored, priv.D.Bytes()) {
			t.Fatal("the private scalar is stored in clear")
		}
		if _, err := signing.NewManager(d, newKEK(t)).Active(ctx, signing.ES256); !errors.Is(err, kek.ErrDecrypt) {
			t.Fatalf("another key-encryption key: got %v, want ErrDecrypt", err)
		}
		js, _ := json.Marshal(active)
		if bytes.Contains(js, []byte(`"d"`)) || bytes.Contains(js, []byte("private")) {
			t.Fatalf("JSON of a key shows private material: %s", js)
		}
	})
}

func TestRotateKeepsOldKeyPublishedUntilTokensExpire(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		m := signing.NewManager(d, newKEK(t))
		if _, err := m.EnsureKeys(ctx); err != nil {
			t.Fatal(err)
		}
		old, _ := m.Active(ctx, signing.RS256)
		fresh, err := m.Rotate(ctx, time.Hour)
		if err != nil || len(fresh) != 2 {
			t.Fatalf("rotate: %d keys, %v", len(fresh), err)
		}
		now, _ := m.Active(ctx, signing.RS256)
		if now.ID == old.ID {
			t.Fatal("the active key did not change")
		}
		kids := func(at time.Time) map[string]bool {
			body, err := m.JWKS(ctx, at)
			if err != nil {
				t.Fatal(err)
			}
			var set jose.JSONWebKeySet
			if err := json.Unmarshal(body, &set); err != nil {
				t.Fatal(err)
			}
			out := map[string]bool{}
			for _, k := range set.Keys {
				out[k.KeyID] = true
			}
			return out
		}
		if k := kids(time.Now()); !k[old.ID] || !k[now.ID] || len(k) != 4 {
			t.Fatalf("right after rotation: %v", k)
		}
		if k := kids(time.Now().Add(2 * time.Hour)); k[old.ID] || !k[now.ID] || len(k) != 2 {
			t.Fatalf("after the longest token lifetime: %v", k)
		}
		list, _ := m.List(ctx)
		if len(list) != 4 || !list[0].CreatedAt.After(list[3].CreatedAt) && !list[0].CreatedAt.Equal(list[3].CreatedAt) {
			t.Fatalf("list order: %+v", list)
		}
	})
}

func TestSignaturesVerifyWithPublishedKeys(t *testing.T) {
	d := dbtest.Open(t, db.SQLite)
	ctx := context.Background()
	m := signing.NewManager(d, newKEK(t))
	if _, err := m.EnsureKeys(ctx); err != nil {
		t.Fatal(err)
	}
	body, _ := m.JWKS(ctx, time.Now())
	for _, forbidden := range []string{`"d"`, `"p"`, `"q"`, `"dp"`, `"dq"`, `"qi"`} {
		if bytes.Contains(body, []byte(forbidden)) {
			t.Fatalf("JWKS contains private parameter %s: %s", forbidden, body)
		}
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
		sig, err := k.Signer().Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		pub := set.Key(k.ID)
		if len(pub) != 1 || pub[0].Algorithm != alg || pub[0].Use != "sig" {
			t.Fatalf("%s: published %+v", alg, pub)
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
	}
	if _, err := m.Active(ctx, "HS256"); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("unknown algorithm: %v", err)
	}
}
