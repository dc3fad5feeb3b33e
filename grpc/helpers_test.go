package ratelimitgrpc_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/seed68425060/ratelimit"
	ratelimitgrpc "github.com/seed68425060/ratelimit/grpc"
	"github.com/seed68425060/ratelimit/internal/redistest"
)

// backend is a Redis the tests run on.
type backend struct {
	name  string
	start func(t *testing.T) redis.Scripter
}

// backends are miniredis (clock frozen) and a real redis-server that the
// harness starts on a free loopback port.
var backends = []backend{
	{"miniredis", func(t *testing.T) redis.Scripter {
		mr := miniredis.RunT(t)
		mr.SetTime(time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC))
		c := redis.NewClient(redistest.Options(mr.Addr()))
		t.Cleanup(func() { c.Close() })
		return c
	}},
	{"redis-server", func(t *testing.T) redis.Scripter { return redistest.Start(t).Client(t) }},
}

// onBackends runs f on every backend.
func onBackends(t *testing.T, f func(t *testing.T, rdb redis.Scripter)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b.start(t)) })
	}
}

var prefixes atomic.Int64

// newLimiter returns a limiter with a key prefix of its own.
func newLimiter(t *testing.T, rdb redis.Scripter, cfg ratelimit.Config) *ratelimit.Limiter {
	t.Helper()
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = fmt.Sprintf("grpct%d:", prefixes.Add(1))
	}
	l, err := ratelimit.New(rdb, cfg)
	if err != nil {
		t.Fatalf("ratelimit.New: %v", err)
	}
	return l
}

// newInterceptor returns an Interceptor for cfg, failing t on an error.
func newInterceptor(t *testing.T, cfg ratelimitgrpc.Config) *ratelimitgrpc.Interceptor {
	t.Helper()
	in, err := ratelimitgrpc.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return in
}

// serve runs a gRPC server with the health service (Check and List unary,
// Watch server-streaming) behind in's interceptors on a loopback port, and
// returns its address.
func serve(t *testing.T, in *ratelimitgrpc.Interceptor) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(in.Unary), grpc.ChainStreamInterceptor(in.Stream))
	healthgrpc.RegisterHealthServer(srv, health.NewServer())
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return lis.Addr().String()
}

// dial returns a health client on a connection of its own to addr.
func dial(t *testing.T, addr string) healthgrpc.HealthClient {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthgrpc.NewHealthClient(conn)
}

// answer is what a client saw of one call.
type answer struct {
	code   codes.Code
	header metadata.MD
	st     *status.Status
}

// retry returns the RetryInfo delay of the answer, or -1 without one.
func (a answer) retry() time.Duration {
	for _, d := range a.st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return -1
}

// quota returns the QuotaFailure violations of the answer.
func (a answer) quota() []*errdetails.QuotaFailure_Violation {
	for _, d := range a.st.Details() {
		if qf, ok := d.(*errdetails.QuotaFailure); ok {
			return qf.GetViolations()
		}
	}
	return nil
}

// check makes one Check call with the metadata kv (pairs of key, value).
func check(t *testing.T, c healthgrpc.HealthClient, kv ...string) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if len(kv) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, kv...)
	}
	var header metadata.MD
	_, err := c.Check(ctx, &healthgrpc.HealthCheckRequest{}, grpc.Header(&header))
	st := status.Convert(err)
	return answer{code: st.Code(), header: header, st: st}
}

// watch opens a Watch stream with the metadata kv and reads its first message.
func watch(t *testing.T, c healthgrpc.HealthClient, kv ...string) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if len(kv) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, kv...)
	}
	s, err := c.Watch(ctx, &healthgrpc.HealthCheckRequest{})
	if err == nil {
		_, err = s.Recv()
	}
	var header metadata.MD
	if s != nil {
		header, _ = s.Header()
	}
	st := status.Convert(err)
	return answer{code: st.Code(), header: header, st: st}
}

// recorder is an Observer that counts outcomes and keeps errors.
type recorder struct {
	mu     sync.Mutex
	counts map[ratelimit.Outcome]int
	errs   []error
}

func (r *recorder) Observe(e ratelimit.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.counts == nil {
		r.counts = map[ratelimit.Outcome]int{}
	}
	r.counts[e.Outcome]++
	if e.Err != nil {
		r.errs = append(r.errs, e.Err)
	}
}

func (r *recorder) count(o ratelimit.Outcome) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[o]
}

// hasErr reports whether an observed error wraps target.
func (r *recorder) hasErr(target error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.errs {
		if errors.Is(e, target) {
			return true
		}
	}
	return false
}

// statusCode is the gRPC code of err (OK for nil).
func statusCode(err error) codes.Code { return status.Code(err) }

// first is vs[0], or "" for none.
func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// contains reports whether s contains sub.
func contains(s, sub string) bool { return strings.Contains(s, sub) }
