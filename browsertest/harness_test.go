package browsertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// harness is what TestMain starts once for every test: the server, the
// relying party and the browser.
type harness struct {
	issuer  string
	rp      *relyingParty
	browser context.Context // the shared browser; tests open contexts in it
	users   map[string]string
	stop    []func()
	// serverLog is the server's log file: the log sender writes the SMS
	// codes there, as a person would read them off their phone.
	serverLog string
}

// h is the harness, or nil when setUp failed with setUpErr.
var (
	h        *harness
	setUpErr error
)

// errNoBrowser means chromium is missing and could not be installed.
var errNoBrowser = errors.New("chromium is not installed and could not be installed")

func TestMain(m *testing.M) {
	h, setUpErr = setUp()
	code := m.Run()
	if h != nil {
		for i := len(h.stop) - 1; i >= 0; i-- {
			h.stop[i]()
		}
	}
	os.Exit(code)
}

// need returns the harness, failing the test if set-up failed. A missing
// browser skips it on a developer's machine; in CI (CI=true) it fails.
func need(t *testing.T) *harness {
	t.Helper()
	if setUpErr != nil {
		if errors.Is(setUpErr, errNoBrowser) && os.Getenv("CI") != "true" {
			t.Skipf("browser tests need chromium: %v", setUpErr)
		}
		t.Fatalf("browser test set-up: %v", setUpErr)
	}
	return h
}

// Accounts the tests sign in with (passwords are generated).
const (
	userAlice    = "browser-alice"    // signs in with a password
	userQR       = "browser-qr"       // signed in on the phone, approves a QR code
	userA11y     = "browser-a11y"     // walks the pages the accessibility check covers
	userAdmin    = "browser-admin"    // a super admin, for the admin console
	userSMS      = "browser-sms"      // signs in with a code sent to phoneSMS
	userTOTP     = "browser-totp"     // turns two-step verification on
	userSessions = "browser-sessions" // signed in twice, signs one out
	userPasskey  = "browser-passkey"  // adds a passkey and signs in with it
	phoneSMS     = "13900139000"
)

