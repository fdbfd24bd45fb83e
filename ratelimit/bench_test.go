package ratelimit

import (
	"context"
	"math"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/ratelimit/ratelimittest"
)

// BenchmarkCount measures counts per second from 16 goroutines on each
// backend, all on one address (one hot row or key) and spread over 1,000
// addresses, with a limit no run reaches.
func BenchmarkCount(b *testing.B) {
	p := Policy{Limit: math.MaxInt32, Window: time.Minute}
	backends := []struct {
		name string
		open func(b *testing.B) Limiter
	}{
		{"sqlite", func(b *testing.B) Limiter { return must(NewDatabase(dbtest.Open(b, db.SQLite), p)) }},
		{"postgres", func(b *testing.B) Limiter { return must(NewDatabase(dbtest.Open(b, db.Postgres), p)) }},
		{"redis", func(b *testing.B) Limiter {
			rawURL, prefix := ratelimittest.Redis(b)
			opt, err := RedisOptions(rawURL)
			if err != nil {
				b.Fatal(err)
			}
			c := redis.NewClient(opt)
			b.Cleanup(func() { c.Close() })
			return must(NewRedis(c, prefix, p))
		}},
	}
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			l := be.open(b)
			for _, addresses := range []int{1, 1000} {
				b.Run(strconv.Itoa(addresses)+"-addresses", func(b *testing.B) {
					var n atomic.Int64
					b.SetParallelism(8)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							key := "198.51.100." + strconv.Itoa(int(n.Add(1))%addresses)
							if _, err := l.Count(context.Background(), key); err != nil {
								b.Error(err)
								return
							}
						}
					})
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "counts/s")
				})
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
