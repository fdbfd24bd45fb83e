package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/ratelimit"
	"github.com/govsso/sso/ratelimit/ratelimittest"
)

// verifyStatuses makes three verification requests as the client at ip
// (through the trusted loopback proxy) and returns their statuses.
func verifyStatuses(t *testing.T, base, ip string) []int {
	t.Helper()
	var codes []int
	for range 3 {
		req, err := http.NewRequest("POST", base+"/certs/api/v1/verify", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", ip)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
	return codes
}

// With SSO_REDIS_URL the verification limit counts in Redis; when Redis
// does not answer it counts in the database, the node stays ready, and the
// warning does not show the URL's password.
func TestServeRateLimitsInRedis(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		rawURL, _ := ratelimittest.Redis(t)
		te := newTestEnv(t, db.SQLite)
		te["SSO_VERIFY_RATE_LIMIT"] = "2"
		te["SSO_REDIS_URL"] = rawURL
		te["SSO_TRUSTED_PROXIES"] = "127.0.0.1"
		if r := te.run(t, "", "certs", "init"); r.code != 0 {
			t.Fatalf("certs init: %s", r.stderr)
		}
		// serve uses ratelimit.KeyPrefix; an address of this test's own
		// keeps other runs on the same Redis out of its count.
		ip := fmt.Sprintf("198.18.%d.%d", rand.IntN(256), 1+rand.IntN(254))
		key := ratelimit.KeyPrefix + "certs-verify:" + ip
		opt, err := ratelimit.RedisOptions(rawURL)
		if err != nil {
			t.Fatal(err)
		}
		c := redis.NewClient(opt)
		t.Cleanup(func() {
			c.Del(context.Background(), key)
			c.Close()
		})
		base := startServer(t, te)
		if codes := verifyStatuses(t, base, ip); fmt.Sprint(codes) != "[400 400 429]" {
			t.Fatalf("statuses %v; want two answers then 429", codes)
		}
		if n, err := c.Get(context.Background(), key).Int(); err != nil || n != 3 {
			t.Fatalf("Redis count of %s: %d, %v; want 3", key, n, err)
		}
	})
	t.Run("redis down", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := ln.Addr().String()
		ln.Close()
		te := newTestEnv(t, db.SQLite)
		te["SSO_VERIFY_RATE_LIMIT"] = "2"
		te["SSO_REDIS_URL"] = "redis://:s3cret-pw@" + closed + "/0"
		te["SSO_TRUSTED_PROXIES"] = "127.0.0.1"
		if r := te.run(t, "", "certs", "init"); r.code != 0 {
			t.Fatalf("certs init: %s", r.stderr)
		}
		base, logs := startServerWithLog(t, te) // waits for /healthz/ready
		if codes := verifyStatuses(t, base, "198.51.100.7"); fmt.Sprint(codes) != "[400 400 429]" {
			t.Fatalf("statuses %v with Redis down; want the database to keep the limit", codes)
		}
		resp, err := http.Get(base + "/healthz/ready")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/healthz/ready %d with Redis down, want 200", resp.StatusCode)
		}
		out := logs.String()
		if !strings.Contains(out, "rate limits count in the database") {
			t.Errorf("no warning about Redis:\n%s", out)
		}
		if strings.Contains(out, "s3cret-pw") {
			t.Errorf("the log shows the Redis password:\n%s", out)
		}
	})
}