// setUp builds sso, creates accounts and clients, starts the relying party,
// the server and the browser.
func setUp() (*harness, error) {
	chromium, err := ensureChromium()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "sso-browsertest-")
	if err != nil {
		return nil, err
	}
	hh := &harness{users: map[string]string{}}
	hh.stop = append(hh.stop, func() { os.RemoveAll(dir) })
	fail := func(err error) (*harness, error) {
		for i := len(hh.stop) - 1; i >= 0; i-- {
			hh.stop[i]()
		}
		return nil, err
	}

	bin := filepath.Join(dir, "sso")
	build := exec.Command("go", "build", "-o", bin, "./cmd/sso")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("build sso: %v\n%s", err, out))
	}
	addr, err := freeAddr()
	if err != nil {
		return fail(err)
	}
	// The issuer is named localhost, not 127.0.0.1: browsers allow
	// WebAuthn (passkeys) on a domain name only, and treat localhost as a
	// secure origin over plain http. The server still listens on 127.0.0.1.
	_, port, _ := net.SplitHostPort(addr)
	hh.issuer = "http://localhost:" + port
	key := make([]byte, 32)
	rand.Read(key)
	env := append(os.Environ(),
		"SSO_DATABASE_URL=sqlite://"+filepath.Join(dir, "sso.db"),
		"SSO_DATA_DIR="+dir,
		"SSO_KEY_ENCRYPTION_KEY="+base64.StdEncoding.EncodeToString(key),
		"SSO_PASSWORD_HASH_MEMORY_KIB=8192", "SSO_PASSWORD_HASH_ITERATIONS=1", "SSO_PASSWORD_HASH_PARALLELISM=1",
		"SSO_LOG_LEVEL=info", "SSO_BOOTSTRAP_ADMIN_PASSWORD="+rand.Text()+"Aa1!",
		"SSO_ADDR="+addr, "SSO_ISSUER="+hh.issuer,
	)
	cli := func(stdin string, args ...string) (string, error) {
		c := exec.Command(bin, args...)
		c.Env, c.Stdin = env, strings.NewReader(stdin)
		var out, errOut bytes.Buffer
		c.Stdout, c.Stderr = &out, &errOut
		if err := c.Run(); err != nil {
			return "", fmt.Errorf("sso %s: %v: %s", strings.Join(args[:2], " "), err, errOut.String())
		}
		return out.String(), nil
	}
	if _, err := cli("", "migrate", "up"); err != nil {
		return fail(err)
	}
	for username, name := range map[string]string{userAlice: "Alice Browser", userQR: "扫码用户", userA11y: "无障碍检查"} {
		password := rand.Text()
		if _, err := cli(password+"\n", "user", "create", "--username", username, "--password-stdin", "--name", name); err != nil {
			return fail(err)
		}
		hh.users[username] = password
	}
	adminPassword := rand.Text()
	if _, err := cli(adminPassword+"\n", "user", "create", "--username", userAdmin, "--password-stdin", "--name", "控制台管理员", "--admin"); err != nil {
		return fail(err)
	}
	hh.users[userAdmin] = adminPassword
	for _, u := range []struct{ username, name, phone string }{
		{userSMS, "短信登录用户", phoneSMS}, {userTOTP, "两步验证用户", ""}, {userSessions, "两台设备", ""}, {userPasskey, "通行密钥用户", ""},
	} {
		password := rand.Text()
		args := []string{"user", "create", "--username", u.username, "--password-stdin", "--name", u.name}
		if u.phone != "" {
			args = append(args, "--phone", u.phone)
		}
		if _, err := cli(password+"\n", args...); err != nil {
			return fail(err)
		}
		hh.users[u.username] = password
	}

	hh.rp = newRelyingParty(hh.issuer)
	hh.stop = append(hh.stop, hh.rp.close)
	for _, c := range []struct {
		id, name string
		extra    []string
	}{
		{"tax", "税务办事系统", nil},
		{"portal", "政务服务门户", []string{"--first-party"}},
	} {
		out, err := cli("", append([]string{"client", "create", "--json", "--id", c.id, "--name", c.name,
			"--redirect-uri", hh.rp.url + "/cb", "--scope", "openid profile"}, c.extra...)...)
		if err != nil {
			return fail(err)
		}
		var created struct {
			Secret string `json:"client_secret"`
		}
		if err := json.Unmarshal([]byte(out), &created); err != nil || created.Secret == "" {
			return fail(fmt.Errorf("client create %s: %v: %s", c.id, err, out))
		}
		hh.rp.secrets[c.id] = created.Secret
	}

	serverLog, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return fail(err)
	}
	hh.serverLog = serverLog.Name()
	srv := exec.Command(bin, "serve")
	srv.Env, srv.Stdout, srv.Stderr = env, serverLog, serverLog
	if err := srv.Start(); err != nil {
		return fail(fmt.Errorf("start sso: %w", err))
	}
	hh.stop = append(hh.stop, func() {
		srv.Process.Signal(os.Interrupt)
		srv.Wait()
	})
	if err := waitReady(hh.issuer); err != nil {
		log, _ := os.ReadFile(serverLog.Name())
		return fail(fmt.Errorf("%w\n%s", err, log))
	}

	profile := filepath.Join(dir, "chromium-profile")
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		// A browser in the city asks for Chinese first, as the pages
		// assume when nothing else is known.
		chromedp.Flag("accept-lang", "zh-CN,zh"),
		chromedp.WindowSize(1280, 900),
	)
	hh.stop = append(hh.stop, cancelAlloc)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	hh.stop = append(hh.stop, cancelBrowser)
	if err := chromedp.Do(browser); err != nil { // starts the browser
		return fail(fmt.Errorf("start chromium: %w", err))
	}
	hh.browser = browser
	return hh, nil
}

// ensureChromium returns the browser binary, installing Debian's chromium
// when it is missing.
func ensureChromium() (string, error) {
	path := os.Getenv("SSO_TEST_CHROMIUM")
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("%w: SSO_TEST_CHROMIUM: %v", errNoBrowser, err)
		}
		return path, nil
	}
	path = "/usr/bin/chromium"
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	prefix := []string{}
	if os.Geteuid() != 0 {
		prefix = []string{"sudo", "-n"}
	}
	var out bytes.Buffer
	run := func(args ...string) bool {
		args = append(append([]string{}, prefix...), args...)
		c := exec.Command(args[0], args[1:]...)
		c.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		c.Stdout, c.Stderr = &out, &out
		return c.Run() == nil
	}
	installed := func() bool {
		if !run("apt-get", "install", "-y", "chromium") {
			return false
		}
		_, err := os.Stat(path)
		return err == nil
	}
	// Stale package lists are the usual failure: update them and try again.
	if installed() || (run("apt-get", "update") && installed()) {
		// A small CJK font, so that screenshots of the Chinese pages can be
		// read; the tests themselves read text, so failing here is fine.
		run("apt-get", "install", "-y", "fonts-wqy-microhei")
		return path, nil
	}
	return "", fmt.Errorf("%w: %s", errNoBrowser, lastLines(out.String(), 5))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freeAddr returns a loopback address nobody listens on.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitReady(issuer string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(issuer + "/healthz/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("sso serve did not become ready")
}
