// Package ratelimittest gives tests a Redis with a key prefix of their own,
// so that the rate-limit suites run against Redis as well as the databases.
//
// Redis is found at $SSO_TEST_REDIS_URL, by default redis://127.0.0.1:6379/0.
// Every key under the test's prefix is deleted when the test ends. When the
// server is missing the test is skipped, except with CI=true, where it fails.
package ratelimittest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultURL is used when SSO_TEST_REDIS_URL is unset.
const DefaultURL = "redis://127.0.0.1:6379/0"

// Redis returns the URL of the test Redis and a fresh key prefix whose keys
// are removed when t ends.
func Redis(t testing.TB) (rawURL, prefix string) {
	t.Helper()
	rawURL = os.Getenv("SSO_TEST_REDIS_URL")
	if rawURL == "" {
		rawURL = DefaultURL
	}
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		t.Fatalf("SSO_TEST_REDIS_URL: %v", err)
	}
	opt.DialTimeout, opt.MaxRetries = 2*time.Second, -1
	c := redis.NewClient(opt)
	ctx := context.Background()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis is required with CI=true: %v", err)
		}
		t.Skipf("redis unavailable (%v); set SSO_TEST_REDIS_URL or start redis on 127.0.0.1:6379", err)
	}
	b := make([]byte, 8)
	rand.Read(b)
	prefix = "sso-test:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		defer c.Close()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("scan test keys: %v", err)
			return
		}
		if len(keys) > 0 {
			if err := c.Del(ctx, keys...).Err(); err != nil {
				t.Errorf("delete test keys: %v", err)
			}
		}
	})
	return rawURL, prefix
}
