// Command soak is `make soak`: two `sso serve` nodes on one fresh
// PostgreSQL schema behind a small round-robin proxy (the issuer), mixed
// traffic for a bounded time (client credentials, introspection, refresh
// rotation, authorization code with an SSO session, discovery reads), a
// signing-key rotation through the CLI a quarter of the way in, and a
// SIGKILL of one node half-way. It reports errors by kind, latency
// percentiles, and the nodes' goroutines and RSS over time, and exits 1 if
// a node answered 5xx, a refresh chain broke other than by the kill, the
// survivor stopped serving, memory or goroutines grew, or the audit chain
// does not verify. Loopback only.
//
//	make build && go run ./bench/soak -bin bin/sso -duration 2m
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
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
	duration := flag.Duration("duration", 2*time.Minute, "length of the run (the issue's soak is 10m)")
	workers := flag.Int("workers", 2, "concurrent loops per scenario")
	sample := flag.Duration("sample", 10*time.Second, "interval between goroutine and RSS samples")
	dbURL := flag.String("database-url", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL to create a scratch schema in")
	flag.Parse()
	ok, err := run(*bin, *duration, *workers, *sample, *dbURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	if !ok {
		fmt.Println("\nFAIL")
		os.Exit(1)
	}
	fmt.Println("\nPASS")
}

// balancer is the load balancer in front of the nodes: round robin over the
// nodes its health checks (and failed requests) found up.
type balancer struct {
	backends []*backend
	next     atomic.Uint64
}

type backend struct {
	url  *url.URL
	up   atomic.Bool
	hits atomic.Int64
}

// proxyHeader marks the balancer's own error answers, so that a request cut
// by the kill is not mistaken for a 5xx of a node.
const proxyHeader = "X-Soak-Proxy-Error"

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
		ErrorHandler: func(w http.ResponseWriter, out *http.Request, err error) {
			for _, be := range b.backends {
				if be.url.Host == out.URL.Host {
					be.up.Store(false) // until the health check finds it again
				}
			}
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

// outcome kinds of one request.
const (
	okKind       = "ok"
	node5xx      = "node 5xx"
	proxyCut     = "cut by the kill"
	clientErr    = "4xx"
	transportErr = "transport"
	otherErr     = "other"
	cutOutside   = "cut, not by the kill"
	lostKind     = "rotated by the dead node"
)

// errRotatedByDeadNode is a refresh token the killed node had rotated
// before its answer was lost.
var errRotatedByDeadNode = errors.New("refresh token rotated by the killed node; its answer was lost")

func classify(err error) string {
	var se *ssoproc.StatusError
	switch {
	case err == nil:
		return okKind
	case errors.Is(err, errRotatedByDeadNode):
		return lostKind
	case errors.As(err, &se) && se.Header.Get(proxyHeader) != "":
		return proxyCut
	case errors.As(err, &se) && se.Status >= 500:
		return node5xx
	case errors.As(err, &se):
		return clientErr
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return transportErr
	}
	return otherErr
}

// stats collects one scenario's outcomes.
type stats struct {
	mu        sync.Mutex
	lat       []time.Duration
	kinds     map[string]int
	afterKill int // successes after the kill
	firstErrs []string
}

// killWindow is how long after the kill a cut request is put down to it;
// the balancer's health check takes the dead node out within 250 ms.
const killWindow = 3 * time.Second

func (s *stats) add(d time.Duration, err error, killedAt time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	afterKill := !killedAt.IsZero()
	k := classify(err)
	if (k == proxyCut || k == transportErr) && (!afterKill || time.Since(killedAt) > killWindow) {
		k = cutOutside
	}
	s.kinds[k]++
	if err == nil {
		s.lat = append(s.lat, d)
		if afterKill {
			s.afterKill++
		}
	} else if len(s.firstErrs) < 3 {
		msg := strings.Join(strings.Fields(err.Error()), " ")
		if len(msg) > 200 {
			msg = msg[:200]
		}
		s.firstErrs = append(s.firstErrs, k+": "+msg)
	}
}

// env is what the scenarios share.
type env struct {
	base     string // the balancer, which is the issuer
	secret   map[string]string
	tr       *http.Transport
	killed   atomic.Bool
	killTime atomic.Int64 // unix nanoseconds of the kill
	broken   atomic.Int64 // refresh chains that failed other than by the kill
	resumed  atomic.Int64 // refreshes cut by the kill whose token still worked
	lost     atomic.Int64 // refreshes cut by the kill after the dead node rotated the token
}

func (e *env) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Transport: e.tr, Jar: jar, Timeout: 10 * time.Second, CheckRedirect: ssoproc.NoFollowToCallback}
}

