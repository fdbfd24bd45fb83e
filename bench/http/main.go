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
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/govsso/sso/users"
)

const password = "bench password for loopback only"

func main() {
	bin := flag.String("bin", "bin/sso", "the sso binary")
	duration := flag.Duration("duration", 20*time.Second, "how long each scenario runs")
	connsFlag := flag.String("conns", "16,64", "concurrent connections, comma-separated")
	scenariosFlag := flag.String("scenarios", "client_credentials,client_credentials_jwt,introspection,refresh,authorization_code", "scenarios, comma-separated")
	dbURL := flag.String("database-url", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL to create a scratch schema in")
	serverCPU := flag.String("server-cpu", "", "CPU list (taskset -c) to pin the server to, e.g. 0; empty: not pinned")
	rawArgon2 := flag.Duration("raw-argon2", 0, "internal: hash for this long on every P and print hashes per second")
	flag.Parse()
	if *rawArgon2 > 0 {
		fmt.Printf("%.2f\n", argon2Rate(*rawArgon2))
		return
	}
	if err := run(*bin, *duration, *connsFlag, *scenariosFlag, *dbURL, *serverCPU); err != nil {
		fmt.Fprintln(os.Stderr, "bench-http:", err)
		os.Exit(1)
	}
}

type server struct {
	cmd    *exec.Cmd
	base   string
	env    []string
	bin    string
	secret map[string]string
}

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
				h.Hash(password)
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / d.Seconds()
}

// pinned returns the command line that runs args on cpus with GOMAXPROCS
// set to their number, and that number.
func pinned(cpus string, args ...string) (*exec.Cmd, error) {
	n := 0
	for _, part := range strings.Split(cpus, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("-server-cpu %q: %w", cpus, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("-server-cpu %q: %w", cpus, err)
			}
		}
		n += b - a + 1
	}
	c := exec.Command("taskset", append([]string{"-c", cpus}, args...)...)
	c.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(n))
	return c, nil
}

