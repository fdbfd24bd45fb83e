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

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/users"
)

// BenchmarkLicenceVerifyHTTP measures licence verifications per second over
// HTTP on loopback, on both databases: POST /certs/api/v1/licences/verify
// with signed data (SM2 verification of the issuer's seal, its chain and
// revocation, the licence's status) and GET …/{identifier}/status. The
// requests go through the per-address rate limit as in `sso serve`, with a
// limit no run reaches, so that its database write is counted too.
func BenchmarkLicenceVerifyHTTP(b *testing.B) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		b.Run(string(dialect), func(b *testing.B) {
			d := dbtest.Open(b, dialect)
			f := newLicenceFixture(b, d)
			f.svc.cfg.VerifyLimiter = users.NewLockout(d, users.LockoutPolicy{MaxFailures: math.MaxInt32, Window: time.Minute, LockFor: time.Minute})
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
