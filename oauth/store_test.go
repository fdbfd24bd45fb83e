package oauth_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/kek"
	"github.com/govsso/sso/oauth"
)

func newStore(t testing.TB, d *db.DB) *oauth.SQLStore {
	t.Helper()
	k, err := kek.New(randomKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return oauth.NewSQLStore(d, k)
}

// sameClient compares everything, times with Equal.
func sameClient(t *testing.T, got, want *oauth.Client) {
	t.Helper()
	if !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("timestamps: got %v/%v, want %v/%v", got.CreatedAt, got.UpdatedAt, want.CreatedAt, want.UpdatedAt)
	}
	g, w := *got, *want
	g.CreatedAt, g.UpdatedAt, w.CreatedAt, w.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("client differs:\n got  %#v\n want %#v", g, w)
	}
}

// fullClient sets every field to a value other than its zero value.
func fullClient(t *testing.T) *oauth.Client {
	hasher := oauth.NewSecretHasher(randomKey(t))
	secret, err := oauth.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	return &oauth.Client{
		ID:                       "dept.tax:portal-1",
		Name:                     "税务服务门户",
		Disabled:                 true,
		SecretHash:               hasher.Hash(secret),
		RedirectURIs:             []string{"https://tax.example.gov/cb", "https://tax2.example.gov/cb"},
		GrantTypes:               []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken, oauth.GrantClientCredentials, oauth.GrantDeviceCode},
		ResponseTypes:            []string{oauth.ResponseTypeCode},
		Scopes:                   []string{"openid", "profile", "offline_access"},
		Audience:                 []string{"https://api.tax.example.gov"},
		PostLogoutRedirectURIs:   []string{"https://tax.example.gov/bye"},
		TokenEndpointAuthMethod:  oauth.AuthMethodPrivateKeyJWT,
		JWKS:                     json.RawMessage(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`),
		BackchannelLogoutURI:     "https://tax.example.gov/backchannel",
		FrontchannelLogoutURI:    "https://tax.example.gov/frontchannel",
		FirstParty:               true,
		AccessTokenFormat:        oauth.AccessTokenJWT,
		IDTokenSignedResponseAlg: oauth.AlgES256,
		SubjectType:              oauth.SubjectPairwise,
		SectorIdentifierURI:      "https://tax.example.gov/sector.json",
		RequirePKCE:              true,
		RequirePAR:               true,
		AllowIntrospection:       true,
	}
}

func TestClientMetadataRoundTrip(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		want := fullClient(t)
		if err := s.CreateClient(ctx, want); err != nil {
			t.Fatal(err)
		}
		if want.CreatedAt.IsZero() || !want.UpdatedAt.Equal(want.CreatedAt) {
			t.Fatalf("CreateClient set timestamps %v/%v", want.CreatedAt, want.UpdatedAt)
		}
		got, err := s.GetClient(ctx, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		sameClient(t, got, want)

		list, err := s.ListClients(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 {
			t.Fatalf("listed %d clients, want 1", len(list))
		}
		sameClient(t, list[0], want)
	})
}

func TestClientCRUD(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		b, a := webClient(), webClient()
		b.ID, a.ID = "b.client", "a.client"
		a.Public, a.TokenEndpointAuthMethod, a.RequirePKCE = true, oauth.AuthMethodNone, true
		b.SecretHash = oauth.NewSecretHasher(randomKey(t)).Hash("x")
		for _, c := range []*oauth.Client{b, a} {
			if err := s.CreateClient(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		list, err := s.ListClients(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 || list[0].ID != "a.client" || list[1].ID != "b.client" {
			t.Fatalf("list not ordered by id: %v", list)
		}
		sameClient(t, list[0], a)
		sameClient(t, list[1], b)

		updated, err := s.UpdateClient(ctx, "b.client", func(c *oauth.Client) error {
			c.Name = "renamed"
			c.Scopes = append(c.Scopes, "profile")
			c.SecretHash = nil
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !updated.CreatedAt.Equal(b.CreatedAt) || updated.UpdatedAt.Before(b.UpdatedAt) {
			t.Fatalf("update timestamps %v/%v after %v/%v", updated.CreatedAt, updated.UpdatedAt, b.CreatedAt, b.UpdatedAt)
		}
		got, err := s.GetClient(ctx, "b.client")
		if err != nil {
			t.Fatal(err)
		}
		sameClient(t, got, updated)
		if got.Name != "renamed" || len(got.Scopes) != 2 || got.SecretHash != nil {
			t.Fatalf("update not stored: %+v", got)
		}

		if err := s.DeleteClient(ctx, "b.client"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetClient(ctx, "b.client"); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("get after delete: %v, want ErrNotFound", err)
		}
		if err := s.DeleteClient(ctx, "b.client"); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("second delete: %v, want ErrNotFound", err)
		}
		if _, err := s.GetClient(ctx, "a.client"); err != nil {
			t.Fatalf("other client gone: %v", err)
		}
	})
}

func TestClientNotFound(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		if _, err := s.GetClient(ctx, "missing"); !errors.Is(err, db.ErrNotFound) {
			t.Errorf("get: %v, want ErrNotFound", err)
		}
		called := false
		_, err := s.UpdateClient(ctx, "missing", func(*oauth.Client) error { called = true; return nil })
		if !errors.Is(err, db.ErrNotFound) || called {
			t.Errorf("update: %v (fn called: %v), want ErrNotFound", err, called)
		}
		if err := s.DeleteClient(ctx, "missing"); !errors.Is(err, db.ErrNotFound) {
			t.Errorf("delete: %v, want ErrNotFound", err)
		}
	})
}

func TestClientDuplicate(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		if err := s.CreateClient(ctx, webClient()); err != nil {
			t.Fatal(err)
		}
		dup := webClient()
		dup.Name = "another"
		err := s.CreateClient(ctx, dup)
		if !errors.Is(err, db.ErrConflict) {
			t.Fatalf("got %v, want ErrConflict", err)
		}
		if want := fmt.Sprintf("client %q already exists", dup.ID); err.Error() != want {
			t.Fatalf("message %q, want %q", err, want)
		}
		got, err := s.GetClient(ctx, dup.ID)
		if err != nil || got.Name == "another" {
			t.Fatalf("duplicate overwrote the first client: %+v, %v", got, err)
		}
	})
}

func TestClientCreateValidates(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		c := webClient()
		c.GrantTypes = append(c.GrantTypes, "password")
		var ve *oauth.ValidationError
		if err := s.CreateClient(ctx, c); !errors.As(err, &ve) {
			t.Fatalf("got %v, want *ValidationError", err)
		}
		if _, err := s.GetClient(ctx, c.ID); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("invalid client was stored: %v", err)
		}
	})
}

func TestClientFailedUpdateChangesNothing(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		orig := fullClient(t)
		if err := s.CreateClient(ctx, orig); err != nil {
			t.Fatal(err)
		}
		errFn := errors.New("caller refused")
		tests := []struct {
			name  string
			fn    func(*oauth.Client) error
			check func(error) bool
		}{
			{"invalid result", func(c *oauth.Client) error {
				c.Name = "changed"
				c.RedirectURIs = []string{"http://evil.example.com/cb"}
				return nil
			}, func(err error) bool { var ve *oauth.ValidationError; return errors.As(err, &ve) }},
			{"id changed", func(c *oauth.Client) error {
				c.ID, c.Name = "other", "changed"
				return nil
			}, func(err error) bool { var ve *oauth.ValidationError; return errors.As(err, &ve) && ve.Has("id") }},
			{"fn fails", func(c *oauth.Client) error {
				c.Name = "changed"
				return errFn
			}, func(err error) bool { return errors.Is(err, errFn) }},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if _, err := s.UpdateClient(ctx, orig.ID, tc.fn); !tc.check(err) {
					t.Fatalf("unexpected error %v", err)
				}
				got, err := s.GetClient(ctx, orig.ID)
				if err != nil {
					t.Fatal(err)
				}
				sameClient(t, got, orig)
				if _, err := s.GetClient(ctx, "other"); !errors.Is(err, db.ErrNotFound) {
					t.Fatalf("a client was created under the new id: %v", err)
				}
			})
		}
	})
}

func TestDeleteClientDeletesItsTokens(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		c := webClient()
		if err := s.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		mine, other := newToken(oauth.KindAccessToken, "req-1"), newToken(oauth.KindAccessToken, "req-2")
		mine.ClientID, other.ClientID = c.ID, "someone.else"
		mustCreate(t, s, mine, other)
		if err := s.DeleteClient(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetToken(ctx, mine.Kind, mine.Signature); !errors.Is(err, db.ErrNotFound) {
			t.Errorf("token of deleted client: %v, want ErrNotFound", err)
		}
		if _, err := s.GetToken(ctx, other.Kind, other.Signature); err != nil {
			t.Errorf("token of another client: %v", err)
		}
	})
}

// newToken returns an active token with 1 KB of data, expiring in an hour.
func newToken(kind oauth.TokenKind, requestID string) *oauth.Token {
	now := time.Now()
	return &oauth.Token{
		Kind:        kind,
		Signature:   rand.Text(),
		RequestID:   requestID,
		ClientID:    "dept.housing",
		Subject:     "user-1",
		SessionID:   "session-1",
		Active:      true,
		RequestedAt: now,
		ExpiresAt:   now.Add(time.Hour),
		Data:        []byte(`{"claims":{"name":"` + strings.Repeat("x", 1000) + `"}}`),
	}
}

func mustCreate(t testing.TB, s *oauth.SQLStore, tokens ...*oauth.Token) {
	t.Helper()
	for _, tok := range tokens {
		if err := s.CreateToken(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
}

func mustGet(t *testing.T, s *oauth.SQLStore, tok *oauth.Token) *oauth.Token {
	t.Helper()
	got, err := s.GetToken(context.Background(), tok.Kind, tok.Signature)
	if err != nil {
		t.Fatalf("get %s: %v", tok.Kind, err)
	}
	return got
}

func exists(t *testing.T, s *oauth.SQLStore, tok *oauth.Token) bool {
	t.Helper()
	_, err := s.GetToken(context.Background(), tok.Kind, tok.Signature)
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func TestTokenRoundTrip(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		s := newStore(t, d)
		want := newToken(oauth.KindRefreshToken, "req-1")
		want.AccessSignature = "access-sig"
		want.FirstUsedAt = want.RequestedAt.Add(time.Minute)
		mustCreate(t, s, want)
		got := mustGet(t, s, want)

		for name, pair := range map[string][2]time.Time{
			"requested_at":  {got.RequestedAt, want.RequestedAt},
			"expires_at":    {got.ExpiresAt, want.ExpiresAt},
			"first_used_at": {got.FirstUsedAt, want.FirstUsedAt},
		} {
			if !pair[0].Equal(pair[1].Truncate(time.Microsecond)) || pair[0].Location() != time.UTC {
				t.Errorf("%s: got %v, want %v in UTC", name, pair[0], pair[1])
			}
		}
		g, w := *got, *want
		g.RequestedAt, g.ExpiresAt, g.FirstUsedAt = time.Time{}, time.Time{}, time.Time{}
		w.RequestedAt, w.ExpiresAt, w.FirstUsedAt = time.Time{}, time.Time{}, time.Time{}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("token differs:\n got  %+v\n want %+v", g, w)
		}

		unused := newToken(oauth.KindAuthorizeCode, "req-2")
		mustCreate(t, s, unused)
		if got := mustGet(t, s, unused); !got.FirstUsedAt.IsZero() {
			t.Errorf("never-used token has first_used_at %v", got.FirstUsedAt)
		}
	})
}

func TestTokenDataEncryptedAtRest(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		a, b := newToken(oauth.KindOpenIDSession, "req-1"), newToken(oauth.KindOpenIDSession, "req-2")
		a.Data = []byte(`{"phone":"` + a.Signature + `"}`)
		mustCreate(t, s, a, b)
		var raw []byte
		if err := d.QueryRow(ctx, `SELECT data FROM oauth_tokens WHERE kind = ? AND signature = ?`, string(a.Kind), a.Signature).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte(a.Signature)) || bytes.Contains(raw, []byte("phone")) {
			t.Fatal("data column holds the plaintext")
		}
		// Sealed data moved to another row must not open there.
		if _, err := d.Exec(ctx, `UPDATE oauth_tokens SET data = ? WHERE kind = ? AND signature = ?`, raw, string(b.Kind), b.Signature); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetToken(ctx, b.Kind, b.Signature); !errors.Is(err, kek.ErrDecrypt) {
			t.Fatalf("moved data: %v, want kek.ErrDecrypt", err)
		}
		// And a store under another key cannot read it either.
		if _, err := newStore(t, d).GetToken(ctx, a.Kind, a.Signature); !errors.Is(err, kek.ErrDecrypt) {
			t.Fatalf("other key: %v, want kek.ErrDecrypt", err)
		}
	})
}

func TestTokenConflictAndNotFound(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		tok := newToken(oauth.KindAccessToken, "req-1")
		mustCreate(t, s, tok)
		dup := *tok
		dup.Subject = "user-2"
		if err := s.CreateToken(ctx, &dup); !errors.Is(err, db.ErrConflict) {
			t.Errorf("duplicate: %v, want ErrConflict", err)
		}
		if got := mustGet(t, s, tok); got.Subject != tok.Subject {
			t.Errorf("duplicate overwrote the token")
		}
		sameSigOtherKind := *tok
		sameSigOtherKind.Kind = oauth.KindRefreshToken
		if err := s.CreateToken(ctx, &sameSigOtherKind); err != nil {
			t.Errorf("same signature, other kind: %v", err)
		}

		const missing = "no-such-signature"
		ops := map[string]func() error{
			"get":        func() error { _, err := s.GetToken(ctx, oauth.KindAccessToken, missing); return err },
			"deactivate": func() error { return s.DeactivateToken(ctx, oauth.KindAccessToken, missing) },
			"mark used": func() error {
				_, err := s.MarkTokenUsed(ctx, oauth.KindAccessToken, missing, time.Now(), time.Minute)
				return err
			},
			"delete": func() error { return s.DeleteToken(ctx, oauth.KindAccessToken, missing) },
		}
		for name, op := range ops {
			if err := op(); !errors.Is(err, db.ErrNotFound) {
				t.Errorf("%s: %v, want ErrNotFound", name, err)
			}
		}
	})
}

func TestDeactivateAndDeleteToken(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		tok, other := newToken(oauth.KindAccessToken, "req-1"), newToken(oauth.KindAccessToken, "req-1")
		mustCreate(t, s, tok, other)
		if err := s.DeactivateToken(ctx, tok.Kind, tok.Signature); err != nil {
			t.Fatal(err)
		}
		if mustGet(t, s, tok).Active {
			t.Error("token still active after DeactivateToken")
		}
		if !mustGet(t, s, other).Active {
			t.Error("DeactivateToken deactivated another token")
		}
		if err := s.DeleteToken(ctx, tok.Kind, tok.Signature); err != nil {
			t.Fatal(err)
		}
		if exists(t, s, tok) {
			t.Error("token still there after DeleteToken")
		}
		if !exists(t, s, other) {
			t.Error("DeleteToken removed another token")
		}
	})
}

// TestMarkTokenUsed: the first use deactivates the token and its time
// survives later uses; a second use is accepted only within the grace
// period after the first, so that of two concurrent rotations of one
// refresh token only one gets through when there is no grace.
func TestMarkTokenUsed(t *testing.T) {
	tests := []struct {
		name        string
		grace       time.Duration
		secondAfter time.Duration
		secondOK    bool
	}{
		{"no grace: a second use is refused", 0, time.Millisecond, false},
		{"within the grace", 2 * time.Minute, time.Minute, true},
		{"past the grace", 30 * time.Second, time.Minute, false},
	}
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				tok := newToken(oauth.KindRefreshToken, "req-"+tc.name)
				mustCreate(t, s, tok)
				first := tok.RequestedAt.Add(time.Second)
				if _, err := s.MarkTokenUsed(ctx, tok.Kind, tok.Signature, first, tc.grace); err != nil {
					t.Fatal(err)
				}
				_, err := s.MarkTokenUsed(ctx, tok.Kind, tok.Signature, first.Add(tc.secondAfter), tc.grace)
				if tc.secondOK && err != nil {
					t.Fatalf("second use: %v", err)
				}
				if !tc.secondOK && !errors.Is(err, db.ErrNotFound) {
					t.Fatalf("second use: %v, want db.ErrNotFound", err)
				}
				got := mustGet(t, s, tok)
				if got.Active {
					t.Error("used token still active")
				}
				if !got.FirstUsedAt.Equal(first.Truncate(time.Microsecond)) {
					t.Errorf("first_used_at %v, want the first call's %v", got.FirstUsedAt, first)
				}
			})
		}
	})
}

func TestByRequestID(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		access1, refresh1 := newToken(oauth.KindAccessToken, "req-1"), newToken(oauth.KindRefreshToken, "req-1")
		access1b, access2 := newToken(oauth.KindAccessToken, "req-1"), newToken(oauth.KindAccessToken, "req-2")
		mustCreate(t, s, access1, refresh1, access1b, access2)

		n, err := s.DeactivateByRequestID(ctx, oauth.KindAccessToken, "req-1")
		if err != nil || n != 2 {
			t.Fatalf("deactivated %d, %v; want 2", n, err)
		}
		for _, tc := range []struct {
			tok    *oauth.Token
			active bool
		}{{access1, false}, {access1b, false}, {refresh1, true}, {access2, true}} {
			if got := mustGet(t, s, tc.tok); got.Active != tc.active {
				t.Errorf("%s of %s: active %v, want %v", tc.tok.Kind, tc.tok.RequestID, got.Active, tc.active)
			}
		}
		if n, err := s.DeactivateByRequestID(ctx, oauth.KindAccessToken, "req-1"); err != nil || n != 0 {
			t.Errorf("second deactivation counted %d, %v; want 0", n, err)
		}

		n, err = s.DeleteByRequestID(ctx, oauth.KindAccessToken, "req-1")
		if err != nil || n != 2 {
			t.Fatalf("deleted %d, %v; want 2", n, err)
		}
		for _, tc := range []struct {
			tok  *oauth.Token
			kept bool
		}{{access1, false}, {access1b, false}, {refresh1, true}, {access2, true}} {
			if got := exists(t, s, tc.tok); got != tc.kept {
				t.Errorf("%s of %s: exists %v, want %v", tc.tok.Kind, tc.tok.RequestID, got, tc.kept)
			}
		}
	})
}

func TestDeleteBySubject(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		token := func(kind oauth.TokenKind, subject, client string) *oauth.Token {
			tok := newToken(kind, "req-"+subject+client)
			tok.Subject, tok.ClientID = subject, client
			return tok
		}
		aliceA := token(oauth.KindAccessToken, "alice", "a")
		aliceARefresh := token(oauth.KindRefreshToken, "alice", "a")
		aliceB := token(oauth.KindAccessToken, "alice", "b")
		bobA := token(oauth.KindAccessToken, "bob", "a")
		machine := token(oauth.KindAccessToken, "", "a")
		mustCreate(t, s, aliceA, aliceARefresh, aliceB, bobA, machine)

		if n, err := s.DeleteBySubject(ctx, "alice", "a"); err != nil || n != 2 {
			t.Fatalf("alice at a: deleted %d, %v; want 2", n, err)
		}
		if exists(t, s, aliceA) || exists(t, s, aliceARefresh) || !exists(t, s, aliceB) {
			t.Fatal("delete for one client touched the wrong tokens")
		}
		if n, err := s.DeleteBySubject(ctx, "alice", ""); err != nil || n != 1 {
			t.Fatalf("alice everywhere: deleted %d, %v; want 1", n, err)
		}
		if exists(t, s, aliceB) || !exists(t, s, bobA) || !exists(t, s, machine) {
			t.Fatal("delete for all clients touched the wrong tokens")
		}
		if _, err := s.DeleteBySubject(ctx, "", ""); err == nil || !exists(t, s, machine) {
			t.Fatal("empty subject was accepted")
		}
	})
}

func TestPurgeExpired(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		cutoff := time.Now()
		var expired, live []*oauth.Token
		for i := range 5 {
			tok := newToken(oauth.KindAccessToken, "old")
			tok.ExpiresAt = cutoff.Add(-time.Duration(i+1) * time.Minute)
			expired = append(expired, tok)
		}
		atCutoff := newToken(oauth.KindRefreshToken, "edge")
		atCutoff.ExpiresAt = cutoff
		live = append(live, newToken(oauth.KindAccessToken, "new"), atCutoff)
		mustCreate(t, s, append(expired, live...)...)

		for i, want := range []int64{3, 2, 0} {
			n, err := s.PurgeExpired(ctx, cutoff, 3)
			if err != nil || n != want {
				t.Fatalf("purge %d: removed %d, %v; want %d", i, n, err, want)
			}
		}
		for _, tok := range expired {
			if exists(t, s, tok) {
				t.Errorf("expired token at %v survived", tok.ExpiresAt)
			}
		}
		for _, tok := range live {
			if !exists(t, s, tok) {
				t.Errorf("token expiring at %v was purged", tok.ExpiresAt)
			}
		}
		if _, err := s.PurgeExpired(ctx, cutoff, 0); err == nil {
			t.Error("limit 0 was accepted")
		}
	})
}

func TestOperationsInTransaction(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		kept := newToken(oauth.KindRefreshToken, "req-0")
		mustCreate(t, s, kept)
		errAbort := errors.New("abort")
		c := webClient()
		tok := newToken(oauth.KindAccessToken, "req-1")

		err := d.InTx(ctx, func(ctx context.Context) error {
			if err := s.CreateClient(ctx, c); err != nil {
				return err
			}
			if err := s.CreateToken(ctx, tok); err != nil {
				return err
			}
			if err := s.DeactivateToken(ctx, kept.Kind, kept.Signature); err != nil {
				return err
			}
			if _, err := s.GetToken(ctx, tok.Kind, tok.Signature); err != nil {
				return fmt.Errorf("own write not visible in the transaction: %w", err)
			}
			return errAbort
		})
		if !errors.Is(err, errAbort) {
			t.Fatal(err)
		}
		if _, err := s.GetClient(ctx, c.ID); !errors.Is(err, db.ErrNotFound) {
			t.Errorf("client survived rollback: %v", err)
		}
		if exists(t, s, tok) {
			t.Error("token survived rollback")
		}
		if !mustGet(t, s, kept).Active {
			t.Error("deactivation survived rollback")
		}

		err = d.InTx(ctx, func(ctx context.Context) error {
			if err := s.CreateToken(ctx, tok); err != nil {
				return err
			}
			_, err := s.UpdateClient(ctx, "missing", func(*oauth.Client) error { return nil })
			return err
		})
		if !errors.Is(err, db.ErrNotFound) || exists(t, s, tok) {
			t.Errorf("nested UpdateClient failure did not roll back the outer transaction: %v", err)
		}
	})
}

func TestTokensInOneStatement(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		code, pkce, other := newToken(oauth.KindAuthorizeCode, "req-1"), newToken(oauth.KindPKCE, "req-1"), newToken(oauth.KindAccessToken, "req-2")
		pkce.Signature = code.Signature // the same key under another kind is another row
		if err := s.CreateTokens(ctx, []*oauth.Token{code, pkce, other}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateTokens(ctx, []*oauth.Token{newToken(oauth.KindAccessToken, "req-3"), other}); !errors.Is(err, db.ErrConflict) {
			t.Fatalf("a batch holding an existing token: %v, want ErrConflict", err)
		}
		missing := oauth.TokenRef{Kind: oauth.KindAccessToken, Signature: "no-such-signature"}
		got, err := s.GetTokens(ctx, []oauth.TokenRef{{Kind: code.Kind, Signature: code.Signature}, {Kind: pkce.Kind, Signature: pkce.Signature}, missing})
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[oauth.TokenKind]string{}
		for _, tok := range got {
			kinds[tok.Kind] = string(tok.Data)
		}
		if len(got) != 2 || kinds[code.Kind] != string(code.Data) || kinds[pkce.Kind] != string(pkce.Data) {
			t.Fatalf("GetTokens returned %d rows with kinds %v, want the code and the PKCE row with their data", len(got), kinds)
		}
		if err := s.DeleteTokens(ctx, []oauth.TokenRef{{Kind: pkce.Kind, Signature: pkce.Signature}, missing}); err != nil {
			t.Fatal(err)
		}
		if exists(t, s, pkce) || !exists(t, s, code) || !exists(t, s, other) {
			t.Error("DeleteTokens removed other rows or missed its own")
		}
	})
}

func TestDeactivateTokenOnlyOnce(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		code := newToken(oauth.KindAuthorizeCode, "req-1")
		mustCreate(t, s, code)
		if err := s.DeactivateToken(ctx, code.Kind, code.Signature); err != nil {
			t.Fatal(err)
		}
		if err := s.DeactivateToken(ctx, code.Kind, code.Signature); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("second redemption: %v, want ErrNotFound", err)
		}
	})
}

func TestMarkTokenUsedReturnsAccessSignature(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		refresh := newToken(oauth.KindRefreshToken, "req-1")
		refresh.AccessSignature = "the-access-signature"
		s := newStore(t, d)
		mustCreate(t, s, refresh)
		got, err := s.MarkTokenUsed(context.Background(), refresh.Kind, refresh.Signature, time.Now(), 0)
		if err != nil || got != refresh.AccessSignature {
			t.Fatalf("MarkTokenUsed = %q, %v; want %q", got, err, refresh.AccessSignature)
		}
	})
}