func run(bin string, duration time.Duration, connsFlag, scenariosFlag, dbURL, serverCPU string) error {
	var raw float64
	if serverCPU != "" && strings.Contains(scenariosFlag, "password_login") {
		c, err := pinned(serverCPU, os.Args[0], "-raw-argon2", "10s")
		if err != nil {
			return err
		}
		out, err := c.Output()
		if err != nil {
			return fmt.Errorf("raw argon2id rate: %w", err)
		}
		if raw, err = strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err != nil {
			return fmt.Errorf("raw argon2id rate %q: %w", out, err)
		}
		fmt.Printf("raw argon2id (m=%d KiB, t=%d, p=%d) on CPUs %s: %.1f hashes/s\n", users.DefaultArgon2Params.MemoryKiB,
			users.DefaultArgon2Params.Iterations, users.DefaultArgon2Params.Parallelism, serverCPU, raw)
	}
	admin, err := sql.Open("pgx", dbURL)
	if err != nil {
		return err
	}
	defer admin.Close()
	schema := "sso_bench_" + strings.ToLower(rand.Text()[:10])
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	defer admin.Exec("DROP SCHEMA " + schema + " CASCADE")

	s, err := startServer(bin, dbURL+"&search_path="+schema, serverCPU)
	if err != nil {
		return err
	}
	defer s.stop()
	if err := s.prepare(); err != nil {
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
			r, err := s.measure(sc, conns, duration)
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

func startServer(bin, dbURL, cpus string) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	key := make([]byte, 32)
	rand.Read(key)
	env := append(os.Environ(), "SSO_ADDR="+addr, "SSO_ISSUER=http://"+addr, "SSO_DATABASE_URL="+dbURL,
		"SSO_KEY_ENCRYPTION_KEY="+base64.StdEncoding.EncodeToString(key), "SSO_LOG_LEVEL=warn",
		"SSO_BOOTSTRAP_ADMIN_PASSWORD=bench admin password", "SSO_DB_MAX_OPEN_CONNS=40")
	s := &server{base: "http://" + addr, env: env, bin: bin, secret: map[string]string{}}
	s.cmd = exec.Command(bin, "serve")
	if cpus != "" {
		if s.cmd, err = pinned(cpus, bin, "serve"); err != nil {
			return nil, err
		}
		env = append(env, s.cmd.Env[len(s.cmd.Env)-1]) // GOMAXPROCS
	}
	s.cmd.Env = env
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	for i := 0; i < 400; i++ {
		if resp, err := http.Get(s.base + "/healthz/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, nil
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	s.stop()
	return nil, errors.New("server did not become ready")
}

func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()
}

// cli runs the binary with the server's configuration.
func (s *server) cli(stdin string, args ...string) (string, error) {
	c := exec.Command(s.bin, args...)
	c.Env = s.env
	c.Stdin = strings.NewReader(stdin)
	out, err := c.Output()
	if err != nil {
		return "", fmt.Errorf("sso %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

func (s *server) prepare() error {
	if _, err := s.cli(password+"\n", "user", "create", "--username", "bench", "--password-stdin"); err != nil {
		return err
	}
	clients := [][]string{
		{"--id", "cc", "--grant-type", "client_credentials", "--scope", "reports"},
		{"--id", "ccjwt", "--grant-type", "client_credentials", "--scope", "reports", "--token-format", "jwt"},
		{"--id", "web", "--first-party", "--redirect-uri", "http://127.0.0.1:9/cb", "--scope", "openid profile offline_access"},
	}
	for _, args := range clients {
		out, err := s.cli("", append([]string{"client", "create", "--json"}, args...)...)
		if err != nil {
			continue // a format the server does not offer yet: its scenario is skipped
		}
		var c struct {
			ID     string `json:"id"`
			Secret string `json:"client_secret"`
		}
		json.Unmarshal([]byte(out), &c)
		s.secret[c.ID] = c.Secret
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

func (s *server) measure(sc scenario, conns int, d time.Duration) (result, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxIdleConns: conns * 2, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	steps := make([]func() error, conns)
	for i := range steps {
		jar, _ := cookiejar.New(nil)
		hc := &http.Client{Transport: tr, Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			if strings.HasPrefix(req.URL.Path, "/cb") {
				return http.ErrUseLastResponse
			}
			return nil
		}}
		step, err := sc(s, hc)
		if err != nil {
			return result{}, err
		}
		steps[i] = step
	}
	cpu0 := cpuSeconds(s.cmd.Process.Pid)
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
		cpu: cpuSeconds(s.cmd.Process.Pid) - cpu0, rss: rss(s.cmd.Process.Pid),
	}, nil
}

func postForm(hc *http.Client, u, id, secret string, form url.Values) (map[string]any, error) {
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s: %d %s", u, resp.StatusCode, body)
	}
	var out map[string]any
	return out, json.Unmarshal(body, &out)
}

func ccStep(s *server, hc *http.Client, id string) (func() error, error) {
	secret, ok := s.secret[id]
	if !ok {
		return nil, fmt.Errorf("client %s could not be created", id)
	}
	return func() error {
		_, err := postForm(hc, s.base+"/oauth2/token", id, secret, url.Values{"grant_type": {"client_credentials"}, "scope": {"reports"}})
		return err
	}, nil
}

func introspectionStep(s *server, hc *http.Client) (func() error, error) {
	tok, err := postForm(hc, s.base+"/oauth2/token", "cc", s.secret["cc"], url.Values{"grant_type": {"client_credentials"}, "scope": {"reports"}})
	if err != nil {
		return nil, err
	}
	at, _ := tok["access_token"].(string)
	return func() error {
		out, err := postForm(hc, s.base+"/oauth2/introspect", "cc", s.secret["cc"], url.Values{"token": {at}})
		if err == nil && out["active"] != true {
			err = errors.New("token inactive")
		}
		return err
	}, nil
}

// login signs the worker's browser in through the HTML page once.
func login(s *server, hc *http.Client) error {
	_, err := authorize(s, hc)
	return err
}

var hidden = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// authorize runs one authorization request and returns the code, signing in
// through the page when asked.
func authorize(s *server, hc *http.Client) (code string, err error) {
	return authorizeWith(s, hc, "")
}

func authorizeWith(s *server, hc *http.Client, challenge string) (string, error) {
	q := url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {"http://127.0.0.1:9/cb"},
		"scope": {"openid offline_access"}, "state": {rand.Text()}, "nonce": {rand.Text()}}
	if challenge != "" {
		q.Set("code_challenge", challenge)
		q.Set("code_challenge_method", "S256")
	}
	resp, err := hc.Get(s.base + "/oauth2/auth?" + q.Encode())
	if err != nil {
		return "", err
	}
	for i := 0; i < 3; i++ {
		if loc, _ := resp.Location(); loc != nil && strings.HasPrefix(loc.Path, "/cb") {
			resp.Body.Close()
			if c := loc.Query().Get("code"); c != "" {
				return c, nil
			}
			return "", fmt.Errorf("callback: %s", loc.RawQuery)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(page), `name="password"`) {
			return "", fmt.Errorf("unexpected page %d", resp.StatusCode)
		}
		form := url.Values{"identifier": {"bench"}, "password": {password}}
		for _, m := range hidden.FindAllStringSubmatch(string(page), -1) {
			form.Set(m[1], html.UnescapeString(m[2]))
		}
		req, _ := http.NewRequest("POST", s.base+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", s.base)
		if resp, err = hc.Do(req); err != nil {
			return "", err
		}
	}
	return "", errors.New("no code after signing in")
}

func pkce() (verifier, challenge string) {
	verifier = rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

func exchange(s *server, hc *http.Client, code, verifier string) (map[string]any, error) {
	return postForm(hc, s.base+"/oauth2/token", "web", s.secret["web"], url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {"http://127.0.0.1:9/cb"}, "code_verifier": {verifier}})
}

func refreshStep(s *server, hc *http.Client) (func() error, error) {
	if err := login(s, hc); err != nil {
		return nil, err
	}
	v, c := pkce()
	code, err := authorizeWith(s, hc, c)
	if err != nil {
		return nil, err
	}
	tok, err := exchange(s, hc, code, v)
	if err != nil {
		return nil, err
	}
	rt, _ := tok["refresh_token"].(string)
	return func() error {
		out, err := postForm(hc, s.base+"/oauth2/token", "web", s.secret["web"], url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
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
		resp, err := hc.Get(s.base + "/login")
		if err != nil {
			return err
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		form := url.Values{"identifier": {"bench"}, "password": {password}}
		for _, m := range hidden.FindAllStringSubmatch(string(page), -1) {
			form.Set(m[1], html.UnescapeString(m[2]))
		}
		form.Set("return_to", "/cb") // the client stops at /cb instead of following
		req, _ := http.NewRequest("POST", s.base+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", s.base)
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
		v, c := pkce()
		code, err := authorizeWith(s, hc, c)
		if err != nil {
			return err
		}
		_, err = exchange(s, hc, code, v)
		return err
	}, nil
}

// cpuSeconds is the process's user+system CPU time.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

func rss(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return fmt.Sprintf("%dMB", kb/1024)
		}
	}
	return "?"
}
