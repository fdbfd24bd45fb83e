package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/govsso/sso/db"
)

// KeyPrefix begins every key the limiters write in Redis, so that one Redis
// database can serve other uses too.
const KeyPrefix = "sso:ratelimit:"

// Timeouts of the Redis client when the URL does not set them (dial_timeout,
// read_timeout, write_timeout): a rate limit sits in front of a request,
// so a Redis that does not answer within these is treated as down.
const (
	defaultDialTimeout = time.Second
	defaultIOTimeout   = 500 * time.Millisecond
)

// Options configure a Backend.
type Options struct {
	// RedisURL is redis://[[user]:password@]host[:port][/db] or rediss://
	// (TLS); empty counts in the database only.
	RedisURL string
	// Prefix replaces KeyPrefix (tests give each run its own).
	Prefix string
	// RetryAfter replaces DefaultRetryAfter.
	RetryAfter time.Duration
	// Logger receives the switches to and from the database; nil discards.
	Logger *slog.Logger
}

// Backend makes a server's limiters: in the database, or in Redis with the
// database as the fallback when a Redis URL is configured. It holds the
// one Redis connection pool all its limiters share.
type Backend struct {
	d           *db.DB
	client      *redis.Client // nil: database only
	where       string        // Redis address and database, without credentials
	prefix      string
	retryAfter  time.Duration
	log         *slog.Logger
	redisErrors *prometheus.CounterVec
	fallingBack *prometheus.GaugeVec
}

// Open returns the backend o describes over d. It does not connect: the
// first request does, and a Redis that is down then is counted around.
// Errors never repeat the URL, which may hold a password.
func Open(d *db.DB, o Options) (*Backend, error) {
	b := &Backend{
		d: d, prefix: o.Prefix, retryAfter: o.RetryAfter, log: o.Logger, where: "database",
		redisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sso_ratelimit_redis_errors_total",
			Help: "Rate-limit counts Redis failed to answer, by limiter; each was counted in the database instead.",
		}, []string{"limiter"}),
		fallingBack: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sso_ratelimit_fallback",
			Help: "1 while a limiter counts in the database because Redis failed, by limiter.",
		}, []string{"limiter"}),
	}
	if b.prefix == "" {
		b.prefix = KeyPrefix
	}
	if b.retryAfter <= 0 {
		b.retryAfter = DefaultRetryAfter
	}
	if b.log == nil {
		b.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.RedisURL == "" {
		return b, nil
	}
	opt, err := RedisOptions(o.RedisURL)
	if err != nil {
		return nil, err
	}
	b.client = redis.NewClient(opt)
	b.where = fmt.Sprintf("redis %s db %d", opt.Addr, opt.DB)
	if opt.TLSConfig != nil {
		b.where = "rediss " + strings.TrimPrefix(b.where, "redis ")
	}
	return b, nil
}

// RedisOptions parses a redis:// or rediss:// URL into client options with
// this package's timeouts where the URL sets none. The error names what is
// wrong but never repeats the URL.
func RedisOptions(rawURL string) (*redis.Options, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("invalid Redis URL: cannot be parsed")
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("invalid Redis URL: scheme %q, want redis or rediss", u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, errors.New("invalid Redis URL: no host")
	}
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		// go-redis names the bad part (scheme, database number, query
		// option), never the password.
		return nil, fmt.Errorf("invalid Redis URL: %w", err)
	}
	if opt.DialTimeout == 0 {
		opt.DialTimeout = defaultDialTimeout
	}
	if opt.ReadTimeout == 0 {
		opt.ReadTimeout = defaultIOTimeout
	}
	if opt.WriteTimeout == 0 {
		opt.WriteTimeout = defaultIOTimeout
	}
	if opt.PoolTimeout == 0 {
		opt.PoolTimeout = defaultDialTimeout
	}
	if opt.DialerRetries == 0 {
		opt.DialerRetries = 1 // go-redis would dial 5 times, 100 ms apart
	}
	if opt.MaxRetries == 0 {
		// No retry: go-redis would also run the script again after a
		// read timeout, counting one request twice when Redis is slow.
		// A pooled connection Redis closed is found by the pool's health
		// check, and a failed count goes to the database fallback.
		opt.MaxRetries = -1
	}
	return opt, nil
}

// Limiter returns the limiter named name (a metric label) under p: the
// database's, or Redis's failing over to the database's.
func (b *Backend) Limiter(name string, p Policy) (Limiter, error) {
	dbl, err := NewDatabase(b.d, p)
	if err != nil {
		return nil, fmt.Errorf("limiter %s: %w", name, err)
	}
	if b.client == nil {
		return dbl, nil
	}
	rl, err := NewRedis(b.client, b.prefix, p)
	if err != nil {
		return nil, fmt.Errorf("limiter %s: %w", name, err)
	}
	return &Failover{
		name: name, primary: rl, fallback: dbl, log: b.log, retryAfter: b.retryAfter, now: time.Now,
		errors: b.redisErrors.WithLabelValues(name), fallingBack: b.fallingBack.WithLabelValues(name),
	}, nil
}

// Redis says whether the limiters count in Redis.
func (b *Backend) Redis() bool { return b.client != nil }

// String says where the limiters count, without credentials, for logs.
func (b *Backend) String() string { return b.where }

// Ping checks that Redis answers; nil without Redis.
func (b *Backend) Ping(ctx context.Context) error {
	if b.client == nil {
		return nil
	}
	if err := b.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis %s: %w", b.where, err)
	}
	return nil
}

// Collectors are the backend's metrics, for the server's registry.
func (b *Backend) Collectors() []prometheus.Collector {
	return []prometheus.Collector{b.redisErrors, b.fallingBack}
}

// Close closes the Redis connections, if any.
func (b *Backend) Close() error {
	if b.client == nil {
		return nil
	}
	return b.client.Close()
}
