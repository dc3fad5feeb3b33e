package metrics_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit"
	"github.com/seed68425060/ratelimit/metrics"
)

// ExampleNewCollector registers a Collector on a new registry (never the
// default one), makes it the Observer of a Limiter, and prints the decisions
// counted after three calls with a limit of two.
func ExampleNewCollector() {
	mr, err := miniredis.Run() // stands in for your Redis
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true})
	defer rdb.Close()

	collector, err := metrics.NewCollector(metrics.Config{}) // Config{Namespace: "auth"} names them auth_*
	if err != nil {
		panic(err)
	}
	reg := prometheus.NewRegistry() // serve it with promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	reg.MustRegister(collector)

	lim, err := ratelimit.New(rdb, ratelimit.Config{Name: "api", Limit: 2, Period: time.Minute, Observer: collector})
	if err != nil {
		panic(err)
	}
	for i := 0; i < 3; i++ {
		lim.Allow(context.Background(), "203.0.113.7")
	}

	mfs, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "ratelimit_decisions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if v := m.GetCounter().GetValue(); v > 0 {
				l := m.GetLabel() // sorted: algorithm, limiter, outcome
				fmt.Printf("%s{limiter=%q,outcome=%q} %v\n", mf.GetName(), l[1].GetValue(), l[2].GetValue(), v)
			}
		}
	}
	// Output:
	// ratelimit_decisions_total{limiter="api",outcome="allowed"} 2
	// ratelimit_decisions_total{limiter="api",outcome="denied"} 1
}
