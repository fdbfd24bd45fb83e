package oauth_test

import (
	"context"
	"testing"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/oauth"
)

// benchBackends lists the databases each benchmark runs on.
func benchBackends() []db.Dialect { return []db.Dialect{db.SQLite, db.Postgres} }

// BenchmarkTokenInsert measures CreateToken with about 1 KB of data: the
// cost paid for every code, access and refresh token issued.
func BenchmarkTokenInsert(b *testing.B) {
	for _, dialect := range benchBackends() {
		b.Run(string(dialect), func(b *testing.B) {
			s := newStore(b, dbtest.Open(b, dialect))
			tokens := make([]*oauth.Token, b.N)
			for i := range tokens {
				tokens[i] = newToken(oauth.KindAccessToken, "req")
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if err := s.CreateToken(ctx, tokens[i]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTokenLookup measures GetToken, which every introspection and
// every API call with an opaque token pays.
func BenchmarkTokenLookup(b *testing.B) {
	const stored = 1000
	for _, dialect := range benchBackends() {
		b.Run(string(dialect), func(b *testing.B) {
			s := newStore(b, dbtest.Open(b, dialect))
			tokens := make([]*oauth.Token, stored)
			for i := range tokens {
				tokens[i] = newToken(oauth.KindAccessToken, "req")
			}
			mustCreate(b, s, tokens...)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				tok := tokens[i%stored]
				if _, err := s.GetToken(ctx, tok.Kind, tok.Signature); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
