package oauth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/kek"
	"github.com/govsso/sso/oauth/signing"
	"github.com/govsso/sso/users"
)

// twoNodes returns two providers on one PostgreSQL schema through separate
// pools, as two nodes would be, each listening for invalidations.
func twoNodes(t *testing.T) (a, b *Provider) {
	t.Helper()
	url := dbtest.PostgresSchemaURL(t)
	k, err := kek.New(tokenTestBytes(t))
	if err != nil {
		t.Fatal(err)
	}
	hmacKey, pairwise, secrets := tokenTestBytes(t), tokenTestBytes(t), tokenTestBytes(t)
	ctx, stop := context.WithCancel(context.Background())
	node := func(migrate bool) *Provider {
		d, err := db.Open(ctx, url, db.PoolOptions{ConnectTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		if migrate {
			if _, err := d.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
		}
		keys := signing.NewManager(d, k)
		if _, err := keys.EnsureKeys(ctx); err != nil {
			t.Fatal(err)
		}
		p := NewProvider(Config{
			Issuer: tokenTestIssuer, AccessTokenLifetime: time.Hour, RefreshTokenLifetime: time.Hour, IDTokenLifetime: time.Hour,
			AuthCodeLifetime: time.Minute, HMACKey: hmacKey, PairwiseKey: pairwise,
		}, Dependencies{
			DB: d, Store: NewSQLStore(d, k), Keys: keys, Users: users.NewSQLStore(d, k), Audit: audit.NewLog(d),
			Logger: slog.New(slog.DiscardHandler), Secrets: NewSecretHasher(secrets),
			Sessions: func(*http.Request) (*users.Session, error) { return nil, errors.New("no session") },
		})
		listening := make(chan struct{})
		connected := make(chan struct{}, 1)
		d.OnInvalidate(ClientInvalidation, func(id string) {
			if id == db.AllEntries {
				select {
				case connected <- struct{}{}:
				default:
				}
			}
		})
		go func() { defer close(listening); d.ListenInvalidations(ctx, p.log) }()
		t.Cleanup(func() { stop(); <-listening })
		select {
		case <-connected:
		case <-time.After(10 * time.Second):
			t.Fatal("listener did not connect")
		}
		return p
	}
	return node(true), node(false)
}

// eventually polls cond until it holds or 2 s pass, and returns how long it
// took. The deadline is below the caches' TTLs (5 s, 30 s), so expiry
// cannot be what makes it pass.
func eventually(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 2*time.Second {
			t.Fatalf("%s: not within 2 s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

func TestOtherNodesChangeDropsClientFromCache(t *testing.T) {
	a, b := twoNodes(t)
	ctx := context.Background()
	c := &Client{ID: "app", Name: "App", RedirectURIs: []string{"https://app.example/cb"}, Public: true,
		GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"}, Scopes: []string{"openid"}, TokenEndpointAuthMethod: "none"}
	c.ApplyDefaults()
	if err := a.store.CreateClient(ctx, c); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name   string
		change func() error
		check  func(fosite.Client, error) bool // b's view once the cache dropped
	}{
		{"rename", func() error {
			_, err := a.store.UpdateClient(ctx, "app", func(c *Client) error { c.Name = "Renamed"; return nil })
			return err
		}, func(fc fosite.Client, err error) bool { return err == nil && fc.(fositeClient).Name == "Renamed" }},
		{"disable", func() error {
			_, err := a.store.UpdateClient(ctx, "app", func(c *Client) error { c.Disabled = true; return nil })
			return err
		}, func(_ fosite.Client, err error) bool { return errors.Is(err, fosite.ErrNotFound) }},
		{"enable", func() error {
			_, err := a.store.UpdateClient(ctx, "app", func(c *Client) error { c.Disabled = false; return nil })
			return err
		}, func(_ fosite.Client, err error) bool { return err == nil }},
		{"delete", func() error { return a.store.DeleteClient(ctx, "app") },
			func(_ fosite.Client, err error) bool { return errors.Is(err, fosite.ErrNotFound) }},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if _, err := b.storage.GetClient(ctx, "app"); err != nil && !errors.Is(err, fosite.ErrNotFound) {
				t.Fatal(err)
			}
			if b.storage.clients.get("app") == nil && st.name != "enable" {
				t.Fatal("b did not cache the client")
			}
			if err := st.change(); err != nil {
				t.Fatal(err)
			}
			took := eventually(t, "b's cache dropped the client", func() bool { return b.storage.clients.get("app") == nil })
			t.Logf("%s on a: dropped from b's cache after %s", st.name, took)
			if fc, err := b.storage.GetClient(ctx, "app"); !st.check(fc, err) {
				t.Fatalf("b after %s: %v %v", st.name, fc, err)
			}
		})
	}
}

func TestOtherNodesKeyRotationDropsKeyCache(t *testing.T) {
	a, b := twoNodes(t)
	ctx := context.Background()
	before, err := b.signingKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.tokens.jwt.loadPublished(ctx); err != nil {
		t.Fatal(err)
	}
	created, err := a.keys.Rotate(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	took := eventually(t, "b's key cache emptied", func() bool {
		b.keyMu.Lock()
		defer b.keyMu.Unlock()
		return len(b.keyCache) == 0
	})
	t.Logf("rotation on a: b's key cache dropped after %s", took)
	after, err := b.signingKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want string
	for _, k := range created {
		if k.Algorithm == signing.RS256 {
			want = k.ID
		}
	}
	if after.KeyID == before.KeyID || after.KeyID != want {
		t.Fatalf("b signs with %s after the rotation, want the new key %s (old %s)", after.KeyID, want, before.KeyID)
	}
	b.tokens.jwt.mu.Lock()
	published := b.tokens.jwt.keys
	b.tokens.jwt.mu.Unlock()
	if published != nil {
		t.Error("b kept its published key set after the rotation")
	}
}
