package metrics

import (
	"testing"
	"time"

	"github.com/seed68425060/ratelimit"
)

func BenchmarkObserve(b *testing.B) {
	c := NewCollector()
	e := ratelimit.Event{Limiter: "api", Outcome: ratelimit.OutcomeAllowed, Duration: 300 * time.Microsecond}
	c.Observe(e)
	b.ReportAllocs()
	for b.Loop() {
		c.Observe(e)
	}
}

func BenchmarkObserveParallel(b *testing.B) {
	c := NewCollector()
	e := ratelimit.Event{Limiter: "api", Outcome: ratelimit.OutcomeDenied, Duration: 300 * time.Microsecond}
	c.Observe(e)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Observe(e)
		}
	})
}