// scenario prepares one worker and returns its step; the step's error is
// the request's outcome.
type scenario func(e *env, hc *http.Client) (func() error, error)

// ccScenario alternates the opaque-token client and the JWT one, whose
// tokens are signed with the active key: the key rotation must not fail it.
func ccScenario(e *env, hc *http.Client) (func() error, error) {
	ids := []string{"cc", "ccjwt"}
	for _, id := range ids {
		if _, ok := e.secret[id]; !ok {
			return nil, fmt.Errorf("client %s could not be created", id)
		}
	}
	n := 0
	return func() error {
		n++
		id := ids[n%2]
		_, err := ssoproc.PostForm(hc, e.base+"/oauth2/token", id, e.secret[id], url.Values{"grant_type": {"client_credentials"}, "scope": {"reports"}})
		return err
	}, nil
}

func introspectionScenario(e *env, hc *http.Client) (func() error, error) {
	token := func() (string, error) {
		tok, err := ssoproc.PostForm(hc, e.base+"/oauth2/token", "cc", e.secret["cc"], url.Values{"grant_type": {"client_credentials"}, "scope": {"reports"}})
		if err != nil {
			return "", err
		}
		at, _ := tok["access_token"].(string)
		return at, nil
	}
	at, err := token()
	if err != nil {
		return nil, err
	}
	n := 0
	return func() error {
		n++
		if n%50 == 0 { // a fresh token now and then
			t, err := token()
			if err != nil {
				return err
			}
			at = t
			return nil
		}
		out, err := ssoproc.PostForm(hc, e.base+"/oauth2/introspect", "cc", e.secret["cc"], url.Values{"token": {at}})
		if err == nil && out["active"] != true {
			err = errors.New("token inactive")
		}
		return err
	}, nil
}

// refreshChain signs in and returns a fresh refresh token.
func refreshChain(e *env, hc *http.Client) (string, error) {
	v, c := ssoproc.PKCE()
	code, err := ssoproc.Authorize(e.base, hc, c)
	if err != nil {
		return "", err
	}
	tok, err := ssoproc.Exchange(e.base, hc, e.secret["web"], code, v)
	if err != nil {
		return "", err
	}
	rt, _ := tok["refresh_token"].(string)
	if rt == "" {
		return "", errors.New("no refresh token")
	}
	return rt, nil
}

// refreshScenario rotates one refresh token chain. When a refresh is cut
// by the kill, the next step tries the same token again: it still works if
// the dead node had not committed the rotation; if it had, the new token
// died with the answer and the chain begins again. Any other failure is a
// broken chain.
func refreshScenario(e *env, hc *http.Client) (func() error, error) {
	rt, err := refreshChain(e, hc)
	if err != nil {
		return nil, err
	}
	restart, retry := false, false
	return func() error {
		if restart {
			next, err := refreshChain(e, hc)
			if err != nil {
				return err
			}
			rt, restart = next, false
			return nil
		}
		out, err := ssoproc.PostForm(hc, e.base+"/oauth2/token", "web", e.secret["web"], url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		wasRetry := retry
		retry = false
		if err != nil {
			switch k := classify(err); {
			case (k == proxyCut || k == transportErr) && !wasRetry:
				retry = true
			case wasRetry && k == clientErr:
				e.lost.Add(1) // the dead node rotated it; the new token never arrived
				restart = true
				return errRotatedByDeadNode
			default:
				e.broken.Add(1)
				restart = true
			}
			return err
		}
		next, _ := out["refresh_token"].(string)
		if next == "" || next == rt {
			e.broken.Add(1)
			restart = true
			return errors.New("refresh token not rotated")
		}
		if wasRetry {
			e.resumed.Add(1)
		}
		rt = next
		return nil
	}, nil
}

func authCodeScenario(e *env, hc *http.Client) (func() error, error) {
	if _, err := refreshChain(e, hc); err != nil { // signs the browser in once
		return nil, err
	}
	return func() error {
		v, c := ssoproc.PKCE()
		code, err := ssoproc.Authorize(e.base, hc, c)
		if err != nil {
			return err
		}
		_, err = ssoproc.Exchange(e.base, hc, e.secret["web"], code, v)
		return err
	}, nil
}

func discoveryScenario(e *env, hc *http.Client) (func() error, error) {
	return func() error {
		for _, p := range []string{"/.well-known/openid-configuration", "/.well-known/jwks.json"} {
			resp, err := hc.Get(e.base + p)
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return &ssoproc.StatusError{URL: p, Status: resp.StatusCode, Body: string(body), Header: resp.Header}
			}
		}
		return nil
	}, nil
}

var scenarioOrder = []string{"client_credentials", "introspection", "refresh", "authorization_code", "discovery"}

