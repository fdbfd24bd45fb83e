package oauth

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/go-jose/go-jose/v3/jwt"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

func TestUserForSubject(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		p := newTokenTestProvider(t, d, nil)
		clients := map[string]string{"public-dept": SubjectPublic, "pairwise-dept": SubjectPairwise}
		for id, st := range clients {
			c := &Client{ID: id, Name: id, Public: true, RedirectURIs: []string{"https://" + id + ".example.gov/cb"}}
			c.ApplyDefaults()
			c.SubjectType = st
			if err := p.store.CreateClient(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		user, stranger := "u-"+rand.Text(), "u-"+rand.Text()
		if err := p.store.GrantConsent(ctx, user, "pairwise-dept", []string{"openid"}, true); err != nil {
			t.Fatal(err)
		}
		pw, _ := p.store.GetClient(ctx, "pairwise-dept")
		tests := []struct {
			name, client, sub, want string
			err                     error
		}{
			{"public sub is the account id", "public-dept", user, user, nil},
			{"pairwise sub of a person who consented", "pairwise-dept", p.subjectFor(pw, user), user, nil},
			{"pairwise sub of a stranger", "pairwise-dept", p.subjectFor(pw, stranger), "", db.ErrNotFound},
			{"account id given to a pairwise client", "pairwise-dept", user, "", db.ErrNotFound},
			{"unknown client", "nobody", user, "", db.ErrNotFound},
		}
		for _, tt := range tests {
			got, err := p.UserForSubject(ctx, tt.client, tt.sub)
			if got != tt.want || (tt.err == nil) != (err == nil) || (tt.err != nil && !errors.Is(err, tt.err)) {
				t.Errorf("%s: %q, %v; want %q, %v", tt.name, got, err, tt.want, tt.err)
			}
		}
	})
}

func TestSignNotification(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		p := newTokenTestProvider(t, d, nil)
		raw, err := p.SignNotification(ctx, "sign-request+jwt", "dept", map[string]any{"status": "signed", "aud": "someone-else"})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := jwt.ParseSigned(raw)
		if err != nil {
			t.Fatal(err)
		}
		if typ := tok.Headers[0].ExtraHeaders["typ"]; typ != "sign-request+jwt" {
			t.Fatalf("typ %v", typ)
		}
		key, err := p.signingKey(withIDTokenAlg(ctx, AlgRS256))
		if err != nil {
			t.Fatal(err)
		}
		var claims map[string]any
		if err := tok.Claims(key.Public(), &claims); err != nil {
			t.Fatalf("signature: %v", err)
		}
		if claims["aud"] != "dept" || claims["iss"] != p.cfg.Issuer || claims["status"] != "signed" || claims["jti"] == nil {
			t.Fatalf("claims %v", claims)
		}
	})
}
