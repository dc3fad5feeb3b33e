package ratelimitgrpc_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/seed68425060/ratelimit"
	ratelimitgrpc "github.com/seed68425060/ratelimit/grpc"
)

// A gRPC server whose calls are limited to 2 per minute per client address,
// and what a client sees: the rate-limit metadata, then ResourceExhausted
// with a google.rpc.RetryInfo saying when to call again.
func ExampleNew() {
	// An in-memory Redis with its clock frozen, and a client fit for a
	// limiter: no retries (a retried script charges a call twice), context
	// deadlines honoured.
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	mr.SetTime(time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC))
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true})

	perClient, err := ratelimit.New(rdb, ratelimit.Config{Name: "per-client", Limit: 2, Period: time.Minute})
	if err != nil {
		panic(err)
	}
	in, err := ratelimitgrpc.New(ratelimitgrpc.Config{
		Limiters:  []*ratelimit.Limiter{perClient},
		OnFailure: ratelimit.FailOpen, // the API stays up when Redis is down
	})
	if err != nil {
		panic(err)
	}
	client, stop := exampleServe(in)
	defer stop()
	for i := 0; i < 3; i++ {
		var header metadata.MD
		_, err := client.Check(context.Background(), &healthgrpc.HealthCheckRequest{}, grpc.Header(&header))
		st := status.Convert(err)
		fmt.Printf("%v limit=%s remaining=%s reset=%s\n", st.Code(),
			header.Get(ratelimitgrpc.MetadataLimit)[0], header.Get(ratelimitgrpc.MetadataRemaining)[0],
			header.Get(ratelimitgrpc.MetadataReset)[0])
		for _, d := range st.Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok {
				fmt.Println("retry after", ri.GetRetryDelay().AsDuration())
			}
		}
	}
	// Output:
	// OK limit=2/min remaining=1 reset=30
	// OK limit=2/min remaining=0 reset=60
	// ResourceExhausted limit=2/min remaining=0 reset=30
	// retry after 30s
}

// exampleServe serves the health service behind in on a loopback port and
// returns a client of it, and a function that stops both.
func exampleServe(in *ratelimitgrpc.Interceptor) (healthgrpc.HealthClient, func()) {
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(in.Unary), grpc.ChainStreamInterceptor(in.Stream))
	healthgrpc.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(lis)
	conn, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		panic(err)
	}
	return healthgrpc.NewHealthClient(conn), func() { conn.Close(); srv.Stop() }
}

// Limits per method and per customer plan: one limiter serves every plan
// (Rates, through Limiter.With), keyed by the API key in the metadata, on
// the service's methods; List is exempt.
func ExampleConfig_plans() {
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	mr.SetTime(time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC))
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true})

	// The free plan's rate is the limiter's own.
	api, err := ratelimit.New(rdb, ratelimit.Config{Name: "api", Limit: 1, Period: time.Minute})
	if err != nil {
		panic(err)
	}
	plans := map[string][]ratelimit.Rate{ // from a database, say
		"key-gold": {ratelimit.PerMinute(3), ratelimit.PerDay(10_000)},
	}
	in, err := ratelimitgrpc.New(ratelimitgrpc.Config{
		Methods: map[string][]*ratelimit.Limiter{
			"/grpc.health.v1.Health/":     {api},
			"/grpc.health.v1.Health/List": nil,
		},
		KeyFunc: func(_ context.Context, call ratelimitgrpc.Call) (string, error) {
			if k := call.Metadata.Get("x-api-key"); len(k) == 1 {
				return k[0], nil
			}
			return "", errors.New("no API key") // a real server would authenticate first
		},
		Rates: map[string]func(context.Context, ratelimitgrpc.Call) ([]ratelimit.Rate, error){
			"api": func(_ context.Context, call ratelimitgrpc.Call) ([]ratelimit.Rate, error) {
				return plans[call.Metadata.Get("x-api-key")[0]], nil // nil: the free plan
			},
		},
		OnFailure: ratelimit.FailClosed,
	})
	if err != nil {
		panic(err)
	}
	client, stop := exampleServe(in)
	defer stop()

	for _, key := range []string{"key-free", "key-gold"} {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "x-api-key", key)
		for i := 0; i < 4; i++ {
			_, err := client.Check(ctx, &healthgrpc.HealthCheckRequest{})
			fmt.Print(status.Code(err), " ")
		}
		fmt.Println(key)
	}
	_, err = client.List(context.Background(), &healthgrpc.HealthListRequest{})
	fmt.Println(status.Code(err), "List")
	// Output:
	// OK ResourceExhausted ResourceExhausted ResourceExhausted key-free
	// OK OK OK ResourceExhausted key-gold
	// OK List
}
