package ratelimitotel_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/seed68425060/ratelimit"
	"github.com/seed68425060/ratelimit/internal/redistest"
	ratelimitotel "github.com/seed68425060/ratelimit/otel"
)

// newObserver returns an Observer on a fresh SDK provider and its reader.
func newObserver(t testing.TB) (*ratelimitotel.Observer, *sdkmetric.ManualReader) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { provider.Shutdown(context.Background()) })
	o, err := ratelimitotel.NewObserver(ratelimitotel.Config{MeterProvider: provider})
	if err != nil {
		t.Fatal(err)
	}
	return o, reader
}

// sums collects every Int64 sum as "name limiter [extra attribute value]" -> value,
// and the histogram counts as "name limiter" -> count.
func sums(t *testing.T, reader *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	label := func(name string, set attribute.Set) string {
		s := name
		for _, k := range []attribute.Key{"ratelimit.limiter", "ratelimit.outcome", "error.type"} {
			if v, ok := set.Value(k); ok {
				s += " " + v.AsString()
			}
		}
		if _, ok := set.Value("ratelimit.algorithm"); !ok {
			t.Errorf("%s has no ratelimit.algorithm", s)
		}
		return s
	}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != ratelimitotel.ScopeName {
			t.Errorf("scope %q, want %q", sm.Scope.Name, ratelimitotel.ScopeName)
		}
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					out[label(m.Name, p.Attributes)] += p.Value
				}
			case metricdata.Histogram[float64]:
				if m.Unit != "s" {
					t.Errorf("%s unit %q, want s", m.Name, m.Unit)
				}
				for _, p := range d.DataPoints {
					out[label(m.Name, p.Attributes)] += int64(p.Count)
				}
			}
		}
	}
	return out
}

