package users

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

func newTestPasskeyStore(d *db.DB) (*PasskeyStore, *testClock) {
	c := newTestClock()
	s := NewPasskeyStore(d)
	s.now = c.now
	return s, c
}

// randomPasskey is a passkey record with random key material.
func randomPasskey(userID string) *Passkey {
	id, key, aaguid := make([]byte, 16), make([]byte, 77), make([]byte, 16)
	rand.Read(id)
	rand.Read(key)
	rand.Read(aaguid)
	return &Passkey{
		ID: base64.RawURLEncoding.EncodeToString(id), UserID: userID, Name: "Phone", PublicKey: key,
		AttestationType: "none", AttestationFormat: "none", Transports: []string{"internal", "hybrid"}, Attachment: "platform",
		UserPresent: true, UserVerified: true, BackupEligible: true, BackupState: false, AAGUID: aaguid, SignCount: 7,
	}
}

func TestPasskeyUserHandle(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, _ := newTestPasskeyStore(d)
		h1, err := s.UserHandle(ctx, "user-1")
		if err != nil {
			t.Fatal(err)
		}
		again, err := s.UserHandle(ctx, "user-1")
		if err != nil {
			t.Fatal(err)
		}
		h2, err := s.UserHandle(ctx, "user-2")
		if err != nil {
			t.Fatal(err)
		}
		if len(h1) != passkeyHandleBytes || !bytes.Equal(h1, again) || bytes.Equal(h1, h2) {
			t.Fatalf("handles %x, again %x, other user %x", h1, again, h2)
		}
		if bytes.Contains(h1, []byte("user-1")) {
			t.Fatal("the handle contains the user id")
		}
		if id, err := s.UserIDByHandle(ctx, h2); err != nil || id != "user-2" {
			t.Fatalf("UserIDByHandle = %q, %v", id, err)
		}
		if _, err := s.UserIDByHandle(ctx, []byte("nobody")); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("unknown handle: %v", err)
		}
	})
}

func TestPasskeyStoreRoundTrip(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, c := newTestPasskeyStore(d)
		p := randomPasskey("user-1")
		if err := s.Add(ctx, p); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !passkeysEqual(got, p) || !got.CreatedAt.Equal(c.t) || !got.LastUsedAt.IsZero() {
			t.Fatalf("got %+v\nwant %+v", got, p)
		}
		if err := s.Add(ctx, randomPasskeyWithID(p.ID, "user-2")); !errors.Is(err, db.ErrConflict) {
			t.Fatalf("a credential id registered twice: %v", err)
		}

		c.advance(time.Hour)
		p.SignCount, p.CloneWarning, p.UserVerified, p.BackupState, p.LastUsedAt = 9, true, false, true, c.t
		if err := s.RecordUse(ctx, p); err != nil {
			t.Fatal(err)
		}
		got, err = s.Get(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !passkeysEqual(got, p) || !got.LastUsedAt.Equal(c.t) {
			t.Fatalf("after use: got %+v\nwant %+v", got, p)
		}
	})
}

func randomPasskeyWithID(id, userID string) *Passkey {
	p := randomPasskey(userID)
	p.ID = id
	return p
}

func passkeysEqual(a, b *Passkey) bool {
	return a.ID == b.ID && a.UserID == b.UserID && a.Name == b.Name && bytes.Equal(a.PublicKey, b.PublicKey) &&
		a.AttestationType == b.AttestationType && a.AttestationFormat == b.AttestationFormat &&
		slices.Equal(a.Transports, b.Transports) && a.Attachment == b.Attachment &&
		a.UserPresent == b.UserPresent && a.UserVerified == b.UserVerified && a.BackupEligible == b.BackupEligible &&
		a.BackupState == b.BackupState && bytes.Equal(a.AAGUID, b.AAGUID) && a.SignCount == b.SignCount &&
		a.CloneWarning == b.CloneWarning
}

