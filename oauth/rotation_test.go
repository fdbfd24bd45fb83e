package oauth

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/kek"
)

func TestSecretRotationOverlap(t *testing.T) {
	h := NewSecretHasher([]byte("test key for secret rotation...."))
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	c := &Client{SecretHash: h.Hash("first")}
	c.RotateSecret(h.Hash("second"), t0, time.Hour)
	tests := []struct {
		name   string
		secret string
		at     time.Time
		want   bool
	}{
		{"new secret at once", "second", t0, true},
		{"old secret during the overlap", "first", t0.Add(59 * time.Minute), true},
		{"old secret when the overlap ends", "first", t0.Add(time.Hour), false},
		{"old secret after the overlap", "first", t0.Add(2 * time.Hour), false},
		{"new secret after the overlap", "second", t0.Add(2 * time.Hour), true},
		{"a wrong secret", "third", t0, false},
		{"an empty secret", "", t0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.VerifySecret(h, tt.secret, tt.at); got != tt.want {
				t.Fatalf("VerifySecret(%q) at +%s = %v, want %v", tt.secret, tt.at.Sub(t0), got, tt.want)
			}
		})
	}
	// A second rotation drops the first secret even inside its overlap.
	c.RotateSecret(h.Hash("third"), t0.Add(time.Minute), time.Hour)
	if c.VerifySecret(h, "first", t0.Add(2*time.Minute)) || !c.VerifySecret(h, "second", t0.Add(2*time.Minute)) {
		t.Fatal("after two rotations only the last old secret may work")
	}
	// No overlap: the old secret ends at once.
	c.RotateSecret(h.Hash("fourth"), t0, 0)
	if c.VerifySecret(h, "third", t0) || c.PreviousSecretHash != nil {
		t.Fatal("a rotation without overlap kept the old secret")
	}
}

func TestClientStoreKeepsRotationAndOrgUnit(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		key := make([]byte, 32)
		rand.Read(key)
		k, err := kek.New(key)
		if err != nil {
			t.Fatal(err)
		}
		s := NewSQLStore(d, k)
		h := NewSecretHasher(k.Derive("test"))
		c := &Client{ID: "tax", Name: "Tax", RedirectURIs: []string{"https://tax.example.org/cb"}, OrgUnitID: "unit-1", SecretHash: h.Hash("first")}
		c.ApplyDefaults()
		if err := s.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		if _, err := s.UpdateClient(ctx, "tax", func(c *Client) error { c.RotateSecret(h.Hash("second"), now, time.Hour); return nil }); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetClient(ctx, "tax")
		if err != nil {
			t.Fatal(err)
		}
		if got.OrgUnitID != "unit-1" || !got.VerifySecret(h, "first", now) || !got.VerifySecret(h, "second", now) ||
			!got.PreviousSecretExpiresAt.Equal(now.UTC().Add(time.Hour).Truncate(time.Microsecond)) {
			t.Fatalf("read back: %+v", got)
		}
		if got.VerifySecret(h, "first", now.Add(time.Hour)) {
			t.Fatal("the old secret outlives the overlap")
		}
		if rotated := (fositeClient{got}).GetRotatedHashes(); len(rotated) != 1 {
			t.Fatalf("fosite is not offered the old secret: %d", len(rotated))
		}
	})
}

// TestRotateRefreshTokenGrace: rotating one refresh token twice is reuse
// without a grace period, and allowed within one (a client that refreshed
// twice at once).
func TestRotateRefreshTokenGrace(t *testing.T) {
	tests := []struct {
		name  string
		grace time.Duration
		want  error
	}{
		{"no grace", 0, errRefreshReused},
		{"within a grace period", time.Minute, nil},
	}
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		k, err := kek.New(tokenTestBytes(t))
		if err != nil {
			t.Fatal(err)
		}
		store := NewSQLStore(d, k)
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				fs := &fositeStorage{d: d, store: store, refreshGrace: tc.grace, clients: newClientCache()}
				sig, now := rand.Text(), time.Now()
				if err := store.CreateToken(ctx, &Token{Kind: KindRefreshToken, Signature: key(sig), RequestID: "req-" + sig, ClientID: "app",
					Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Hour), Data: []byte(`{}`)}); err != nil {
					t.Fatal(err)
				}
				if err := fs.RotateRefreshToken(ctx, "req-"+sig, sig); err != nil {
					t.Fatalf("first rotation: %v", err)
				}
				if err := fs.RotateRefreshToken(ctx, "req-"+sig, sig); err != tc.want {
					t.Fatalf("second rotation: %v, want %v", err, tc.want)
				}
			})
		}
	})
}
