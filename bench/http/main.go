// Command http is the load tool of `make bench-http`: it starts `sso serve`
// on a fresh PostgreSQL schema, prepares a user and clients with the CLI, and
// drives the token endpoints over loopback, printing requests per second,
// latency percentiles, errors, and the server's CPU time and memory.
//
//	make build && go run ./bench/http -bin bin/sso -duration 20s -conns 16,64
//
// With -server-cpu the server runs pinned to those CPUs (taskset) with
// GOMAXPROCS set to match, and the raw argon2id hash rate is first measured
// on the same CPUs, so that the password_login scenario can be compared
// with the hashing alone on equal terms (`make bench-login`): the load
// generator and PostgreSQL then compete for the other CPUs, not the server's.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govsso/sso/bench/internal/ssoproc"
	"github.com/govsso/sso/users"
)

func main() {
	bin := flag.String("bin", "bin/sso", "the sso binary")
	duration := flag.Duration("duration", 20*time.Second, "how long each scenario runs")
	connsFlag := flag.String("conns", "16,64", "concurrent connections, comma-separated")
	scenariosFlag := flag.String("scenarios", "client_credentials,client_credentials_jwt,introspection,refresh,authorization_code", "scenarios, comma-separated")
	dbURL := flag.String("database-url", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL to create a scratch schema in")
	serverCPU := flag.String("server-cpu", "", "CPU list (taskset -c) to pin the server to, e.g. 0; empty: not pinned")
	idTokenAlg := flag.String("id-token-alg", "", "ID token algorithm of the authorization-code client: RS256 (default) or ES256")
	rawArgon2 := flag.Duration("raw-argon2", 0, "internal: hash for this long on every P and print hashes per second")
	flag.Parse()
	if *rawArgon2 > 0 {
		fmt.Printf("%.2f\n", argon2Rate(*rawArgon2))
		return
	}
	if err := run(*bin, *duration, *connsFlag, *scenariosFlag, *dbURL, *serverCPU, *idTokenAlg); err != nil {
		fmt.Fprintln(os.Stderr, "bench-http:", err)
		os.Exit(1)
	}
}

// server is the sso process under load.
type server = ssoproc.Server

// argon2Rate hashes with the server's default parameters on every P for d
// and returns hashes per second.
func argon2Rate(d time.Duration) float64 {
	h := users.NewPasswordHasher(users.DefaultArgon2Params)
	var n atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				h.Hash(ssoproc.Password)
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / d.Seconds()
}

// rawArgon2Rate measures argon2Rate in a child process pinned to cpus.
func rawArgon2Rate(cpus string) (float64, error) {
	c, err := ssoproc.Pinned(cpus, os.Args[0], "-raw-argon2", "10s")
	if err != nil {
		return 0, err
	}
	out, err := c.Output()
	if err != nil {
		return 0, fmt.Errorf("raw argon2id rate: %w", err)
	}
	return strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
}

func run(bin string, duration time.Duration, connsFlag, scenariosFlag, dbURL, serverCPU, idTokenAlg string) error {
	var raw float64
	if serverCPU != "" && strings.Contains(scenariosFlag, "password_login") {
		var err error
		if raw, err = rawArgon2Rate(serverCPU); err != nil {
			return err
		}
		p := users.DefaultArgon2Params
		fmt.Printf("raw argon2id (m=%d KiB, t=%d, p=%d) on CPUs %s: %.1f hashes/s\n", p.MemoryKiB, p.Iterations, p.Parallelism, serverCPU, raw)
	}
	schemaURL, drop, err := ssoproc.Schema(dbURL, "sso_bench_")
	if err != nil {
		return err
	}
	defer drop()

	s, err := ssoproc.Start(ssoproc.Options{Bin: bin, DatabaseURL: schemaURL, CPUs: serverCPU})
	if err != nil {
		return err
	}
	defer s.Stop()
	s.WebIDTokenAlg = idTokenAlg
	if err := s.Prepare(); err != nil {
		return err
	}
	fmt.Printf("%-26s %5s %9s %9s %9s %7s %9s %9s\n", "scenario", "conns", "req/s", "p50", "p99", "errors", "cpu(s)", "rss")
	for _, name := range strings.Split(scenariosFlag, ",") {
		for _, c := range strings.Split(connsFlag, ",") {
			conns, err := strconv.Atoi(c)
			if err != nil {
				return err
			}
			sc, ok := scenarios[name]
			if !ok {
				return fmt.Errorf("unknown scenario %q", name)
			}
			r, err := measure(s, sc, conns, duration)
			if err != nil {
				fmt.Printf("%-26s %5d skipped: %v\n", name, conns, err)
				continue
			}
			fmt.Printf("%-26s %5d %9.0f %9s %9s %7d %9.2f %9s\n", name, conns, r.rps, r.p50, r.p99, r.errors, r.cpu, r.rss)
			if name == "password_login" && raw > 0 {
				fmt.Printf("%-26s %5d %9.2f  (password logins/s over HTTP ÷ raw argon2id hashes/s on the same CPUs)\n", "  login/hash ratio", conns, r.rps/raw)
			}
		}
	}
	return nil
}

type result struct {
	rps      float64
	p50, p99 time.Duration
	errors   int64
	cpu      float64
	rss      string
}

// worker is one connection's loop: setup once, then one request per call.
type scenario func(s *server, hc *http.Client) (step func() error, err error)

var scenarios = map[string]scenario{
	"client_credentials":     func(s *server, hc *http.Client) (func() error, error) { return ccStep(s, hc, "cc") },
	"client_credentials_jwt": func(s *server, hc *http.Client) (func() error, error) { return ccStep(s, hc, "ccjwt") },
	"introspection":          introspectionStep,
	"refresh":                refreshStep,
	"authorization_code":     authCodeStep,
	"password_login":         passwordLoginStep,
}

func measure(s *server, sc scenario, conns int, d time.Duration) (result, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxIdleConns: conns * 2, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	steps := make([]func() error, conns)
	for i := range steps {
		jar, _ := cookiejar.New(nil)
		hc := &http.Client{Transport: tr, Jar: jar, Timeout: 10 * time.Second, CheckRedirect: ssoproc.NoFollowToCallback}
		step, err := sc(s, hc)
		if err != nil {
			return result{}, err
		}
		steps[i] = step
	}
	cpu0 := ssoproc.CPUSeconds(s.Cmd.Process.Pid)
	var errs atomic.Int64
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
		return result{}, fmt.Errorf("no request succeeded (%d errors)", errs.Load())
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	return result{
		rps: float64(len(all)) / d.Seconds(), errors: errs.Load(),
		p50: all[len(all)/2].Round(10 * time.Microsecond), p99: all[len(all)*99/100].Round(10 * time.Microsecond),
		cpu: ssoproc.CPUSeconds(s.Cmd.Process.Pid) - cpu0, rss: fmt.Sprintf("%dMB", ssoproc.RSSKiB(s.Cmd.Process.Pid)/1024),
	}, nil
}

func ccStep(s *server, hc *http.Client, id string) (func() error, error) {
	secret, ok := s.Secret[id]
	if !ok {
		return nil, fmt.Errorf("client %s could not be created", id)
	}
	return func() error {
		_, err := ssoproc.PostForm(hc, s.Base+"/oauth2/token", id, secret, url.Values{"grant_type": {"client_credentials"}, "scope": {"reports"}})
		return err
	}, nil
}

func introspectionStep(s *server, hc *http.Client) (func() error, error) {
	tok, err := ssoproc.PostForm(hc, s.Base+"/oauth2/token", "cc", s.Secret["cc"], url.Values{"grant_type": {"client_credentials"}, "scope": {"reports"}})
	if err != nil {
		return nil, err
	}
	at, _ := tok["access_token"].(string)
	return func() error {
		out, err := ssoproc.PostForm(hc, s.Base+"/oauth2/introspect", "cc", s.Secret["cc"], url.Values{"token": {at}})
		if err == nil && out["active"] != true {
			err = errors.New("token inactive")
		}
		return err
	}, nil
}

// login signs the worker's browser in through the HTML page once.
func login(s *server, hc *http.Client) error {
	_, err := ssoproc.Authorize(s.Base, hc, "")
	return err
}

func refreshStep(s *server, hc *http.Client) (func() error, error) {
	if err := login(s, hc); err != nil {
		return nil, err
	}
	v, c := ssoproc.PKCE()
	code, err := ssoproc.Authorize(s.Base, hc, c)
	if err != nil {
		return nil, err
	}
	tok, err := ssoproc.Exchange(s.Base, hc, s.Secret["web"], code, v)
	if err != nil {
		return nil, err
	}
	rt, _ := tok["refresh_token"].(string)
	return func() error {
		out, err := ssoproc.PostForm(hc, s.Base+"/oauth2/token", "web", s.Secret["web"], url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		if err != nil {
			return err
		}
		next, _ := out["refresh_token"].(string)
		if next == "" || next == rt {
			return errors.New("refresh token not rotated")
		}
		rt = next
		return nil
	}, nil
}

// passwordLoginStep signs in through the HTML form once per request: the
// page (for its CSRF token), then the POST, which costs one argon2id hash.
func passwordLoginStep(s *server, hc *http.Client) (func() error, error) {
	return func() error {
		resp, err := hc.Get(s.Base + "/login")
		if err != nil {
			return err
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		form := ssoproc.LoginForm(string(page))
		form.Set("return_to", "/cb") // the client stops at /cb instead of following
		req, _ := http.NewRequest("POST", s.Base+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", s.Base)
		resp, err = hc.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusOK {
			return fmt.Errorf("login: %d", resp.StatusCode)
		}
		return nil
	}, nil
}

func authCodeStep(s *server, hc *http.Client) (func() error, error) {
	if err := login(s, hc); err != nil {
		return nil, err
	}
	return func() error {
		v, c := ssoproc.PKCE()
		code, err := ssoproc.Authorize(s.Base, hc, c)
		if err != nil {
			return err
		}
		_, err = ssoproc.Exchange(s.Base, hc, s.Secret["web"], code, v)
		return err
	}, nil
}
