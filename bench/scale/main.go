// Command scale is `make bench-scale`: how throughput grows with the number
// of `sso serve` nodes on one PostgreSQL. For 1, 2 and 3 nodes on a fresh
// schema behind a round-robin proxy (the issuer, so every step of a login may
// hit a different node) it runs the client_credentials loop and the SSO
// authorization-code loop (a signed-in browser: authorize, then redeem the
// code) for a fixed time each, and prints requests per second, p50, p99,
// errors, and the CPU time the nodes and PostgreSQL spent, which shows where
// PostgreSQL becomes the limit. Loopback only.
//
//	make build && go run ./bench/scale -bin bin/sso -duration 20s -nodes 1,2,3
package main

import (
	"flag"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govsso/sso/bench/internal/ssoproc"
)

func main() {
	bin := flag.String("bin", "bin/sso", "the sso binary")
	duration := flag.Duration("duration", 20*time.Second, "how long each loop runs per node count")
	nodesFlag := flag.String("nodes", "1,2,3", "node counts, comma-separated")
	conns := flag.Int("conns", 32, "concurrent clients")
	dbURL := flag.String("database-url", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL to create a scratch schema in")
	maxConns := flag.Int("node-db-conns", 20, "SSO_DB_MAX_OPEN_CONNS of each node; nodes × this must stay under PostgreSQL's max_connections")
	flag.Parse()
	if err := run(*bin, *duration, *nodesFlag, *conns, *dbURL, *maxConns); err != nil {
		fmt.Fprintln(os.Stderr, "bench-scale:", err)
		os.Exit(1)
	}
}

// loop prepares one client and returns its step against base, the proxy.
type loop func(base string, secret map[string]string, hc *http.Client) (func() error, error)

var loops = []struct {
	name string
	prep loop
}{
	{"client_credentials", func(base string, secret map[string]string, hc *http.Client) (func() error, error) {
		return func() error {
			_, err := ssoproc.PostForm(hc, base+"/oauth2/token", "cc", secret["cc"], url.Values{"grant_type": {"client_credentials"}, "scope": {"reports"}})
			return err
		}, nil
	}},
	{"authorization_code (SSO)", func(base string, secret map[string]string, hc *http.Client) (func() error, error) {
		if _, err := ssoproc.Authorize(base, hc, ""); err != nil { // signs the browser in once
			return nil, err
		}
		return func() error {
			v, c := ssoproc.PKCE()
			code, err := ssoproc.Authorize(base, hc, c)
			if err != nil {
				return err
			}
			_, err = ssoproc.Exchange(base, hc, secret["web"], code, v)
			return err
		}, nil
	}},
}

type result struct {
	rps            float64
	p50, p99       time.Duration
	errors         int64
	firstErr       string
	nodeCPU, pgCPU float64
}

func run(bin string, duration time.Duration, nodesFlag string, conns int, dbURL string, maxConns int) error {
	var counts []int
	for _, s := range strings.Split(nodesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-nodes: %q is not a node count", s)
		}
		counts = append(counts, n)
	}
	fmt.Printf("bench-scale: %d clients, %s per loop; CPU seconds are the nodes' sum and all postgres processes' (other users of the server included)\n", conns, duration)
	fmt.Printf("%-26s %5s %9s %9s %9s %7s %10s %10s %12s %12s\n", "loop", "nodes", "req/s", "p50", "p99", "errors", "nodes cpu", "pg cpu", "pg cpu/req", "pg-bound/core")
	for _, n := range counts {
		rs, hits, err := runNodes(bin, n, duration, conns, dbURL, maxConns)
		if err != nil {
			return fmt.Errorf("%d nodes: %w", n, err)
		}
		for i, r := range rs {
			// PostgreSQL's CPU per request gives the rate at which one
			// core of a database server of its own would be saturated:
			// the figure a 2-core machine shared by everything cannot show.
			perReq := r.pgCPU / (r.rps * duration.Seconds())
			fmt.Printf("%-26s %5d %9.0f %9s %9s %7d %9.1fs %9.1fs %10.0fµs %10.0f/s\n", loops[i].name, n, r.rps, r.p50, r.p99, r.errors, r.nodeCPU, r.pgCPU, perReq*1e6, 1/perReq)
			if r.firstErr != "" {
				fmt.Printf("  first error: %s\n", r.firstErr)
			}
		}
		fmt.Printf("  requests per node through the proxy: %v\n", hits)
	}
	return nil
}

