package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/govsso/sso/db"
)

// mountSmallDisk mounts a size-limited tmpfs at a fresh directory, so that a
// disk really fills up under SQLite; it skips where that needs privileges the
// test does not have (not root, or a container without CAP_SYS_ADMIN).
func mountSmallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("filling a real disk needs a size-limited tmpfs, and mounting one needs root")
	}
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes zeros to path until the file system is full and returns
// how many bytes it took.
func fillDisk(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var n int64
	for _, size := range []int{1 << 20, 64 << 10, 4 << 10, 512} {
		buf := make([]byte, size)
		for {
			w, err := f.Write(buf)
			n += int64(w)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return n
}

// fileSizeLimit makes every file of this process unable to grow past the
// database file's current size (RLIMIT_FSIZE, no privileges needed): SQLite
// sees a write error as on a full disk. The Go runtime ignores SIGXFSZ, so
// the write fails with EFBIG instead of killing the process. Tests that are
// not parallel run alone, so nothing else writes while the limit holds.
func fileSizeLimit(t *testing.T, dbPath string) (fill, free func()) {
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Skipf("no file size limit here: %v", err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old) })
	return func() {
			fi, err := os.Stat(dbPath)
			if err != nil {
				t.Fatal(err)
			}
			if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: uint64(fi.Size()), Max: old.Max}); err != nil {
				t.Fatal(err)
			}
		}, func() {
			if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
				t.Fatal(err)
			}
		}
}

// With the disk under SQLite full, requests that write answer 503 with
// Retry-After (no 500, no hang), reads still work, nothing committed is lost,
// and once space returns the same server takes writes again without a restart.
// "tmpfs" fills a real, small file system (root only); "file size limit"
// runs anywhere and fails SQLite's writes the same way.
func TestSQLiteDiskFull(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) (dbPath string, fill, free func())
	}{
		{"tmpfs", func(t *testing.T) (string, func(), func()) {
			disk := mountSmallDisk(t, "16m")
			filler := filepath.Join(disk, "filler")
			return filepath.Join(disk, "sso.db"), func() {
					if n := fillDisk(t, filler); n == 0 {
						t.Fatal("the disk was full before the test filled it")
					}
				}, func() {
					if err := os.Remove(filler); err != nil {
						t.Fatal(err)
					}
				}
		}},
		{"file size limit", func(t *testing.T) (string, func(), func()) {
			dbPath := filepath.Join(t.TempDir(), "sso.db")
			fill, free := fileSizeLimit(t, dbPath)
			return dbPath, fill, free
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dbPath, fill, free := tc.setup(t)
			testSQLiteDiskFull(t, dbPath, fill, free)
		})
	}
}

func testSQLiteDiskFull(t *testing.T, dbPath string, fill, free func()) {
	te := newTestEnv(t, db.SQLite)
	te["SSO_DATABASE_URL"] = "sqlite://" + dbPath
	if r := te.run(t, "a long test passphrase\n", "user", "create", "--username", "alice", "--password-stdin", "--name", "Alice"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	cb := "http://127.0.0.1:9/cb"
	taxSecret := createClient(t, te, "--id", "tax", "--name", "税务局", "--redirect-uri", cb, "--scope", "openid profile")
	ccSecret := createClient(t, te, "--id", "batch", "--grant-type", "client_credentials", "--scope", "reports")
	issuer := startServer(t, te)
	hc := &http.Client{Timeout: 15 * time.Second} // a hang fails the test instead of stalling it

	tax := newRP(t, issuer, "tax", taxSecret, oidc.ScopeOpenID, "profile")
	before, _ := tax.login(browser(t), "alice", "a long test passphrase")

	// token asks for a client_credentials token, which the server stores.
	token := func() (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest("POST", issuer+"/oauth2/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {"reports"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("batch", ccSecret)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("token request: %v", err)
		}
		var out struct {
			AccessToken string `json:"access_token"`
		}
		json.Unmarshal([]byte(body(t, resp)), &out)
		return resp.StatusCode, out.AccessToken, resp.Header
	}
	// active asks the server, as the client the token was issued to.
	active := func(id, secret, tok string) bool {
		t.Helper()
		v, _ := tax.introspect(id, secret, tok)["active"].(bool)
		return v
	}
	var issued []string // client_credentials tokens answered with 200
	for i := 0; i < 5; i++ {
		if code, tok, _ := token(); code == http.StatusOK {
			issued = append(issued, tok)
		} else {
			t.Fatalf("token request before the disk filled: %d", code)
		}
	}

	fill()

	// Pages freed inside SQLite's files may absorb a few writes; keep writing
	// until one needs space the disk no longer has.
	full := false
	for i := 0; i < 2000 && !full; i++ {
		code, tok, h := token()
		switch {
		case code == http.StatusOK:
			issued = append(issued, tok)
		case code == http.StatusServiceUnavailable:
			if h.Get("Retry-After") == "" {
				t.Fatal("503 without Retry-After")
			}
			full = true
		default:
			t.Fatalf("token request on a full disk: status %d, want 200 or 503", code)
		}
	}
	if !full {
		t.Fatal("2000 token requests on a full disk all succeeded")
	}

	t.Run("writes fail clearly", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			code, _, h := token()
			if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
				t.Fatalf("token request %d: status %d Retry-After %q, want 503 with Retry-After", i, code, h.Get("Retry-After"))
			}
		}
		// Signing in writes a browser session: the password form answers
		// 503 with Retry-After and a page, not a 500.
		b := browser(t)
		resp, err := b.Get(tax.cfg.AuthCodeURL("state-full"))
		if err != nil {
			t.Fatal(err)
		}
		page := body(t, resp)
		if !strings.Contains(page, `name="password"`) {
			t.Fatalf("sign-in page on a full disk (%d): %.300s", resp.StatusCode, page)
		}
		resp = submit(t, b, issuer, "/login", page, url.Values{"identifier": {"alice"}, "password": {"a long test passphrase"}})
		body(t, resp)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("sign-in on a full disk: status %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	})
	t.Run("reads still work", func(t *testing.T) {
		for _, path := range []string{"/.well-known/openid-configuration", "/login", "/healthz/live"} {
			resp, err := hc.Get(issuer + path)
			if err != nil {
				t.Fatal(err)
			}
			body(t, resp)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s on a full disk: %d", path, resp.StatusCode)
			}
		}
		if !active("tax", taxSecret, before.AccessToken) {
			t.Error("a token issued before the disk filled does not introspect as active")
		}
	})

	free()
	t.Run("recovers without a restart", func(t *testing.T) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, tok, _ := token()
			if code == http.StatusOK {
				issued = append(issued, tok)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("token endpoint still answers %d 10 s after space returned", code)
			}
			time.Sleep(100 * time.Millisecond)
		}
		after, _ := tax.login(browser(t), "alice", "a long test passphrase")
		if !active("tax", taxSecret, after.AccessToken) {
			t.Error("a token issued after recovery does not introspect as active")
		}
	})
	t.Run("nothing committed is lost", func(t *testing.T) {
		if !active("tax", taxSecret, before.AccessToken) {
			t.Error("the token issued before the disk filled is gone")
		}
		for i, tok := range issued {
			if !active("batch", ccSecret, tok) {
				t.Errorf("token %d of %d, answered 200, is not active", i, len(issued))
			}
		}
	})
}
