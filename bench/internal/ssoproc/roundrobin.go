package ssoproc

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"time"
)

// RoundRobin is a reverse proxy that sends each request to the next node in
// turn, as a load balancer without affinity would: every step of a login may
// land on a different node. It is the issuer the nodes are configured with.
type RoundRobin struct {
	// Base is the proxy's http://addr.
	Base  string
	nodes []*url.URL
	hits  []atomic.Int64
	next  atomic.Uint64
	srv   *http.Server
}

// ListenRoundRobin listens on a free loopback address; Serve starts
// forwarding once the nodes, which need the address as their issuer, are up.
func ListenRoundRobin() (*RoundRobin, net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	return &RoundRobin{Base: "http://" + ln.Addr().String()}, ln, nil
}

// Serve forwards the requests ln accepts to nodes (their Base) until Close.
func (p *RoundRobin) Serve(ln net.Listener, nodes []*Server) {
	for _, n := range nodes {
		u, _ := url.Parse(n.Base)
		p.nodes = append(p.nodes, u)
	}
	p.hits = make([]atomic.Int64, len(p.nodes))
	rp := &httputil.ReverseProxy{
		Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxIdleConns: 512, IdleConnTimeout: time.Minute},
		Rewrite: func(pr *httputil.ProxyRequest) {
			i := int(p.next.Add(1) % uint64(len(p.nodes)))
			p.hits[i].Add(1)
			pr.SetURL(p.nodes[i])
			pr.Out.Host = pr.In.Host // the nodes see the issuer's host
			pr.SetXForwarded()
		},
	}
	p.srv = &http.Server{Handler: rp, ReadHeaderTimeout: 5 * time.Second}
	go p.srv.Serve(ln)
}

// Hits is how many requests each node was sent, in the order given to Serve.
func (p *RoundRobin) Hits() []int64 {
	out := make([]int64, len(p.hits))
	for i := range p.hits {
		out[i] = p.hits[i].Load()
	}
	return out
}

// Close stops the proxy.
func (p *RoundRobin) Close() {
	if p.srv != nil {
		p.srv.Close()
	}
}
