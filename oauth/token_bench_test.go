package oauth_test

import (
	"context"
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

// BenchmarkRefreshHandler is one refresh-token rotation through the real
// handler and storage, with an ID token (RS256) as the openid scope asks.
func BenchmarkRefreshHandler(b *testing.B) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		b.Run(string(dialect), func(b *testing.B) {
			e := newDeviceEnv(b, dbtest.Open(b, dialect))
			deviceCode, userCode := e.authorize(b, "openid profile offline_access")
			if err := e.p.DecideDevice(context.Background(), userCode, true, e.session, "192.0.2.1", "bench"); err != nil {
				b.Fatal(err)
			}
			status, tok := e.poll(b, deviceCode)
			if status != 200 {
				b.Fatalf("tokens: %d %v", status, tok)
			}
			refresh := tok["refresh_token"].(string)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				status, out := e.post(b, "/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {"kiosk"}}, "", "")
				if status != 200 {
					b.Fatalf("refresh: %d %v", status, out)
				}
				refresh = out["refresh_token"].(string)
			}
		})
	}
}
