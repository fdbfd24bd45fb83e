package certs

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emmansun/gmsm/smx509"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/ratelimit"
)

func TestRefreshCRLIfDue(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, clock := newTestService(t, d)
		ca := initCA(t, s)
		number := func() int64 {
			_, n, err := s.store.crl(ctx, ca.Issuer.ID)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		start := number()
		steps := []struct {
			advance time.Duration
			want    bool
		}{
			{0, false},                           // init just published one
			{CRLRefreshAge - time.Minute, false}, // still young
			{2 * time.Minute, true},              // now older than CRLRefreshAge
			{0, false},                           // the fresh one is not re-signed
		}
		for i, st := range steps {
			clock.t = clock.t.Add(st.advance)
			got, err := s.RefreshCRLIfDue(ctx, CRLRefreshAge)
			if err != nil || got != st.want {
				t.Fatalf("step %d: refreshed = %v, %v; want %v", i, got, err, st.want)
			}
		}
		if n := number(); n != start+1 {
			t.Fatalf("CRL number %d, want %d", n, start+1)
		}
		der, err := s.CRL(ctx)
		if err != nil {
			t.Fatal(err)
		}
		crl, err := smx509.ParseRevocationList(der)
		if err != nil {
			t.Fatal(err)
		}
		if want := clock.t.Truncate(time.Second); !crl.ThisUpdate.Equal(want) || !crl.NextUpdate.Equal(want.Add(CRLValidity)) {
			t.Fatalf("thisUpdate %v nextUpdate %v, want %v and +%v", crl.ThisUpdate, crl.NextUpdate, want, CRLValidity)
		}
	})
}

// Several nodes run the schedule over one database: one of them re-signs.
func TestRefreshCRLIfDueOnceAcrossNodes(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		first, clock := newTestService(t, d)
		ca := initCA(t, first)
		clock.t = clock.t.Add(CRLRefreshAge + time.Minute)
		_, before, _ := first.store.crl(ctx, ca.Issuer.ID)
		nodes := []*Service{first}
		for range 3 {
			n := *first // the same keys and database, as another process would have
			nodes = append(nodes, &n)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		refreshed := 0
		for _, n := range nodes {
			wg.Go(func() {
				ok, err := n.RefreshCRLIfDue(ctx, CRLRefreshAge)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					t.Errorf("RefreshCRLIfDue: %v", err)
				}
				if ok {
					refreshed++
				}
			})
		}
		wg.Wait()
		_, after, _ := first.store.crl(ctx, ca.Issuer.ID)
		if refreshed != 1 || after != before+1 {
			t.Fatalf("%d nodes re-signed, CRL number %d → %d; want exactly one", refreshed, before, after)
		}
	})
}

func TestVerifyEndpointsAreRateLimited(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newLicenceFixture(t, d)
		l, err := ratelimit.NewDatabase(d, ratelimit.Policy{Limit: 3, Window: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		f.svc.cfg.VerifyLimiter = l
		mux := http.NewServeMux()
		f.svc.Register(mux)
		f.lics.Register(mux)
		do := func(ip, method, path, body string) *httptest.ResponseRecorder {
			req := httptest.NewRequest(method, path, strings.NewReader(body))
			req.RemoteAddr = ip + ":40000"
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			return rec
		}
		// Three requests pass (a bad body is still a request), across all
		// four endpoints; the fourth from the same address is refused.
		for _, c := range []struct{ method, path, body string }{
			{"POST", "/certs/api/v1/verify", "{}"},
			{"GET", "/certs/api/v1/certificates/00ff/status", ""},
			{"POST", "/certs/api/v1/licences/verify", "{}"},
		} {
			if rec := do("192.0.2.1", c.method, c.path, c.body); rec.Code == http.StatusTooManyRequests {
				t.Fatalf("%s %s refused before the limit", c.method, c.path)
			}
		}
		rec := do("192.0.2.1", "GET", "/certs/api/v1/licences/x/status", "")
		if rec.Code != http.StatusTooManyRequests {
			t.Fatalf("request over the limit: %d %s", rec.Code, rec.Body)
		}
		if ra, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || ra < 1 || ra > 61 {
			t.Fatalf("Retry-After %q, want 1..61 seconds", rec.Header().Get("Retry-After"))
		}
		if !strings.Contains(rec.Body.String(), "rate_limited") {
			t.Fatalf("429 body %s", rec.Body)
		}
		if rec := do("192.0.2.2", "POST", "/certs/api/v1/verify", "{}"); rec.Code != http.StatusBadRequest {
			t.Fatalf("another address: %d, want the ordinary 400", rec.Code)
		}
		if rec := do("192.0.2.1", "GET", "/certs/crl", ""); rec.Code != http.StatusOK {
			t.Fatalf("the CRL is not limited: %d", rec.Code)
		}
	})
}
