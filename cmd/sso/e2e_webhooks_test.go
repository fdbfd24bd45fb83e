package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/webhooks"
)

func TestWebhooksSurviveRestartEndToEnd(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) { testWebhooksSurviveRestart(t, dialect) })
	}
}

// startStoppableServer runs `sso serve` until the returned stop is called.
func startStoppableServer(t *testing.T, te testEnv) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	te["SSO_ADDR"], te["SSO_ISSUER"] = addr, "http://"+addr
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	out := &syncBuffer{}
	go func() {
		done <- run(ctx, []string{"serve"}, env{stdin: strings.NewReader(""), stdout: out, stderr: out, getenv: func(k string) string { return te[k] }})
	}()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	base := "http://" + addr
	for i := 0; i < 200; i++ {
		if resp, err := http.Get(base + "/healthz/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base, stop
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("server not ready: %s", out.String())
	return "", nil
}

// hookReceiver is a department system that is down for its first two
// requests and counts, per event id, the deliveries it accepted.
type hookReceiver struct {
	mu       sync.Mutex
	secret   string
	calls    int
	accepted map[string]int
	types    map[string]string
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	if !webhooks.Verify(h.secret, r.Header.Get(webhooks.HeaderTimestamp), r.Header.Get(webhooks.HeaderSignature), body, time.Now(), 5*time.Minute) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if h.calls <= 2 {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	var e webhooks.Event
	json.Unmarshal(body, &e)
	id := r.Header.Get(webhooks.HeaderEventID)
	h.accepted[id]++
	h.types[id] = e.Type
}

func (h *hookReceiver) snapshot() (calls int, accepted map[string]int, types map[string]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	accepted, types = map[string]int{}, map[string]string{}
	for k, v := range h.accepted {
		accepted[k] = v
	}
	for k, v := range h.types {
		types[k] = v
	}
	return h.calls, accepted, types
}

// testWebhooksSurviveRestart subscribes a receiver that fails twice,
// creates an account through the admin API, stops the server after the
// first failed attempt, creates another account with the CLI while the
// server is down, and restarts it: each event is accepted exactly once.
func testWebhooksSurviveRestart(t *testing.T, dialect db.Dialect) {
	te := newTestEnv(t, dialect)
	secret := createClient(t, te, "--id", "console", "--name", "HR", "--grant-type", "client_credentials", "--scope", "admin")
	rc := &hookReceiver{accepted: map[string]int{}, types: map[string]string{}}
	hook := httptest.NewServer(rc)
	defer hook.Close()

	base, stop := startStoppableServer(t, te)
	ctx := context.Background()
	cfg := clientcredentials.Config{ClientID: "console", ClientSecret: secret, TokenURL: base + "/oauth2/token", Scopes: []string{"admin"}}
	tok, err := cfg.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, path, body string) (int, []byte) {
		req, _ := http.NewRequest(method, base+"/admin/api/v1"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	status, body := call("POST", "/clients/console/webhooks", `{"url":"`+hook.URL+`/sso","event_types":["user.created","user.disabled"]}`)
	var sub webhooks.Subscription
	if status != 201 || json.Unmarshal(body, &sub) != nil || sub.Secret == "" {
		t.Fatalf("subscribe: %d %s", status, body)
	}
	rc.mu.Lock()
	rc.secret = sub.Secret
	rc.mu.Unlock()
	if status, body := call("POST", "/users", `{"username":"li.na","kind":"citizen","display_name":"李娜"}`); status != 201 {
		t.Fatalf("create: %d %s", status, body)
	}
	// Wait for the first (failed) attempt to be logged, then stop.
	waitForWebhook(t, 15*time.Second, func() bool {
		_, b := call("GET", "/clients/console/webhooks/"+sub.ID+"/deliveries", "")
		return strings.Contains(string(b), `"status_code":503`)
	})
	stop()

	// A change made while the server is down is queued too.
	if r := te.run(t, "", "user", "disable", "li.na"); r.code != 0 {
		t.Fatalf("disable: %s", r.stderr)
	}
	startStoppableServer(t, te)
	waitForWebhook(t, 30*time.Second, func() bool {
		_, accepted, _ := rc.snapshot()
		return len(accepted) == 2
	})
	time.Sleep(3 * time.Second) // time for a duplicate to show up, if one were sent
	calls, accepted, types := rc.snapshot()
	for id, n := range accepted {
		if n != 1 {
			t.Errorf("event %s (%s) accepted %d times", id, types[id], n)
		}
	}
	var got []string
	for _, typ := range types {
		got = append(got, typ)
	}
	if len(got) != 2 || calls != 4 {
		t.Fatalf("accepted %v in %d calls; want user.created and user.disabled, in 2 failed and 2 good calls", types, calls)
	}
}

// waitForWebhook polls cond until it holds or the timeout passes.
func waitForWebhook(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
