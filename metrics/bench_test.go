package metrics

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit"
	"github.com/seed68425060/ratelimit/internal/redistest"
)

func BenchmarkObserve(b *testing.B) {
	c := mustCollector(b, Config{})
	e := ratelimit.Event{Limiter: "api", Outcome: ratelimit.OutcomeAllowed, Duration: 300 * time.Microsecond}
	c.Observe(e)
	b.ReportAllocs()
	for b.Loop() {
		c.Observe(e)
	}
}

func BenchmarkObserveParallel(b *testing.B) {
	c := mustCollector(b, Config{})
	e := ratelimit.Event{Limiter: "api", Outcome: ratelimit.OutcomeDenied, Duration: 300 * time.Microsecond}
	c.Observe(e)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Observe(e)
		}
	})
}

// cannedScripter answers every script with an admission, in memory, so that
// BenchmarkAllow measures the Limiter and its Observer, not a server.
type cannedScripter struct{ redis.Scripter }

func (cannedScripter) EvalSha(ctx context.Context, _ string, _ []string, _ ...any) *redis.Cmd {
	return redis.NewCmdResult(int64(0), nil) // a bucket's admission on a fresh key
}

// BenchmarkAllow compares Limiter.Allow without an Observer and with a
// Collector: allocs/op must be the same. The Scripter is canned so that the
// numbers are the Limiter's own; BenchmarkAllow/miniredis adds a server.
func BenchmarkAllow(b *testing.B) {
	mr := miniredis.RunT(b)
	rdb := redis.NewClient(redistest.Options(mr.Addr()))
	b.Cleanup(func() { rdb.Close() })
	for _, backend := range []struct {
		name   string
		client redis.Scripter
	}{{"canned", cannedScripter{}}, {"miniredis", rdb}} {
		for _, tc := range []struct {
			name     string
			observer ratelimit.Observer
		}{{"observer=none", nil}, {"observer=collector", mustCollector(b, Config{})}} {
			b.Run(backend.name+"/"+tc.name, func(b *testing.B) {
				lim, err := ratelimit.New(backend.client, ratelimit.Config{Name: "api", Limit: 1 << 20, Period: time.Hour, Observer: tc.observer})
				if err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				keys := make([]string, 64)
				for i := range keys {
					keys[i] = "k" + strconv.Itoa(i)
				}
				lim.Allow(ctx, keys[0]) // load the script, create the series
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if _, err := lim.Allow(ctx, keys[i%len(keys)]); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}