// runNodes starts n nodes on a fresh schema behind a round-robin proxy and
// measures every loop through it; it also returns how many requests
// each node was sent.
func runNodes(bin string, n int, duration time.Duration, conns int, dbURL string, maxConns int) ([]result, []int64, error) {
	schemaURL, drop, err := ssoproc.Schema(dbURL, "sso_scale_")
	if err != nil {
		return nil, nil, err
	}
	defer drop()
	proxy, ln, err := ssoproc.ListenRoundRobin()
	if err != nil {
		return nil, nil, err
	}
	defer proxy.Close()
	kek := ssoproc.NewKEK()
	var nodes []*ssoproc.Server
	for range n { // one after the other: the first applies the migrations
		s, err := ssoproc.Start(ssoproc.Options{Bin: bin, Issuer: proxy.Base, DatabaseURL: schemaURL, KEK: kek,
			Env: []string{"SSO_TRUSTED_PROXIES=127.0.0.1", "SSO_LOG_LEVEL=error", "SSO_DB_MAX_OPEN_CONNS=" + strconv.Itoa(maxConns)}})
		if err != nil {
			return nil, nil, err
		}
		defer s.Stop()
		nodes = append(nodes, s)
	}
	if err := nodes[0].Prepare(); err != nil {
		return nil, nil, err
	}
	proxy.Serve(ln, nodes)
	var out []result
	for _, l := range loops {
		r, err := measure(proxy.Base, nodes, l.prep, conns, duration)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", l.name, err)
		}
		out = append(out, r)
	}
	return out, proxy.Hits(), nil
}

func measure(base string, nodes []*ssoproc.Server, prep loop, conns int, d time.Duration) (result, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxIdleConns: conns * 2, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	steps := make([]func() error, conns)
	for i := range steps {
		jar, _ := cookiejar.New(nil)
		hc := &http.Client{Transport: tr, Jar: jar, Timeout: 10 * time.Second, CheckRedirect: ssoproc.NoFollowToCallback}
		step, err := prep(base, nodes[0].Secret, hc)
		if err != nil {
			return result{}, err
		}
		steps[i] = step
	}
	nodeCPU := func() float64 {
		var s float64
		for _, n := range nodes {
			s += ssoproc.CPUSeconds(n.Cmd.Process.Pid)
		}
		return s
	}
	node0, pg0 := nodeCPU(), postgresCPU()
	var errs atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, conns)
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := range steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if err := steps[i](); err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return result{}, fmt.Errorf("no request succeeded (%d errors, first: %v)", errs.Load(), firstErr.Load())
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	r := result{
		rps: float64(len(all)) / d.Seconds(), errors: errs.Load(),
		p50: all[len(all)/2].Round(10 * time.Microsecond), p99: all[len(all)*99/100].Round(10 * time.Microsecond),
		nodeCPU: nodeCPU() - node0, pgCPU: postgresCPU() - pg0,
	}
	if s, ok := firstErr.Load().(string); ok {
		if len(s) > 200 {
			s = s[:200]
		}
		r.firstErr = strings.Join(strings.Fields(s), " ")
	}
	return r, nil
}

// postgresCPU sums the CPU seconds of the processes named postgres on this
// machine: the server's backends, which outlive a run thanks to the nodes'
// connection pools. Zero where /proc is not readable or PostgreSQL is remote.
func postgresCPU() float64 {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var s float64
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		s += ssoproc.CPUSeconds(pid)
	}
	return s
}
