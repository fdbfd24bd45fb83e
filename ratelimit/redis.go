package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// countScript is one fixed window per key, atomic on the Redis server: the
// key holds the count and expires when the window does; the request over
// the limit sets the expiry to the block, so the count stays over the limit
// until the block ends. It answers the milliseconds left to wait, or 0.
// Redis's clock, not the nodes', decides when windows end.
//
// KEYS[1] the counter; ARGV[1] limit, ARGV[2] window ms, ARGV[3] block ms.
var countScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
local limit = tonumber(ARGV[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if n <= limit then
  return 0
end
if n == limit + 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return tonumber(ARGV[3])
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  -- a key without expiry (set by hand): give it the block rather than
  -- refusing it forever
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return tonumber(ARGV[3])
end
return ttl
`)

// Redis counts in Redis with one script call per request (EVALSHA).
type Redis struct {
	c      redis.Scripter
	prefix string
	p      Policy
	now    func() time.Time
}

// NewRedis returns a limiter that counts under p in c, in keys named
// prefix and the request's key.
func NewRedis(c redis.Scripter, prefix string, p Policy) (*Redis, error) {
	p, err := p.check()
	if err != nil {
		return nil, err
	}
	return &Redis{c: c, prefix: prefix, p: p, now: time.Now}, nil
}

// Count implements Limiter.
func (r *Redis) Count(ctx context.Context, key string) (time.Time, error) {
	wait, err := countScript.Run(ctx, r.c, []string{r.prefix + key},
		r.p.Limit, r.p.Window.Milliseconds(), r.p.Block.Milliseconds()).Int64()
	if err != nil {
		return time.Time{}, fmt.Errorf("ratelimit %s: redis: %w", key, err)
	}
	if wait <= 0 {
		return time.Time{}, nil
	}
	return r.now().Add(time.Duration(wait) * time.Millisecond), nil
}
