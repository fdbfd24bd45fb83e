package oauth_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

// BenchmarkClientCredentialsHandler is one client_credentials token
// request through the real HTTP handler and storage (an in-process server,
// no load generator), to profile what the token endpoint spends.
func BenchmarkClientCredentialsHandler(b *testing.B) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		b.Run(string(dialect), func(b *testing.B) {
			e := newDeviceEnv(b, dbtest.Open(b, dialect))
			body := url.Values{"grant_type": {"client_credentials"}, "scope": {"openid"}}.Encode()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest("POST", e.url+"/oauth2/token", strings.NewReader(body))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.SetBasicAuth("web", e.secret)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
			})
		})
	}
}
