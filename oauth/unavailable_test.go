package oauth_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

// pgProxy forwards TCP to PostgreSQL until cut, as a network partition or
// a database restart would look to sso.
type pgProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
}

func startPGProxy(t *testing.T, addr, target string) *pgProxy {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(p.cut)
	return p
}

// cut stops accepting and drops every open connection.
func (p *pgProxy) cut() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// While the database cannot be reached the token endpoints answer 503 with
// Retry-After at once (not 500, and not "inactive" for a good token), and
// once it is back the same server works again without a restart.
func TestDatabaseOutageAnswers503AndRecovers(t *testing.T) {
	schemaURL := dbtest.PostgresSchemaURL(t)
	u, err := url.Parse(schemaURL)
	if err != nil {
		t.Fatal(err)
	}
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxyAddr := free.Addr().String()
	free.Close()
	pgAddr := u.Host
	proxy := startPGProxy(t, proxyAddr, pgAddr)
	u.Host = proxyAddr
	ctx := context.Background()
	d, err := db.Open(ctx, u.String(), db.PoolOptions{ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if _, err := d.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	e := newDeviceEnv(t, d)
	token := func() (int, string, string) {
		req, _ := http.NewRequest("POST", e.url+"/oauth2/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {"openid"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("web", e.secret)
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
	}
	if status, _, body := token(); status != 200 {
		t.Fatalf("before the outage: %d %s", status, body)
	}
	_, tok := e.post(t, "/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"openid"}}, "web", e.secret)
	access := tok["access_token"].(string)

	proxy.cut()
	start := time.Now()
	status, retry, body := token()
	if status != http.StatusServiceUnavailable || retry == "" || !strings.Contains(body, "temporarily_unavailable") {
		t.Fatalf("during the outage: %d, Retry-After %q, %s", status, retry, body)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the refusal took %s: it should not wait for the database", took)
	}
	if status, _ := e.post(t, "/oauth2/introspect", url.Values{"token": {access}}, "web", e.secret); status != http.StatusServiceUnavailable {
		t.Errorf("introspection during the outage: %d, want 503 (not active:false)", status)
	}

	startPGProxy(t, proxyAddr, pgAddr) // the database is back on the same address
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, _, body = token()
		if status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the outage: still %d %s", status, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
