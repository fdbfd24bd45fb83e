package main

import (
	"context"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// balancer is the load balancer in front of the nodes: round robin over the
// nodes its health checks (and failed requests) found up, or over all of
// them when none is (during a database outage every node is unready).
type balancer struct {
	backends []*backend
	next     atomic.Uint64
	// outage, once the PostgreSQL restart began, has every backend log
	// the outcome of its database-backed requests.
	outage *outage
}

type backend struct {
	url  *url.URL
	up   atomic.Bool
	hits atomic.Int64

	mu  sync.Mutex
	log []served // database-backed requests since the restart began
}

// served is one database-backed request a backend answered (or failed to).
type served struct {
	at   time.Time
	fail bool // 5xx or no answer
}

// proxyHeader marks the balancer's own error answers, so that a request cut
// by the kill is not mistaken for a 5xx of a node.
const proxyHeader = "X-Soak-Proxy-Error"

// dbBacked says whether answering path needs the database: what the outage
// window and the recovery are measured on (discovery is served from memory).
func dbBacked(path string) bool {
	return strings.HasPrefix(path, "/oauth2/") || strings.HasPrefix(path, "/admin/api/") || path == "/login"
}

func (b *balancer) backendOf(u *url.URL) *backend {
	for _, be := range b.backends {
		if be.url.Host == u.Host {
			return be
		}
	}
	return nil
}

func (b *balancer) note(be *backend, path string, fail bool) {
	if be == nil || !b.outage.begun() || !dbBacked(path) {
		return
	}
	be.mu.Lock()
	be.log = append(be.log, served{at: time.Now(), fail: fail})
	be.mu.Unlock()
}

func (b *balancer) handler() http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			n := uint64(len(b.backends))
			start := b.next.Add(1)
			be := b.backends[start%n]
			for i := range n {
				if c := b.backends[(start+i)%n]; c.up.Load() {
					be = c
					break
				}
			}
			be.hits.Add(1)
			pr.SetURL(be.url)
			pr.Out.Host = pr.In.Host // the nodes see the issuer's host
			pr.SetXForwarded()
		},
		ModifyResponse: func(resp *http.Response) error {
			// The authorization endpoint says 503 by redirecting to the
			// client with error=temporarily_unavailable.
			fail := resp.StatusCode >= 500 || strings.Contains(resp.Header.Get("Location"), "error=temporarily_unavailable")
			b.note(b.backendOf(resp.Request.URL), resp.Request.URL.Path, fail)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, out *http.Request, err error) {
			be := b.backendOf(out.URL)
			if be != nil {
				be.up.Store(false) // until the health check finds it again
			}
			b.note(be, out.URL.Path, true)
			w.Header().Set(proxyHeader, "1")
			http.Error(w, "proxy: "+err.Error(), http.StatusBadGateway)
		},
	}
}

// health marks backends up or down every 250 ms until ctx ends.
func (b *balancer) health(ctx context.Context) {
	hc := &http.Client{Timeout: time.Second}
	for ctx.Err() == nil {
		for _, be := range b.backends {
			resp, err := hc.Get(be.url.String() + "/healthz/ready")
			up := err == nil && resp.StatusCode == http.StatusOK
			if err == nil {
				resp.Body.Close()
			}
			be.up.Store(up)
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// nodeOutage is one node's outage as its clients saw it through the
// balancer: from its first failed database-backed request after the
// restart began to its first success after the last failure.
type nodeOutage struct {
	fails                 int
	firstFail, lastFail   time.Time
	recovered             time.Time // zero: never served again, or never failed
	firstOKAfterRestarted time.Time // first success after PostgreSQL accepted connections again
}

func (be *backend) outage(pgUp time.Time) nodeOutage {
	be.mu.Lock()
	defer be.mu.Unlock()
	var o nodeOutage
	for _, s := range be.log {
		if s.fail {
			o.fails++
			if o.firstFail.IsZero() {
				o.firstFail = s.at
			}
			o.lastFail = s.at
		}
	}
	for _, s := range be.log {
		if s.fail {
			continue
		}
		if o.recovered.IsZero() && !o.lastFail.IsZero() && s.at.After(o.lastFail) {
			o.recovered = s.at
		}
		if o.firstOKAfterRestarted.IsZero() && !pgUp.IsZero() && s.at.After(pgUp) {
			o.firstOKAfterRestarted = s.at
		}
	}
	return o
}