var scenarios = map[string]scenario{
	"client_credentials": ccScenario,
	"introspection":      introspectionScenario,
	"refresh":            refreshScenario,
	"authorization_code": authCodeScenario,
	"discovery":          discoveryScenario,
}

// sampleRow is one observation of the nodes.
type sampleRow struct {
	at         time.Duration
	goroutines []int // per node, -1 once dead
	rssMiB     []int
}

func goroutines(base string) int {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "go_goroutines "); ok {
			n, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int(n)
		}
	}
	return -1
}

func run(bin string, duration time.Duration, workers int, sampleEvery time.Duration, dbURL string) (bool, error) {
	schemaURL, drop, err := ssoproc.Schema(dbURL, "sso_soak_")
	if err != nil {
		return false, err
	}
	defer drop()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return false, err
	}
	issuer := "http://" + ln.Addr().String()
	kek := ssoproc.NewKEK()
	var nodes []*ssoproc.Server
	for range 2 { // one after the other: the first applies the migrations
		n, err := ssoproc.Start(ssoproc.Options{Bin: bin, Issuer: issuer, DatabaseURL: schemaURL, KEK: kek,
			Env: []string{"SSO_TRUSTED_PROXIES=127.0.0.1"}})
		if err != nil {
			return false, err
		}
		defer n.Stop()
		nodes = append(nodes, n)
	}
	survivor, victim := nodes[0], nodes[1]
	if err := survivor.Prepare(); err != nil {
		return false, err
	}
	lb := &balancer{}
	for _, n := range nodes {
		u, _ := url.Parse(n.Base)
		be := &backend{url: u}
		be.up.Store(true)
		lb.backends = append(lb.backends, be)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go lb.health(ctx)
	proxy := &http.Server{Handler: lb.handler(), ReadHeaderTimeout: 5 * time.Second}
	go proxy.Serve(ln)
	defer proxy.Close()

	e := &env{base: issuer, secret: survivor.Secret,
		tr: &http.Transport{MaxIdleConnsPerHost: 64, MaxIdleConns: 128, IdleConnTimeout: time.Minute}}
	fmt.Printf("soak: 2 nodes on PostgreSQL behind %s, %s, %d workers per scenario\n", issuer, duration, workers)

	all := map[string]*stats{}
	type job struct {
		name string
		step func() error
	}
	var jobs []job
	for _, name := range scenarioOrder {
		all[name] = &stats{kinds: map[string]int{}}
		for range workers {
			step, err := scenarios[name](e, e.client())
			if err != nil {
				return false, fmt.Errorf("prepare %s: %w", name, err)
			}
			jobs = append(jobs, job{name, step})
		}
	}

	start := time.Now()
	deadline := start.Add(duration)
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				t0 := time.Now()
				err := j.step()
				var killedAt time.Time
				if e.killed.Load() {
					killedAt = time.Unix(0, e.killTime.Load())
				}
				all[j.name].add(time.Since(t0), err, killedAt)
			}
		}()
	}

	var samples []sampleRow
	var events []string
	rotateAt, killAt := duration/4, duration/2
	rotated, killedAt := false, time.Duration(0)
	var afterKillOK atomic.Int64
	next := time.Duration(0)
	for time.Now().Before(deadline) {
		el := time.Since(start)
		if el >= next {
			row := sampleRow{at: el.Round(time.Second)}
			for _, n := range nodes {
				g, r := -1, 0
				if !(n == victim && e.killed.Load()) {
					g, r = goroutines(n.Base), ssoproc.RSSKiB(n.Cmd.Process.Pid)/1024
				}
				row.goroutines = append(row.goroutines, g)
				row.rssMiB = append(row.rssMiB, r)
			}
			samples = append(samples, row)
			next += sampleEvery
		}
		if !rotated && el >= rotateAt {
			rotated = true
			out, err := survivor.CLI("", "keys", "rotate")
			events = append(events, fmt.Sprintf("%s sso keys rotate (err %v): %d new keys", el.Round(time.Second), err, strings.Count(strings.TrimSpace(out), "\n")))
		}
		if killedAt == 0 && el >= killAt {
			e.killTime.Store(time.Now().UnixNano())
			e.killed.Store(true)
			victim.Kill()
			killedAt = el
			events = append(events, fmt.Sprintf("%s SIGKILL node 2 (pid %d)", el.Round(time.Second), victim.Cmd.Process.Pid))
		}
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	for _, s := range all {
		afterKillOK.Add(int64(s.afterKill))
	}

	// After it all, a new sign-in's refresh token still refreshes.
	finalRefresh := "ok"
	hc := e.client()
	if rt, err := refreshChain(e, hc); err != nil {
		finalRefresh = "sign-in failed: " + err.Error()
	} else if _, err := ssoproc.PostForm(hc, e.base+"/oauth2/token", "web", e.secret["web"], url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}); err != nil {
		finalRefresh = "refresh failed: " + err.Error()
	}

	// Report.
	for _, ev := range events {
		fmt.Println("event:", ev)
	}
	fmt.Printf("\n%-20s %8s %8s %8s %8s %9s %9s  %s\n", "scenario", "ok", "req/s", "p50", "p99", "ok after", "errors", "error kinds")
	var lat []time.Duration
	fiveXX := 0
	other := 0
	for _, name := range scenarioOrder {
		s := all[name]
		sort.Slice(s.lat, func(i, j int) bool { return s.lat[i] < s.lat[j] })
		lat = append(lat, s.lat...)
		errs := 0
		var kinds []string
		for k, n := range s.kinds {
			if k == okKind {
				continue
			}
			errs += n
			kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
			switch k {
			case node5xx:
				fiveXX += n
			case proxyCut, transportErr, lostKind:
			default:
				other += n
			}
		}
		slices.Sort(kinds)
		fmt.Printf("%-20s %8d %8.0f %8s %8s %9d %9d  %s\n", name, len(s.lat), float64(len(s.lat))/duration.Seconds(),
			pct(s.lat, 50), pct(s.lat, 99), s.afterKill, errs, strings.Join(kinds, " "))
		for _, m := range s.firstErrs {
			fmt.Println("    e.g.", m)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	fmt.Printf("%-20s %8d %8.0f %8s %8s\n", "all", len(lat), float64(len(lat))/duration.Seconds(), pct(lat, 50), pct(lat, 99))
	fmt.Printf("\nbalancer hits: node 1 %d, node 2 %d\n", lb.backends[0].hits.Load(), lb.backends[1].hits.Load())

	fmt.Printf("\n%8s %12s %12s %10s %10s\n", "t", "goroutines 1", "goroutines 2", "RSS 1 MiB", "RSS 2 MiB")
	for _, r := range samples {
		fmt.Printf("%8s %12d %12d %10d %10d\n", r.at, r.goroutines[0], r.goroutines[1], r.rssMiB[0], r.rssMiB[1])
	}

	// Growth of the survivor once it carries all the traffic: the first
	// sample at least one interval after the kill against the last.
	var post []sampleRow
	for _, r := range samples {
		if killedAt > 0 && r.at >= killedAt+sampleEvery {
			post = append(post, r)
		}
	}
	growth := "not enough samples after the kill to judge"
	grew := false
	if len(post) >= 2 {
		f, l := post[0], post[len(post)-1]
		grew = l.goroutines[0] > f.goroutines[0]*6/5+10 || l.rssMiB[0] > f.rssMiB[0]*5/4+5
		growth = fmt.Sprintf("survivor from %s to %s: goroutines %d → %d, RSS %d → %d MiB", f.at, l.at,
			f.goroutines[0], l.goroutines[0], f.rssMiB[0], l.rssMiB[0])
	}

	// The survivor seals the last records as it stops; then the chain must verify.
	survivor.Stop()
	out, verr := survivor.CLI("", "audit", "verify")
	audit := strings.TrimSpace(firstLine(out))
	if verr != nil {
		audit = "FAILED: " + verr.Error() + " " + audit
	}

	fmt.Println()
	checks := []struct {
		name string
		ok   bool
		info string
	}{
		{"no 5xx from the nodes", fiveXX == 0, strconv.Itoa(fiveXX)},
		{"no unexplained errors (4xx, other)", other == 0, strconv.Itoa(other)},
		{"survivor served after the kill", afterKillOK.Load() > 0, strconv.FormatInt(afterKillOK.Load(), 10) + " requests"},
		{"no refresh chain broken", e.broken.Load() == 0, fmt.Sprintf("%d broken; of the refreshes cut by the kill %d resumed with the same token, %d had been rotated by the dead node", e.broken.Load(), e.resumed.Load(), e.lost.Load())},
		{"a new chain refreshes at the end", finalRefresh == "ok", finalRefresh},
		{"no growth of goroutines or RSS", !grew, growth},
		{"audit chain verifies", verr == nil, audit},
	}
	pass := true
	for _, c := range checks {
		mark := "ok  "
		if !c.ok {
			mark, pass = "FAIL", false
		}
		fmt.Printf("%s %-38s %s\n", mark, c.name, c.info)
	}
	return pass, nil
}

func pct(sorted []time.Duration, p int) string {
	if len(sorted) == 0 {
		return "-"
	}
	return sorted[(len(sorted)-1)*p/100].Round(10 * time.Microsecond).String()
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
