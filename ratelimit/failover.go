package ratelimit

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultRetryAfter is how long a Failover counts in its fallback after the
// primary failed before it tries the primary again: one request every few
// seconds pays for the probe, not every request for a connect timeout.
const DefaultRetryAfter = 5 * time.Second

// Failover counts in a primary limiter (Redis) and, while that fails, in a
// fallback (the database), so that a Redis outage neither takes the service
// down nor stops limiting: the counters are shared by every node either
// way. A switch is logged once each way and the errors are counted in
// sso_ratelimit_redis_errors_total. The two backends keep their own counts,
// so an address may get up to twice its limit in the window of a switch.
type Failover struct {
	name              string
	primary, fallback Limiter
	log               *slog.Logger
	errors            prometheus.Counter
	fallingBack       prometheus.Gauge
	retryAfter        time.Duration
	now               func() time.Time

	// retryAt is when the primary may be tried again; nil while it works.
	// A time.Time keeps its monotonic reading, so a step of the wall
	// clock neither delays nor hastens the probe.
	retryAt atomic.Pointer[time.Time]
}

// Count implements Limiter. While the primary is down, one request per
// RetryAfter probes it and the others go straight to the fallback, so a
// Redis that hangs delays one request in a while, not every one. A request
// whose own context ended is not held against the primary: that is the
// client leaving, not Redis failing.
func (f *Failover) Count(ctx context.Context, key string) (time.Time, error) {
	var probe *time.Time // the retry time this request set to probe, if it probes
	if retryAt := f.retryAt.Load(); retryAt != nil {
		now := f.now()
		next := now.Add(f.retryAfter)
		if now.Before(*retryAt) || !f.retryAt.CompareAndSwap(retryAt, &next) {
			return f.fallback.Count(ctx, key)
		}
		probe = &next
	}
	until, err := f.primary.Count(ctx, key)
	if err == nil {
		if probe != nil && f.retryAt.CompareAndSwap(probe, nil) {
			f.fallingBack.Set(0)
			f.log.InfoContext(ctx, "rate limits count in redis again", "limiter", f.name)
		}
		return until, nil
	}
	if ctx.Err() != nil {
		return time.Time{}, err
	}
	f.errors.Inc()
	if next := f.now().Add(f.retryAfter); probe == nil && f.retryAt.CompareAndSwap(nil, &next) {
		f.fallingBack.Set(1)
		f.log.WarnContext(ctx, "redis failed; rate limits count in the database until it answers again",
			"limiter", f.name, "err", err, "retry_every", f.retryAfter.String())
	}
	return f.fallback.Count(ctx, key)
}
