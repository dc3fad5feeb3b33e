package metrics_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit"
	"github.com/seed68425060/ratelimit/metrics"
)

func ExampleNewCollector() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true})

	collector := metrics.NewCollector()
	reg := prometheus.NewRegistry() // serve it with promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	reg.MustRegister(collector)

	lim, _ := ratelimit.New(rdb, ratelimit.Config{Name: "api", Limit: 1, Period: time.Minute, Observer: collector})
	lim.Allow(context.Background(), "203.0.113.7")
	lim.Allow(context.Background(), "203.0.113.7")

	n, _ := testutil.GatherAndCount(reg, "ratelimit_decisions_total")
	fmt.Println(n, "decision series")
	// Output:
	// 7 decision series
}
