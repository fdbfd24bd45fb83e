package ratelimit

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A Redis that does not answer must neither fail requests nor stop the
// limiting: the counts go to the database, the switch is logged once
// without the URL's password, and the errors are counted.
func TestRedisDownCountsInTheDatabase(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		var logs syncBuffer
		b, err := Open(d, Options{
			RedisURL: "redis://:s3cret-pw@" + closedPort(t) + "/0",
			Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		if !b.Redis() || strings.Contains(b.String(), "s3cret") {
			t.Fatalf("backend %q", b.String())
		}
		l, err := b.Limiter("verify", Policy{Limit: 2, Window: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for i := range 2 {
			if until := count(t, l, "203.0.113.9"); !until.IsZero() {
				t.Fatalf("request %d refused until %v", i+1, until)
			}
		}
		if until := count(t, l, "203.0.113.9"); until.IsZero() {
			t.Fatal("request over the limit allowed while Redis is down")
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("three counts took %v with Redis down", took)
		}
		// Only the first count tried Redis; the next waited for the retry.
		if n := testutil.ToFloat64(b.redisErrors.WithLabelValues("verify")); n != 1 {
			t.Errorf("sso_ratelimit_redis_errors_total = %v, want 1", n)
		}
		if n := testutil.ToFloat64(b.fallingBack.WithLabelValues("verify")); n != 1 {
			t.Errorf("sso_ratelimit_fallback = %v, want 1", n)
		}
		out := logs.String()
		if strings.Count(out, "level=WARN") != 1 || !strings.Contains(out, "limiter=verify") {
			t.Errorf("want one warning naming the limiter, got:\n%s", out)
		}
		if strings.Contains(out, "s3cret") {
			t.Errorf("the log shows the Redis password:\n%s", out)
		}
	})
}

// flaky is a primary limiter that fails while down is set.
type flaky struct {
	mu    sync.Mutex
	down  bool
	calls int
}

var errDown = errors.New("connection refused")

func (f *flaky) Count(ctx context.Context, key string) (time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.down {
		return time.Time{}, errDown
	}
	return time.Time{}, nil
}

// tally is a fallback limiter that counts its calls.
type tally struct{ calls int }

func (c *tally) Count(ctx context.Context, key string) (time.Time, error) {
	c.calls++
	return time.Time{}, nil
}

func TestFailoverSwitchesBackWhenRedisAnswers(t *testing.T) {
	b, err := Open(nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	primary, fallback := &flaky{down: true}, &tally{}
	f := &Failover{name: "qr", primary: primary, fallback: fallback, log: slog.New(slog.NewTextHandler(&logs, nil)),
		errors: b.redisErrors.WithLabelValues("qr"), fallingBack: b.fallingBack.WithLabelValues("qr"),
		retryAfter: 5 * time.Second, now: func() time.Time { return now }}
	ctx := context.Background()
	step := func(wantPrimary, wantFallback int, wantGauge float64) {
		t.Helper()
		if _, err := f.Count(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if primary.calls != wantPrimary || fallback.calls != wantFallback {
			t.Fatalf("primary tried %d times, fallback %d; want %d and %d", primary.calls, fallback.calls, wantPrimary, wantFallback)
		}
		if g := testutil.ToFloat64(b.fallingBack.WithLabelValues("qr")); g != wantGauge {
			t.Fatalf("sso_ratelimit_fallback = %v, want %v", g, wantGauge)
		}
	}
	step(1, 1, 1) // Redis fails: counted in the database
	now = now.Add(4 * time.Second)
	step(1, 2, 1) // before the retry: Redis is not tried
	now = now.Add(time.Second)
	step(2, 3, 1) // retry, still down: database again, no second warning
	primary.down = false
	now = now.Add(5 * time.Second)
	step(3, 3, 0) // Redis answers: back to it
	step(4, 3, 0)
	primary.down = true
	step(5, 4, 1) // a new outage warns again
	out := logs.String()
	if strings.Count(out, "level=WARN") != 2 || strings.Count(out, "level=INFO") != 1 {
		t.Errorf("want two warnings and one recovery, got:\n%s", out)
	}
	if n := testutil.ToFloat64(b.redisErrors.WithLabelValues("qr")); n != 3 {
		t.Errorf("sso_ratelimit_redis_errors_total = %v, want 3", n)
	}
}

// A request whose client went away is not a Redis failure.
func TestFailoverIgnoresEndedRequests(t *testing.T) {
	b, err := Open(nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	primary, fallback := &flaky{down: true}, &tally{}
	f := &Failover{name: "verify", primary: primary, fallback: fallback, log: b.log,
		errors: b.redisErrors.WithLabelValues("verify"), fallingBack: b.fallingBack.WithLabelValues("verify"),
		retryAfter: time.Second, now: time.Now}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.Count(ctx, "k"); err == nil {
		t.Fatal("Count with an ended context succeeded")
	}
	if fallback.calls != 0 || f.retryAt.Load() != nil {
		t.Fatalf("an ended request switched to the database (fallback calls %d)", fallback.calls)
	}
}

func TestRedisOptions(t *testing.T) {
	for _, c := range []struct {
		url     string
		addr    string
		db      int
		tls     bool
		wantErr string
	}{
		{url: "redis://127.0.0.1:6379/0", addr: "127.0.0.1:6379"},
		{url: "redis://cache.internal/3", addr: "cache.internal:6379", db: 3},
		{url: "redis://:pw@127.0.0.1:6380", addr: "127.0.0.1:6380"},
		{url: "rediss://user:pw@cache.internal:6380/1", addr: "cache.internal:6380", db: 1, tls: true},
		{url: "http://127.0.0.1:6379", wantErr: "scheme"},
		{url: "127.0.0.1:6379", wantErr: "invalid Redis URL"},
		{url: "redis:///0", wantErr: "no host"},
		{url: "redis://:pw@127.0.0.1:6379/x", wantErr: "database number"},
		{url: "redis://:p%zz@host", wantErr: "cannot be parsed"},
	} {
		t.Run(c.url, func(t *testing.T) {
			opt, err := RedisOptions(c.url)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want one about %s", err, c.wantErr)
				}
				if strings.Contains(err.Error(), "pw") {
					t.Fatalf("error repeats the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if opt.Addr != c.addr || opt.DB != c.db || (opt.TLSConfig != nil) != c.tls {
				t.Fatalf("addr %s db %d tls %v", opt.Addr, opt.DB, opt.TLSConfig != nil)
			}
			if opt.DialTimeout != defaultDialTimeout || opt.ReadTimeout != defaultIOTimeout || opt.MaxRetries != -1 {
				t.Fatalf("timeouts %v/%v, retries %d", opt.DialTimeout, opt.ReadTimeout, opt.MaxRetries)
			}
		})
	}
	opt, err := RedisOptions("redis://127.0.0.1:6379/0?dial_timeout=3s&read_timeout=2s")
	if err != nil || opt.DialTimeout != 3*time.Second || opt.ReadTimeout != 2*time.Second {
		t.Fatalf("timeouts from the URL: %v, %v, %v", err, opt.DialTimeout, opt.ReadTimeout)
	}
}

// hanging is a primary limiter that blocks until released, like a Redis
// that accepts connections and never answers.
type hanging struct {
	calls   atomic.Int64
	release chan struct{}
}

func (h *hanging) Count(ctx context.Context, key string) (time.Time, error) {
	h.calls.Add(1)
	<-h.release
	return time.Time{}, errDown
}

// While Redis is down, one request probes it and the others go straight
// to the database instead of waiting on Redis too.
func TestFailoverProbesOnce(t *testing.T) {
	b, err := Open(nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	primary := &hanging{release: make(chan struct{})}
	var fallbackCalls atomic.Int64
	f := &Failover{name: "verify", primary: primary, fallback: countingLimiter{&fallbackCalls}, log: b.log,
		errors: b.redisErrors.WithLabelValues("verify"), fallingBack: b.fallingBack.WithLabelValues("verify"),
		retryAfter: time.Hour, now: time.Now}
	due := time.Now().Add(-time.Second)
	f.retryAt.Store(&due) // down, retry due
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		f.Count(context.Background(), "k")
	}()
	for primary.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := f.Count(context.Background(), "k"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait() // none waited for the hanging probe
	close(primary.release)
	<-probeDone
	if n := primary.calls.Load(); n != 1 {
		t.Fatalf("Redis tried %d times, want one probe", n)
	}
	if n := fallbackCalls.Load(); n != 21 {
		t.Fatalf("database counted %d, want 21 (20 and the failed probe)", n)
	}
}

// countingLimiter is a fallback safe for concurrent use.
type countingLimiter struct{ n *atomic.Int64 }

func (c countingLimiter) Count(ctx context.Context, key string) (time.Time, error) {
	c.n.Add(1)
	return time.Time{}, nil
}
