package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit/internal/redistest"
)

// Benchmarks on a real redis-server started for the run: latency figures come
// only from these. The miniredis ones show Go overhead only.

func benchLimiter(b *testing.B, c redis.Scripter, alg Algorithm) *Limiter {
	return mustNew(b, c, Config{Name: "bench-" + alg.String(), Algorithm: alg, Limit: 1_000_000, Period: time.Minute})
}

func BenchmarkAllow(b *testing.B) {
	s := redistest.Start(b)
	for _, alg := range []Algorithm{TokenBucket, LeakyBucket, SlidingWindow} {
		b.Run(alg.String()+"/serial", func(b *testing.B) {
			l := benchLimiter(b, s.Client(b), alg)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := l.Allow(ctx, "203.0.113.7"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg.String()+"/parallel", func(b *testing.B) {
			c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, ContextTimeoutEnabled: true, PoolSize: 64})
			defer c.Close()
			l := benchLimiter(b, c, alg)
			var id atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				key := "10.0.0." + strconv.FormatInt(id.Add(1), 10)
				ctx := context.Background()
				for pb.Next() {
					if _, err := l.Allow(ctx, key); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

func startBenchRedis(b *testing.B) *redis.Client {
	return redistest.Start(b).Client(b)
}

func BenchmarkAllowMiniredis(b *testing.B) {
	mr := miniredis.RunT(b)
	c := redis.NewClient(redistest.Options(mr.Addr()))
	defer c.Close()
	l := benchLimiter(b, c, TokenBucket)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Allow(ctx, "203.0.113.7"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRedisKey(b *testing.B) {
	l := mustNew(b, &fakeScripter{}, Config{Name: "bench", Limit: 1, Period: time.Second})
	b.ReportAllocs()
	for b.Loop() {
		_ = l.redisKey("203.0.113.7")
	}
}

func BenchmarkDecode(b *testing.B) {
	l := mustNew(b, &fakeScripter{}, Config{Name: "bench", Limit: 1, Period: time.Second})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.rates.decode(okReply, 1, OpAllow); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPipeline compares coalescing off (-1) with 1 to 8 pipelines in
// flight (4 is the default), on one client: a lone caller, and 64 goroutines
// on many keys.
func BenchmarkPipeline(b *testing.B) {
	s := redistest.Start(b)
	for _, inFlight := range []int{-1, 1, 2, 4, 8} {
		b.Run(fmt.Sprintf("serial/inflight=%d", inFlight), func(b *testing.B) {
			// A lone caller: a call finds no queue and goes straight out.
			l := mustNew(b, s.Client(b), Config{Name: "pipe", Limit: 1_000_000, Period: time.Minute, Pipeline: inFlight})
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := l.Allow(ctx, "203.0.113.7"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("parallel/inflight=%d", inFlight), func(b *testing.B) {
			c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, ContextTimeoutEnabled: true, PoolSize: 64})
			defer c.Close()
			l := mustNew(b, c, Config{Name: "pipe", Limit: 1_000_000, Period: time.Minute, Pipeline: inFlight})
			var id atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(32) // 64 goroutines on 2 cores
			b.RunParallel(func(pb *testing.PB) {
				key := "10.0.0." + strconv.FormatInt(id.Add(1), 10)
				ctx := context.Background()
				for pb.Next() {
					if _, err := l.Allow(ctx, key); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkPolicies compares one rate, two rates in one call, a per-call
// rate through a view kept by the caller, and With called on every call
// (which returns its kept view), on a real redis-server.
func BenchmarkPolicies(b *testing.B) {
	s := redistest.Start(b)
	c := s.Client(b)
	ctx := context.Background()
	one := mustNew(b, c, Config{Name: "pol1", Limit: 1 << 30, Period: time.Hour})
	two := mustNew(b, c, Config{Name: "pol2", Limit: 1 << 30, Period: time.Hour, Rates: []Rate{{Limit: 1 << 30, Period: 24 * time.Hour}}})
	plan := Rate{Limit: 1 << 29, Period: time.Hour}
	view, err := one.With(plan)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		call func() (Result, error)
	}{
		{"one-rate", func() (Result, error) { return one.Allow(ctx, "203.0.113.7") }},
		{"two-rates", func() (Result, error) { return two.Allow(ctx, "203.0.113.7") }},
		{"per-call-view", func() (Result, error) { return view.Allow(ctx, "203.0.113.8") }},
		{"per-call-With", func() (Result, error) {
			v, err := one.With(plan)
			if err != nil {
				return Result{}, err
			}
			return v.Allow(ctx, "203.0.113.9")
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.call(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