func TestPasskeyRenameAndDeleteOnlyTheOwners(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, _ := newTestPasskeyStore(d)
		mine, theirs := randomPasskey("user-1"), randomPasskey("user-2")
		for _, p := range []*Passkey{mine, theirs} {
			if err := s.Add(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Rename(ctx, "user-1", theirs.ID, "Mine now"); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("rename another's passkey: %v", err)
		}
		if err := s.Delete(ctx, "user-1", theirs.ID); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("delete another's passkey: %v", err)
		}
		if err := s.Rename(ctx, "user-1", mine.ID, "Laptop"); err != nil {
			t.Fatal(err)
		}
		list, err := s.List(ctx, "user-1")
		if err != nil || len(list) != 1 || list[0].Name != "Laptop" {
			t.Fatalf("list after rename: %v, %v", list, err)
		}
		if err := s.Delete(ctx, "user-1", mine.ID); err != nil {
			t.Fatal(err)
		}
		if n, err := s.Count(ctx, "user-1"); err != nil || n != 0 {
			t.Fatalf("count after delete = %d, %v", n, err)
		}
		if n, err := s.Count(ctx, "user-2"); err != nil || n != 1 {
			t.Fatalf("the other account's passkeys = %d, %v", n, err)
		}
	})
}

func TestPasskeyCeremonyIsSingleUseAndExpires(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, c := newTestPasskeyStore(d)
		save := func(token, kind string) {
			t.Helper()
			if err := s.saveCeremony(ctx, token, passkeyCeremony{kind: kind, userID: "user-1", data: []byte(`{}`), expiresAt: c.t.Add(5 * time.Minute)}); err != nil {
				t.Fatal(err)
			}
		}
		save("token-a", ceremonyRegister)
		if _, err := s.takeCeremony(ctx, "token-a", ceremonyLogin); !errors.Is(err, ErrPasskeyCeremony) {
			t.Fatalf("a registration taken as a sign-in: %v", err)
		}
		got, err := s.takeCeremony(ctx, "token-a", ceremonyRegister)
		if err != nil || got.userID != "user-1" || string(got.data) != `{}` {
			t.Fatalf("take = %+v, %v", got, err)
		}
		if _, err := s.takeCeremony(ctx, "token-a", ceremonyRegister); !errors.Is(err, ErrPasskeyCeremony) {
			t.Fatalf("taken twice: %v", err)
		}

		save("token-b", ceremonyLogin)
		c.advance(5 * time.Minute)
		if _, err := s.takeCeremony(ctx, "token-b", ceremonyLogin); !errors.Is(err, ErrPasskeyCeremony) {
			t.Fatalf("expired ceremony: %v", err)
		}
		var n int
		if err := d.QueryRow(ctx, `SELECT COUNT(*) FROM webauthn_challenges WHERE id = ?`, "token-b").Scan(&n); err != nil || n != 0 {
			t.Fatalf("the cookie token is stored in clear: %d, %v", n, err)
		}
	})
}

func TestNormalizePasskeyName(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"  My phone ", "My phone", true},
		{"办公室的安全密钥", "办公室的安全密钥", true},
		{"", "", false},
		{"   ", "", false},
		{"a\x00b", "", false},
		{string(bytes.Repeat([]byte("钥"), MaxPasskeyName+1)), "", false},
		{"\xff", "", false},
	} {
		got, err := NormalizePasskeyName(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("NormalizePasskeyName(%q) = %q, %v", tc.in, got, err)
		}
		if err != nil && !errors.Is(err, ErrPasskeyNameValid) {
			t.Errorf("error %v is not ErrPasskeyNameValid", err)
		}
	}
}

func TestPasskeyAMRAndACR(t *testing.T) {
	for _, tc := range []struct {
		attachment string
		uv         bool
		want       []string
	}{
		{"platform", true, []string{"swk", "user", "mfa"}},
		{"", true, []string{"swk", "user", "mfa"}},
		{"cross-platform", true, []string{"hwk", "user", "mfa"}},
		{"cross-platform", false, []string{"hwk"}},
	} {
		if got := passkeyAMR(tc.attachment, tc.uv); !slices.Equal(got, tc.want) {
			t.Errorf("passkeyAMR(%q, %v) = %v, want %v", tc.attachment, tc.uv, got, tc.want)
		}
	}
	for level, want := range map[int]int{1: 1, 2: 3, 3: 3} {
		if got := passkeyACR(level); got != want {
			t.Errorf("passkeyACR(%d) = %d, want %d", level, got, want)
		}
	}
}
