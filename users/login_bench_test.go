package users_test

import (
	"context"
	"testing"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/users"
)

// BenchmarkPasswordLogin is one successful sign-in at the default argon2id
// parameters on SQLite: lookup, lockout check and reset, verification and
// the audit record. Compare with BenchmarkArgon2idHash to see what the
// database adds to the hash.
func BenchmarkPasswordLogin(b *testing.B) {
	ctx := context.Background()
	d := dbtest.Open(b, db.SQLite)
	store := newStore(b, d)
	hasher := users.NewPasswordHasher(users.DefaultArgon2Params)
	password := "benchmark password"
	hash, err := hasher.Hash(password)
	if err != nil {
		b.Fatal(err)
	}
	if err := store.Create(ctx, &users.User{Username: "bench", Kind: users.KindCitizen, PasswordHash: hash}); err != nil {
		b.Fatal(err)
	}
	auth := users.NewAuthenticator(store, hasher, users.NewLockout(d, users.LockoutPolicy{}), audit.NewLog(d))
	meta := users.RequestMeta{IP: "192.0.2.1", UserAgent: "bench", ClientID: "bench"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := auth.PasswordLogin(ctx, "bench", password, meta); err != nil {
			b.Fatal(err)
		}
	}
}
