// Package ssoproc starts `sso serve` processes for the load tools under
// bench/ and drives them like a relying party and a browser would: the CLI
// to prepare a user and clients, the token endpoint, and sign-in through
// the HTML page. It is loopback-only tooling, not part of the server.
package ssoproc

import (
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" driver for the scratch schema
)

// Password is the password of the user Prepare creates.
const Password = "bench password for loopback only"

// Username is the user Prepare creates.
const Username = "bench"

// RedirectURI is where the "web" client's codes go; nothing listens there,
// the clients stop at the redirect.
const RedirectURI = "http://127.0.0.1:9/cb"

// Schema creates a scratch schema on the PostgreSQL at dbURL and returns the
// URL that uses it and a function that drops it.
func Schema(dbURL, prefix string) (string, func(), error) {
	admin, err := sql.Open("pgx", dbURL)
	if err != nil {
		return "", nil, err
	}
	schema := prefix + strings.ToLower(rand.Text()[:10])
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		admin.Close()
		return "", nil, fmt.Errorf("create schema: %w", err)
	}
	sep := "?"
	if strings.Contains(dbURL, "?") {
		sep = "&"
	}
	return dbURL + sep + "search_path=" + schema, func() {
		admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		admin.Close()
	}, nil
}

// FreeAddr returns a loopback address nothing listens on.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// NewKEK returns a random key-encryption key in the form SSO_KEY_ENCRYPTION_KEY takes.
func NewKEK() string {
	key := make([]byte, 32)
	rand.Read(key)
	return base64.StdEncoding.EncodeToString(key)
}

// Options are what distinguishes one started server from another.
type Options struct {
	Bin         string
	Addr        string // empty: a free loopback address
	Issuer      string // empty: http://Addr
	DatabaseURL string
	KEK         string   // empty: a fresh one
	Env         []string // more SSO_* settings
	Stderr      io.Writer
	// CPUs, when set, pins the process to these CPUs (taskset -c list)
	// with GOMAXPROCS to match.
	CPUs string
}

// Server is a running `sso serve` process.
type Server struct {
	Cmd  *exec.Cmd
	Base string // http://addr of this process
	Env  []string
	Bin  string
	// Secret holds the client secrets Prepare created, by client id.
	Secret map[string]string
	// WebIDTokenAlg, when set before Prepare, is the ID token algorithm of
	// the "web" client (RS256 by default, ES256 per client).
	WebIDTokenAlg string
}

