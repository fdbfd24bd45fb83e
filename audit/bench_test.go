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
