package oauth

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

func TestListConsents(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		p := newTokenTestProvider(t, d, nil)
		user, other := "u-"+rand.Text(), "u-"+rand.Text()
		if err := p.store.GrantConsent(ctx, user, "housing", []string{"openid", "phone"}, true); err != nil {
			t.Fatal(err)
		}
		if err := p.store.GrantConsent(ctx, user, "once", []string{"openid"}, false); err != nil {
			t.Fatal(err)
		}
		if err := p.store.GrantConsent(ctx, other, "tax", []string{"openid"}, true); err != nil {
			t.Fatal(err)
		}
		got, err := p.store.ListConsents(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].ClientID != "housing" {
			t.Fatalf("ListConsents = %+v, want only the remembered housing consent", got)
		}
		c := got[0]
		if len(c.Scopes) != 2 || c.Scopes[1] != "phone" || c.GrantedAt.IsZero() || !c.ExpiresAt.After(time.Now()) {
			t.Errorf("consent %+v", c)
		}
		if c.GrantedAt.Location() != time.UTC {
			t.Errorf("granted_at in %v, want UTC", c.GrantedAt.Location())
		}
	})
}

func TestRevokeClientAccess(t *testing.T) {
	tests := []struct {
		name        string
		subjectType string
	}{
		{"public subject", SubjectPublic},
		{"pairwise subject", SubjectPairwise},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dbtest.Backends(t, func(t *testing.T, d *db.DB) {
				testRevokeClientAccess(t, d, tt.subjectType)
			})
		})
	}
}

func testRevokeClientAccess(t *testing.T, d *db.DB, subjectType string) {
	ctx := context.Background()
	p := newTokenTestProvider(t, d, nil)
	c := &Client{ID: "housing", Name: "Housing", Public: true, RedirectURIs: []string{"https://housing.example.gov/cb"}}
	c.ApplyDefaults()
	c.SubjectType = subjectType
	if err := p.store.CreateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	user, other := "u-"+rand.Text(), "u-"+rand.Text()
	for _, u := range []string{user, other} {
		if err := p.store.GrantConsent(ctx, u, c.ID, []string{"openid"}, true); err != nil {
			t.Fatal(err)
		}
	}
	mine := []*Token{consentTestToken(KindRefreshToken, c.ID, p.subjectFor(c, user)), consentTestToken(KindAccessToken, c.ID, p.subjectFor(c, user))}
	theirs := consentTestToken(KindRefreshToken, c.ID, p.subjectFor(c, other))
	for _, tok := range append(mine, theirs) {
		if err := p.store.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}

	if err := p.RevokeClientAccess(ctx, user, c.ID, "192.0.2.1", "test"); err != nil {
		t.Fatal(err)
	}
	if list, err := p.store.ListConsents(ctx, user); err != nil || len(list) != 0 {
		t.Errorf("consents after revocation: %v, %v", list, err)
	}
	for _, tok := range mine {
		if _, err := p.store.GetToken(ctx, tok.Kind, tok.Signature); !errors.Is(err, db.ErrNotFound) {
			t.Errorf("%s after revocation: %v, want ErrNotFound", tok.Kind, err)
		}
	}
	if _, err := p.store.GetToken(ctx, theirs.Kind, theirs.Signature); err != nil {
		t.Errorf("another person's token: %v", err)
	}
	if list, _ := p.store.ListConsents(ctx, other); len(list) != 1 {
		t.Errorf("another person's consents: %v", list)
	}
	events, err := audit.NewLog(d).List(ctx, audit.Filter{Subject: user, Action: actionConsentRevoke})
	if err != nil || len(events) != 1 || events[0].ClientID != c.ID {
		t.Errorf("audit events %+v, %v", events, err)
	}
}

func consentTestToken(kind TokenKind, clientID, subject string) *Token {
	now := time.Now()
	return &Token{Kind: kind, Signature: rand.Text(), RequestID: rand.Text(), ClientID: clientID, Subject: subject,
		Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Hour), Data: []byte(`{}`)}
}
