package audit_test

import (
	"context"
	"testing"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

// BenchmarkAppend measures the cost an audited action pays for its record.
func BenchmarkAppend(b *testing.B) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		b.Run(string(dialect), func(b *testing.B) {
			l := audit.NewLog(dbtest.Open(b, dialect))
			ctx := context.Background()
			e := audit.Event{Actor: "u1", Subject: "u1", ClientID: "tax", IP: "203.0.113.7", UserAgent: "Mozilla/5.0",
				Action: audit.ActionLogin, Result: audit.ResultSuccess, Details: map[string]string{"method": "pwd"}}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := l.Append(ctx, e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppendParallel is many requests auditing at once, as on a busy
// node: appends do not wait for each other, sealing happens apart.
func BenchmarkAppendParallel(b *testing.B) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		b.Run(string(dialect), func(b *testing.B) {
			l := audit.NewLog(dbtest.Open(b, dialect))
			ctx := context.Background()
			e := audit.Event{Actor: "tax", ClientID: "tax", Action: audit.ActionOAuthToken, Result: audit.ResultSuccess}
			b.ReportAllocs()
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := l.Append(ctx, e); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			if _, err := l.Seal(ctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkSeal is the sealer's cost per record.
func BenchmarkSeal(b *testing.B) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		b.Run(string(dialect), func(b *testing.B) {
			d := dbtest.Open(b, dialect)
			l := audit.NewLog(d)
			ctx := context.Background()
			err := d.InTx(ctx, func(ctx context.Context) error {
				for i := 0; i < b.N; i++ {
					if _, err := l.Append(ctx, audit.Event{Action: audit.ActionLogin, Result: audit.ResultSuccess}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			if n, err := l.Seal(ctx); err != nil || n != b.N {
				b.Fatalf("sealed %d of %d: %v", n, b.N, err)
			}
		})
	}
}
