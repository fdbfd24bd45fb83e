// Command soak is `make soak`: two `sso serve` nodes on one fresh
// PostgreSQL schema behind a small round-robin proxy (the issuer), mixed
// traffic for a bounded time (client credentials, introspection, refresh
// rotation, authorization code with an SSO session, discovery reads, admin
// API reads), and faults on a timeline: a signing-key rotation through the
// CLI at ¼, a SIGKILL of node 2 at ½, node 2 started again at ⅝, and a
// restart of PostgreSQL itself at ¾.
//
// It reports errors by kind, latency percentiles, the outage the clients
// saw and how long the nodes took to serve again after PostgreSQL came
// back, and the nodes' goroutines and RSS over time. It exits 1 if a node
// answered 5xx other than 503 with Retry-After during the restart, a
// request hung, a refresh chain broke other than by losing an answer to
// the kill, a token issued before the restart was forgotten, an oauth.token
// audit record is missing or doubled, memory or goroutines grew, or the
// audit chain does not verify. Loopback only; PostgreSQL is started again
// at the end if the soak left it down.
//
//	make build && go run ./bench/soak -bin bin/sso -duration 2m
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/govsso/sso/bench/internal/ssoproc"
)

// config is the command line.
type config struct {
	bin          string
	duration     time.Duration
	workers      int
	sampleEvery  time.Duration
	dbURL        string
	revive       bool
	pgRestart    bool
	pgRestartCmd string
	maxRecovery  time.Duration
	maxLatency   time.Duration
}

func main() {
	var c config
	flag.StringVar(&c.bin, "bin", "bin/sso", "the sso binary")
	flag.DurationVar(&c.duration, "duration", 2*time.Minute, "length of the run (the issue's soak is 10m)")
	flag.IntVar(&c.workers, "workers", 2, "concurrent loops per scenario")
	flag.DurationVar(&c.sampleEvery, "sample", 10*time.Second, "interval between goroutine and RSS samples")
	flag.StringVar(&c.dbURL, "database-url", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL to create a scratch schema in")
	flag.BoolVar(&c.revive, "revive", true, "start the killed node again at ⅝ of the run, so that both nodes meet the PostgreSQL restart")
	flag.BoolVar(&c.pgRestart, "pg-restart", true, "restart PostgreSQL at ¾ of the run (needs the rights to; we run as root)")
	flag.StringVar(&c.pgRestartCmd, "pg-restart-cmd", "", "shell command that restarts PostgreSQL (default: pg_ctlcluster for the cluster pg_lsclusters shows on the URL's port, else "+defaultRestart+")")
	flag.DurationVar(&c.maxRecovery, "max-recovery", 15*time.Second, "how long after PostgreSQL accepts connections again every node must serve again; until then 503 with Retry-After is expected")
	flag.DurationVar(&c.maxLatency, "max-latency", 10*time.Second, "a request slower than this fails the soak, in the outage as anywhere")
	flag.Parse()
	if c.duration < 20*time.Second || c.workers < 1 {
		fmt.Fprintln(os.Stderr, "soak: -duration must be at least 20s and -workers at least 1")
		os.Exit(2)
	}
	ok, err := run(c)
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

// sampleRow is one observation of the nodes.
type sampleRow struct {
	at         time.Duration
	goroutines []int // per node, -1 while dead
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

// nodeLog is the file node n writes its log to: the outage makes them
// log many errors, which would drown the report.
func nodeLog(dir string, n int) *os.File {
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("node%d.log", n)))
	if err != nil {
		return os.Stderr
	}
	return f
}

// timeline is what happened when, for the report.
type timeline struct {
	logs                           string // directory of the nodes' logs
	start                          time.Time
	events                         []string
	killedAt, revivedAt, restartAt time.Duration // 0: did not happen
	restartErr                     error
	nodeAliveInRestart             []bool
}

func (t *timeline) event(format string, args ...any) {
	t.events = append(t.events, fmt.Sprintf("%6s ", time.Since(t.start).Round(100*time.Millisecond))+fmt.Sprintf(format, args...))
}

func run(c config) (bool, error) {
	schemaURL, drop, err := ssoproc.Schema(c.dbURL, "sso_soak_")
	if err != nil {
		return false, err
	}
	defer drop()
	var cl cluster
	if c.pgRestart {
		if cl, err = findCluster(c.dbURL, c.pgRestartCmd); err != nil {
			return false, err
		}
		// Whatever happens, PostgreSQL is left up (before the schema is
		// dropped: deferred calls run last first).
		defer func() {
			if err := cl.ensureUp(context.Background()); err != nil {
				fmt.Fprintln(os.Stderr, "soak:", err)
			}
		}()
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		go func() {
			<-sig
			if err := cl.ensureUp(context.Background()); err != nil {
				fmt.Fprintln(os.Stderr, "soak:", err)
			}
			os.Exit(1)
		}()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return false, err
	}
	issuer := "http://" + ln.Addr().String()
	opts := ssoproc.Options{Bin: c.bin, Issuer: issuer, DatabaseURL: schemaURL, KEK: ssoproc.NewKEK(),
		Env: []string{"SSO_TRUSTED_PROXIES=127.0.0.1"}}
	logs, err := os.MkdirTemp("", "sso-soak-")
	if err != nil {
		return false, err
	}
	var nodes []*ssoproc.Server
	defer func() {
		for _, n := range nodes {
			n.Stop()
		}
	}()
	for i := range 2 { // one after the other: the first applies the migrations
		o := opts
		o.Stderr = nodeLog(logs, i+1)
		n, err := ssoproc.Start(o)
		if err != nil {
			return false, err
		}
		nodes = append(nodes, n)
	}
	survivor := nodes[0]
	if err := survivor.Prepare(); err != nil {
		return false, err
	}
	if out, err := survivor.CLI("", "client", "create", "--json", "--id", "console", "--grant-type", "client_credentials", "--scope", "admin"); err == nil {
		var cc struct {
			Secret string `json:"client_secret"`
		}
		if json.Unmarshal([]byte(out), &cc) == nil {
			survivor.Secret["console"] = cc.Secret
		}
	}
	e := &env{base: issuer, secret: survivor.Secret, timeout: 2 * c.maxLatency,
		tr:     &http.Transport{MaxIdleConnsPerHost: 64, MaxIdleConns: 128, IdleConnTimeout: time.Minute},
		outage: &outage{maxRecovery: c.maxRecovery}, ledger: &ledger{reqs: map[string]tokenReq{}},
		sample: &tokenSample{every: 25, max: 400}}
	lb := &balancer{outage: e.outage}
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

	restart := "no PostgreSQL restart"
	if c.pgRestart {
		restart = "PostgreSQL restart: " + cl.restart
	}
	fmt.Printf("soak: 2 nodes on PostgreSQL behind %s, %s, %d workers per scenario; %s\n", issuer, c.duration, c.workers, restart)
	fmt.Printf("soak: the nodes' logs are in %s\n", logs)

	all := map[string]*stats{}
	type job struct {
		name string
		step func() error
	}
	var jobs []job
	for _, name := range scenarioOrder {
		all[name] = &stats{kinds: map[string]int{}}
		for range c.workers {
			step, err := scenarios[name](e, e.client())
			if err != nil {
				return false, fmt.Errorf("prepare %s: %w", name, err)
			}
			jobs = append(jobs, job{name, step})
		}
	}

	tl := &timeline{start: time.Now(), logs: logs}
	deadline := tl.start.Add(c.duration)
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				t0 := time.Now()
				err := j.step()
				end := time.Now()
				k := e.kind(err, end)
				all[j.name].add(end.Sub(t0), err, k, e.killed.Load(), end.Sub(t0) > c.maxLatency)
				if is, _ := is503(err); is || k == outageRedirect || k == tempUnavailable {
					time.Sleep(200 * time.Millisecond) // a client told to retry does not spin
				}
			}
		}()
	}

	samples, restartDone := drive(c, e, tl, opts, &nodes, lb, cl, deadline)
	wg.Wait()
	if restartDone != nil {
		tl.restartErr = <-restartDone
	}
	return report(c, e, tl, nodes, lb, all, samples, schemaURL)
}

