package certs

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/govsso/sso/server"
)

// RateCounter counts requests per key and says until when a key is
// refused, or the zero time; a ratelimit.Limiter does it with counters that
// every node shares, in the database or in Redis.
type RateCounter interface {
	Count(ctx context.Context, key string) (time.Time, error)
}

// verifyLimitPrefix keys the per-address counters of the public
// verification endpoints, apart from sign-in failures.
const verifyLimitPrefix = "certs-verify:"

// rateLimited counts a request to a public verification endpoint against
// its client address and answers 429 with Retry-After once the address is
// over the limit. Without Config.VerifyLimiter nothing is limited.
func (s *Service) rateLimited(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.VerifyLimiter == nil {
			next(w, r)
			return
		}
		until, err := s.cfg.VerifyLimiter.Count(r.Context(), verifyLimitPrefix+server.ClientIP(r))
		if err != nil {
			s.serverError(w, err)
			return
		}
		if wait := until.Sub(s.now()); !until.IsZero() && wait > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
			writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": "rate_limited",
				"error_description": "too many verification requests from this address; retry after the time in Retry-After"})
			return
		}
		next(w, r)
	}
}
