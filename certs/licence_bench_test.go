package certs

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/ratelimit"
	"github.com/govsso/sso/ratelimit/ratelimittest"
)

// BenchmarkLicenceVerifyHTTP measures licence verifications per second over
// HTTP on loopback, on both databases: POST /certs/api/v1/licences/verify
// with signed data (SM2 verification of the issuer's seal, its chain and
// revocation, the licence's status) and GET …/{identifier}/status. The
// requests go through the per-address rate limit as in `sso serve`, with a
// limit no run reaches, counted in the database ("database"), in Redis at
// $SSO_TEST_REDIS_URL (default 127.0.0.1:6379) as with SSO_REDIS_URL
// ("redis"), or not at all ("off").
func BenchmarkLicenceVerifyHTTP(b *testing.B) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		b.Run(string(dialect), func(b *testing.B) {
			d := dbtest.Open(b, dialect)
			f := newLicenceFixture(b, d)
			lic, err := f.lics.IssueLicence(context.Background(), f.benchRequest(b))
			if err != nil {
				b.Fatal(err)
			}
			mux := http.NewServeMux()
			f.lics.Register(mux)
			srv := httptest.NewServer(mux)
			b.Cleanup(srv.Close)
			verifyBody, err := json.Marshal(map[string][]byte{"signed_data": lic.SignedData, "signature": lic.Signature})
			if err != nil {
				b.Fatal(err)
			}
			client := srv.Client()
			client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64

			for _, counters := range []string{"database", "redis", "off"} {
				b.Run(counters, func(b *testing.B) {
					f.svc.cfg.VerifyLimiter = benchLimiter(b, d, counters)
					b.Run("verify", func(b *testing.B) {
						benchHTTP(b, func() (*http.Response, error) {
							return client.Post(srv.URL+"/certs/api/v1/licences/verify", "application/json", bytes.NewReader(verifyBody))
						})
					})
					b.Run("status", func(b *testing.B) {
						benchHTTP(b, func() (*http.Response, error) {
							return client.Get(srv.URL + "/certs/api/v1/licences/" + lic.Identifier + "/status")
						})
					})
				})
			}
		})
	}
}

// benchLimiter is the verification limiter of a benchmark, with a limit no
// run reaches; nil for "off". The Redis one has no database fallback, so
// that a Redis failure fails the run instead of measuring the database.
func benchLimiter(b *testing.B, d *db.DB, counters string) RateCounter {
	p := ratelimit.Policy{Limit: math.MaxInt32, Window: time.Minute}
	var l RateCounter
	var err error
	switch counters {
	case "off":
		return nil
	case "database":
		l, err = ratelimit.NewDatabase(d, p)
	case "redis":
		rawURL, prefix := ratelimittest.Redis(b)
		opt, oerr := ratelimit.RedisOptions(rawURL)
		if oerr != nil {
			b.Fatal(oerr)
		}
		c := redis.NewClient(opt)
		b.Cleanup(func() { c.Close() })
		l, err = ratelimit.NewRedis(c, prefix, p)
	}
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// benchHTTP runs do from 8 goroutines per P and reports licences/s; every
// answer must be 200 and say valid.
func benchHTTP(b *testing.B, do func() (*http.Response, error)) {
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := do()
			if err != nil {
				b.Error(err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"valid"`)) {
				b.Errorf("status %d: %s", resp.StatusCode, body)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "licences/s")
}

// benchRequest is request for a benchmark (testing.TB).
func (f *licenceFixture) benchRequest(b testing.TB) IssueLicenceRequest {
	return IssueLicenceRequest{TypeCode: f.typ.TypeCode, HolderName: "Bench holder", HolderIDType: HolderResidentID,
		HolderIDNumber: testIDNumber(b), IssuerName: "City Market Bureau", IssuerCreditCode: f.issuer,
		ValidTo: f.clock.t.AddDate(1, 0, 0).Format(time.DateOnly), Fields: map[string]string{"scope": "retail"},
		ClientID: "dept-client"}
}