// drive runs the faults on their timeline and samples the nodes until
// deadline. It returns the samples and, if the restart began, the channel
// its result comes on.
func drive(c config, e *env, tl *timeline, opts ssoproc.Options, nodes *[]*ssoproc.Server, lb *balancer, cl cluster, deadline time.Time) ([]sampleRow, chan error) {
	var samples []sampleRow
	var restartDone chan error
	rotateAt, killAt, reviveAt, restartAt := c.duration/4, c.duration/2, c.duration*5/8, c.duration*3/4
	rotated, dead := false, false
	next := time.Duration(0)
	for time.Now().Before(deadline) {
		el := time.Since(tl.start)
		if el >= next {
			row := sampleRow{at: el.Round(time.Second)}
			for i, n := range *nodes {
				g, r := -1, 0
				if !(i == 1 && dead) {
					g, r = goroutines(n.Base), ssoproc.RSSKiB(n.Cmd.Process.Pid)/1024
				}
				row.goroutines = append(row.goroutines, g)
				row.rssMiB = append(row.rssMiB, r)
			}
			samples = append(samples, row)
			next += c.sampleEvery
		}
		victim := (*nodes)[1]
		switch {
		case !rotated && el >= rotateAt:
			rotated = true
			out, err := (*nodes)[0].CLI("", "keys", "rotate")
			tl.event("sso keys rotate (err %v): %d new keys", err, strings.Count(strings.TrimSpace(out), "\n"))
		case tl.killedAt == 0 && el >= killAt:
			e.killTime.Store(time.Now().UnixNano())
			e.killed.Store(true)
			victim.Kill()
			dead, tl.killedAt = true, el
			tl.event("SIGKILL node 2 (pid %d)", victim.Cmd.Process.Pid)
		case c.revive && dead && el >= reviveAt:
			o := opts
			o.Addr = strings.TrimPrefix(victim.Base, "http://")
			o.Stderr = nodeLog(tl.logs, 3) // "node 2" as started again
			t0 := time.Now()
			n, err := ssoproc.Start(o)
			if err != nil {
				tl.event("node 2 did not start again: %v", err)
				c.revive = false
				break
			}
			n.Secret = victim.Secret
			(*nodes)[1] = n
			dead, tl.revivedAt = false, el
			tl.event("node 2 started again (pid %d), ready in %s", n.Cmd.Process.Pid, time.Since(t0).Round(time.Millisecond))
		case c.pgRestart && restartDone == nil && el >= restartAt:
			tl.restartAt = el
			tl.nodeAliveInRestart = []bool{true, !dead}
			restartDone = make(chan error, 1)
			tl.event("restart PostgreSQL: %s", cl.restart)
			go func() { restartDone <- cl.restartPG(e.outage) }()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return samples, restartDone
}