// Start runs `sso serve` and waits until /healthz/ready answers 200.
func Start(o Options) (*Server, error) {
	if o.Addr == "" {
		addr, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		o.Addr = addr
	}
	if o.Issuer == "" {
		o.Issuer = "http://" + o.Addr
	}
	if o.KEK == "" {
		o.KEK = NewKEK()
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	env := append(os.Environ(), "SSO_ADDR="+o.Addr, "SSO_ISSUER="+o.Issuer, "SSO_DATABASE_URL="+o.DatabaseURL,
		"SSO_KEY_ENCRYPTION_KEY="+o.KEK, "SSO_LOG_LEVEL=warn",
		"SSO_BOOTSTRAP_ADMIN_PASSWORD=bench admin password", "SSO_DB_MAX_OPEN_CONNS=40")
	env = append(env, o.Env...)
	s := &Server{Base: "http://" + o.Addr, Env: env, Bin: o.Bin, Secret: map[string]string{}}
	s.Cmd = exec.Command(o.Bin, "serve")
	if o.CPUs != "" {
		c, err := Pinned(o.CPUs, o.Bin, "serve")
		if err != nil {
			return nil, err
		}
		s.Cmd, env = c, append(env, c.Env[len(c.Env)-1]) // GOMAXPROCS
		s.Env = env
	}
	s.Cmd.Env = env
	s.Cmd.Stderr = o.Stderr
	if err := s.Cmd.Start(); err != nil {
		return nil, err
	}
	for range 800 {
		if resp, err := http.Get(s.Base + "/healthz/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, nil
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	s.Stop()
	return nil, errors.New("server did not become ready")
}

// Stop ends the process with SIGTERM and waits for it.
func (s *Server) Stop() {
	s.Cmd.Process.Signal(syscall.SIGTERM)
	s.Cmd.Wait()
}

// Kill ends the process with SIGKILL, as a crash would, and reaps it.
func (s *Server) Kill() {
	s.Cmd.Process.Kill()
	s.Cmd.Wait()
}

// CLI runs the binary with the server's configuration.
func (s *Server) CLI(stdin string, args ...string) (string, error) {
	c := exec.Command(s.Bin, args...)
	c.Env = s.Env
	c.Stdin = strings.NewReader(stdin)
	out, err := c.Output()
	if err != nil {
		return "", fmt.Errorf("sso %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// Prepare creates the user and the clients the scenarios use: "cc" and
// "ccjwt" (client credentials, opaque and JWT tokens) and "web" (first
// party, authorization code with refresh tokens). A client the server
// cannot create is left out, and so are its scenarios.
func (s *Server) Prepare() error {
	if _, err := s.CLI(Password+"\n", "user", "create", "--username", Username, "--password-stdin"); err != nil {
		return err
	}
	clients := [][]string{
		{"--id", "cc", "--grant-type", "client_credentials", "--scope", "reports"},
		{"--id", "ccjwt", "--grant-type", "client_credentials", "--scope", "reports", "--token-format", "jwt"},
		{"--id", "web", "--first-party", "--redirect-uri", RedirectURI, "--scope", "openid profile offline_access"},
	}
	if s.WebIDTokenAlg != "" {
		clients[2] = append(clients[2], "--id-token-alg", s.WebIDTokenAlg)
	}
	for _, args := range clients {
		out, err := s.CLI("", append([]string{"client", "create", "--json"}, args...)...)
		if err != nil {
			continue
		}
		var c struct {
			ID     string `json:"id"`
			Secret string `json:"client_secret"`
		}
		json.Unmarshal([]byte(out), &c)
		s.Secret[c.ID] = c.Secret
	}
	return nil
}

// StatusError is a response that was not 200.
type StatusError struct {
	URL    string
	Status int
	Body   string
	// Header is the response's header, for tools that tell a proxy's
	// answers from the server's.
	Header http.Header
}

func (e *StatusError) Error() string { return fmt.Sprintf("%s: %d %s", e.URL, e.Status, e.Body) }

// PostForm posts form to u, with HTTP basic client authentication when id is
// set, and decodes the JSON answer; a status other than 200 is a *StatusError.
func PostForm(hc *http.Client, u, id, secret string, form url.Values) (map[string]any, error) {
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
		return nil, &StatusError{URL: u, Status: resp.StatusCode, Body: string(body), Header: resp.Header}
	}
	var out map[string]any
	return out, json.Unmarshal(body, &out)
}

var hidden = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// LoginForm fills the sign-in form of page (its hidden fields, the CSRF
// token among them) with the user Prepare created.
func LoginForm(page string) url.Values {
	form := url.Values{"identifier": {Username}, "password": {Password}}
	for _, m := range hidden.FindAllStringSubmatch(page, -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	return form
}

// Authorize runs one authorization request of the "web" client at base (the
// issuer) with the PKCE challenge (none if empty), signing in through the
// page when asked, and returns the code. hc must stop at RedirectURI (see
// NoFollowToCallback) and keep cookies.
func Authorize(base string, hc *http.Client, challenge string) (string, error) {
	q := url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {RedirectURI},
		"scope": {"openid offline_access"}, "state": {rand.Text()}, "nonce": {rand.Text()}}
	if challenge != "" {
		q.Set("code_challenge", challenge)
		q.Set("code_challenge_method", "S256")
	}
	resp, err := hc.Get(base + "/oauth2/auth?" + q.Encode())
	if err != nil {
		return "", err
	}
	for range 3 {
		if loc, _ := resp.Location(); loc != nil && strings.HasPrefix(loc.Path, "/cb") {
			resp.Body.Close()
			if c := loc.Query().Get("code"); c != "" {
				return c, nil
			}
			return "", fmt.Errorf("callback: %s", loc.RawQuery)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			return "", &StatusError{URL: resp.Request.URL.String(), Status: resp.StatusCode, Body: string(page), Header: resp.Header}
		}
		if !strings.Contains(string(page), `name="password"`) {
			return "", fmt.Errorf("unexpected page %d", resp.StatusCode)
		}
		form := LoginForm(string(page))
		req, _ := http.NewRequest("POST", base+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", base)
		if resp, err = hc.Do(req); err != nil {
			return "", err
		}
	}
	return "", errors.New("no code after signing in")
}

// NoFollowToCallback is a CheckRedirect that follows everything but the
// redirect to RedirectURI.
func NoFollowToCallback(req *http.Request, _ []*http.Request) error {
	if strings.HasPrefix(req.URL.Path, "/cb") {
		return http.ErrUseLastResponse
	}
	return nil
}

// PKCE returns a fresh S256 verifier and challenge.
func PKCE() (verifier, challenge string) {
	verifier = rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// Exchange redeems a code of the "web" client.
func Exchange(base string, hc *http.Client, secret, code, verifier string) (map[string]any, error) {
	return PostForm(hc, base+"/oauth2/token", "web", secret, url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {RedirectURI}, "code_verifier": {verifier}})
}

// CPUSeconds is the process's user+system CPU time.
func CPUSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

// RSSKiB is the process's resident memory in KiB, or 0 if unknown.
func RSSKiB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return kb
		}
	}
	return 0
}

// Pinned returns the command that runs args on cpus (a taskset -c list such
// as "0" or "0-1,3") with GOMAXPROCS set to their number.
func Pinned(cpus string, args ...string) (*exec.Cmd, error) {
	n := 0
	for _, part := range strings.Split(cpus, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("CPU list %q: %w", cpus, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("CPU list %q: %w", cpus, err)
			}
		}
		n += b - a + 1
	}
	c := exec.Command("taskset", append([]string{"-c", cpus}, args...)...)
	c.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(n))
	return c, nil
}
