package ratelimit

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/seed68425060/ratelimit/internal/redistest"
)

// TestMemoryPerKey measures MEMORY USAGE of one key per algorithm on a real
// Redis (reported in the README) and pins it: buckets hold one integer, which
// Redis stores int-encoded; the window holds a short string.
func TestMemoryPerKey(t *testing.T) {
	limits := map[Algorithm]int64{TokenBucket: 72, LeakyBucket: 72, SlidingWindow: 100}
	for _, b := range realBackends(t) {
		if b.name != "redis" {
			continue
		}
		for _, alg := range []Algorithm{TokenBucket, LeakyBucket, SlidingWindow} {
			for _, block := range []time.Duration{0, time.Hour} {
				t.Run(fmt.Sprintf("%s/block=%v", alg, block), func(t *testing.T) {
					l := mustNew(t, b.client, Config{Name: "api", Algorithm: alg, Limit: 100, Period: time.Minute, BlockFor: block})
					ctx := context.Background()
					for _, key := range []string{"203.0.113.7", strings.Repeat("long username ", 100)} {
						if _, err := l.Reset(ctx, key); err != nil { // the subtests share one key
							t.Fatal(err)
						}
						for i := 0; i < 101; i++ { // the last call is denied and, with BlockFor, locks
							if _, err := l.Allow(ctx, key); err != nil {
								t.Fatal(err)
							}
						}
						rk := l.redisKey(key)
						n, err := b.client.MemoryUsage(ctx, rk).Result()
						if err != nil {
							t.Fatal(err)
						}
						enc, _ := b.client.ObjectEncoding(ctx, rk).Result()
						t.Logf("MEMORY USAGE %s (%d-byte key, %s) = %d bytes", rk, len(rk), enc, n)
						if n > limits[alg] {
							t.Errorf("MEMORY USAGE %s = %d bytes, want <= %d", rk, n, limits[alg])
						}
					}
				})
			}
		}
	}
}

// TestAllowAllocations pins the limiter's own client cost: a plain Allow on a
// real server allocates at most one object more than a bare EVALSHA of the
// same script with the same arguments on the same client (the Redis key
// string, which the bare call is handed ready-made). The deadline is shared,
// the digest boxed once and the command built without a keys slice.
func TestAllowAllocations(t *testing.T) {
	for _, b := range realBackends(t) {
		if b.name != "redis" {
			continue
		}
		ctx := context.Background()
		l := mustNew(t, b.client, Config{Name: "allocs", Limit: 1 << 20, Period: 1000 * time.Hour})
		keys := l.keys("k")
		sha := l.script.digest(ctx, b.client)
		if _, err := l.Allow(ctx, "k"); err != nil { // loads the script, creates the key
			t.Fatal(err)
		}
		bare := testing.AllocsPerRun(200, func() {
			if err := b.client.EvalSha(ctx, sha, keys, l.rates.allow1...).Err(); err != nil {
				t.Fatal(err)
			}
		})
		allow := testing.AllocsPerRun(200, func() {
			if _, err := l.Allow(ctx, "k"); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("allocations per call: Allow %.1f, bare EVALSHA %.1f", allow, bare)
		if allow > bare+1 {
			t.Errorf("Allow allocates %.1f times per call, a bare EVALSHA %.1f: the limiter adds more than the key", allow, bare)
		}
	}
}

// TestMemoryPerIdentity measures, on a real Redis, the memory one identity
// takes in all (its lock, while locked, and one key per rate), for one rate
// and for two (reported in the README).
func TestMemoryPerIdentity(t *testing.T) {
	s := redistest.Start(t)
	c := s.Client(t)
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		cfg  Config
		max  int64
	}{
		{"token bucket, one rate", Config{Limit: 10, Period: time.Second}, 72},
		{"token bucket, 10/s and 10000/d", Config{Limit: 10, Period: time.Second, Rates: []Rate{PerDay(10000)}}, 144},
		{"sliding window, 10/s and 10000/d", Config{Algorithm: SlidingWindow, Limit: 10, Period: time.Second, Rates: []Rate{PerDay(10000)}}, 200},
		{"token bucket, two rates, locked", Config{Limit: 1, Period: time.Second, Rates: []Rate{PerDay(10000)}, BlockFor: time.Minute}, 220},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Name = "mem"
			l := mustNew(t, c, cfg)
			key := "203.0.113.7"
			if _, err := l.Reset(ctx, key); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3; i++ {
				if _, err := l.Allow(ctx, key); err != nil {
					t.Fatal(err)
				}
			}
			var total int64
			for _, k := range l.keys(key) {
				n, err := c.MemoryUsage(ctx, k).Result()
				if err == redis.Nil {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				total += n
			}
			t.Logf("%s: %d bytes per identity", tt.name, total)
			if total > tt.max || total == 0 {
				t.Errorf("%s: %d bytes per identity, want in (0, %d]", tt.name, total, tt.max)
			}
		})
	}
}
