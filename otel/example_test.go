package ratelimitotel_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/seed68425060/ratelimit"
	ratelimitotel "github.com/seed68425060/ratelimit/otel"
)

// An Observer records a limiter's decisions on the MeterProvider it is given.
func ExampleNewObserver() {
	mr, err := miniredis.Run() // stands in for your Redis
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(ratelimit.ClientOptions(&redis.Options{Addr: mr.Addr()}))
	defer rdb.Close()

	reader := sdkmetric.NewManualReader() // in production: a periodic reader and an exporter
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	observer, err := ratelimitotel.NewObserver(ratelimitotel.Config{MeterProvider: provider})
	if err != nil {
		panic(err)
	}
	lim, err := ratelimit.New(rdb, ratelimit.Config{Name: "api", Limit: 2, Period: time.Minute, Observer: observer})
	if err != nil {
		panic(err)
	}
	for i := 0; i < 3; i++ {
		lim.Allow(context.Background(), "203.0.113.7")
	}

	var rm metricdata.ResourceMetrics
	reader.Collect(context.Background(), &rm)
	for _, m := range rm.ScopeMetrics[0].Metrics {
		if m.Name != "ratelimit.decisions" {
			continue
		}
		for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
			outcome, _ := p.Attributes.Value("ratelimit.outcome")
			fmt.Println(outcome.AsString(), p.Value)
		}
	}
	// Unordered output:
	// allowed 2
	// denied 1
}
