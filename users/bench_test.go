package users_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/users"
)

// BenchmarkGetByUsername is the lookup every password login starts with.
func BenchmarkGetByUsername(b *testing.B) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		b.Run(string(dialect), func(b *testing.B) {
			ctx := context.Background()
			s := newStore(b, dbtest.Open(b, dialect))
			hash, _ := users.NewPasswordHasher(users.DefaultArgon2Params).Hash("benchmark password")
			for i := 0; i < 1000; i++ {
				u := &users.User{Username: fmt.Sprintf("user%04d", i), Kind: users.KindCitizen, PasswordHash: hash, Phone: fmt.Sprintf("138%08d", i)}
				if err := s.Create(ctx, u); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := s.GetByUsername(ctx, fmt.Sprintf("user%04d", i%1000)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkArgon2idHash is the raw cost of one password hash at the default
// parameters, the yardstick for password-login throughput.
func BenchmarkArgon2idHash(b *testing.B) {
	h := users.NewPasswordHasher(users.DefaultArgon2Params)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := h.Hash("benchmark password"); err != nil {
			b.Fatal(err)
		}
	}
}