// TestScriptedSequence drives real limiters and checks every value the
// Observer recorded, on miniredis and on a real redis-server.
func TestScriptedSequence(t *testing.T) {
	for _, backend := range []string{"miniredis", "redis"} {
		t.Run(backend, func(t *testing.T) {
			var rdb *redis.Client
			if backend == "redis" {
				rdb = redistest.Start(t).Client(t)
			} else {
				mr := miniredis.RunT(t)
				rdb = redis.NewClient(redistest.Options(mr.Addr()))
				t.Cleanup(func() { rdb.Close() })
			}
			o, reader := newObserver(t)
			ctx := context.Background()
			rdb.ScriptFlush(ctx) // the first call of each script falls back to EVAL
			api, err := ratelimit.New(rdb, ratelimit.Config{Name: "api", Limit: 2, Period: time.Hour, Observer: o, DenyCache: 10})
			if err != nil {
				t.Fatal(err)
			}
			login, err := ratelimit.New(rdb, ratelimit.Config{Name: "login", Algorithm: ratelimit.SlidingWindow, Limit: 1, Period: time.Hour, BlockFor: time.Hour, Observer: o})
			if err != nil {
				t.Fatal(err)
			}
			shadow, err := ratelimit.New(rdb, ratelimit.Config{Name: "shadow", Limit: 1, Period: time.Hour, Shadow: true, Observer: o})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 4; i++ { // 2 allowed, a denial from Redis, one from the deny cache
				api.Allow(ctx, "ip")
			}
			api.Peek(ctx, "ip")
			api.Refund(ctx, "other", 1)
			for i := 0; i < 3; i++ { // allowed, a lockout started, locked out
				login.Allow(ctx, "alice")
			}
			for i := 0; i < 3; i++ { // allowed, then 2 shadow denials
				shadow.Allow(ctx, "k")
			}
			// A Redis error under a failure policy, and an adapter's decisions.
			down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, ContextTimeoutEnabled: true})
			defer down.Close()
			open, err := ratelimit.New(down, ratelimit.Config{Name: "open", Limit: 1, Period: time.Hour, OnFailure: ratelimit.FailOpen, Observer: o})
			if err != nil {
				t.Fatal(err)
			}
			open.Allow(ctx, "k")
			o.Observe(ratelimit.Event{Limiter: "api", Outcome: ratelimit.OutcomeFailedClosed, Err: errors.New("x"), Source: ratelimit.SourceAdapter})
			o.Observe(ratelimit.Event{Limiter: "api", Outcome: ratelimit.OutcomeError, Err: fmt.Errorf("cost: %w", ratelimit.ErrInvalidCost), Source: ratelimit.SourceAdapter})

			got := sums(t, reader)
			want := map[string]int64{
				"ratelimit.decisions api allowed":               2,
				"ratelimit.decisions api denied":                2,
				"ratelimit.deny_cache.hits api":                 1,
				"ratelimit.peeks api":                           1,
				"ratelimit.refunds api":                         1,
				"ratelimit.script.reloads api":                  1,
				"ratelimit.redis.duration api":                  5, // 3 Allow that reached Redis, Peek, Refund
				"ratelimit.decisions login allowed":             1,
				"ratelimit.decisions login locked_out":          2,
				"ratelimit.lockouts login":                      1,
				"ratelimit.script.reloads login":                1,
				"ratelimit.redis.duration login":                3,
				"ratelimit.decisions shadow allowed":            1,
				"ratelimit.decisions shadow shadow_denied":      2,
				"ratelimit.redis.duration shadow":               3,
				"ratelimit.decisions open failed_open":          1,
				"ratelimit.redis.errors open connection":        1,
				"ratelimit.redis.duration open":                 1,
				"ratelimit.adapter.decisions api failed_closed": 1,
				"ratelimit.invalid_costs api":                   1,
			}
			for k, w := range want {
				if got[k] != w {
					t.Errorf("%s = %d, want %d", k, got[k], w)
				}
			}
			for k, v := range got {
				if _, ok := want[k]; !ok && v != 0 {
					t.Errorf("unexpected %s = %d", k, v)
				}
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	_, err := ratelimitotel.NewObserver(ratelimitotel.Config{})
	if !errors.Is(err, ratelimitotel.ErrInvalidConfig) {
		t.Errorf("NewObserver(Config{}) = %v, want ErrInvalidConfig naming MeterProvider", err)
	}
}

// events are the hot-path events: Observe must not allocate for them once
// the limiter's attribute sets exist.
var events = []ratelimit.Event{
	{Limiter: "api", Outcome: ratelimit.OutcomeAllowed, Duration: time.Millisecond},
	{Limiter: "api", Outcome: ratelimit.OutcomeDenied, Duration: time.Millisecond},
	{Limiter: "api", Outcome: ratelimit.OutcomeDenied, Cached: true},
	{Limiter: "api", Outcome: ratelimit.OutcomeShadowDenied, Duration: time.Millisecond},
	{Limiter: "api", Outcome: ratelimit.OutcomeLockedOut, LockStarted: true, Duration: time.Millisecond},
	{Limiter: "api", Op: ratelimit.OpPeek, Outcome: ratelimit.OutcomeAllowed, Duration: time.Millisecond},
}

func TestObserveDoesNotAllocate(t *testing.T) {
	o, _ := newObserver(t)
	for _, e := range events {
		o.Observe(e)
	}
	for _, e := range events {
		if n := testing.AllocsPerRun(1000, func() { o.Observe(e) }); n != 0 {
			t.Errorf("Observe(%v) allocates %v times, want 0", e.Outcome, n)
		}
	}
}

func BenchmarkObserve(b *testing.B) {
	o, _ := newObserver(b)
	e := events[0]
	o.Observe(e)
	b.ReportAllocs()
	for b.Loop() {
		o.Observe(e)
	}
}

func BenchmarkObserveParallel(b *testing.B) {
	o, _ := newObserver(b)
	e := events[0]
	o.Observe(e)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			o.Observe(e)
		}
	})
}
