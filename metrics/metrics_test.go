package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit"
	"github.com/seed68425060/ratelimit/internal/redistest"
)

// redisErr is an error as go-redis returns it for a Redis error reply.
type redisErr string

func (e redisErr) Error() string { return string(e) }
func (redisErr) RedisError()     {}

// script drives real Limiters on miniredis (frozen clock) with the collector as
// their Observer, plus events for failures a healthy server cannot produce.
func script(t *testing.T, c *Collector) {
	t.Helper()
	mr := miniredis.RunT(t)
	mr.SetTime(time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC))
	// A fresh server has no scripts: each limiter's first call falls back to EVAL.
	rdb := redis.NewClient(redistest.Options(mr.Addr()))
	t.Cleanup(func() { rdb.Close() })
	api, err := ratelimit.New(rdb, ratelimit.Config{Name: "api", Limit: 2, Period: time.Minute, Observer: c, DenyCache: 10})
	if err != nil {
		t.Fatal(err)
	}
	login, err := ratelimit.New(rdb, ratelimit.Config{Name: "login", Algorithm: ratelimit.SlidingWindow, Limit: 1, Period: time.Minute, BlockFor: time.Hour, Observer: c})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	want := []ratelimit.Outcome{ratelimit.OutcomeAllowed, ratelimit.OutcomeAllowed, ratelimit.OutcomeDenied, ratelimit.OutcomeDenied}
	for i, w := range want { // 2 allowed, 1 denied by Redis, 1 by the deny cache
		if r, err := api.Allow(ctx, "ip"); err != nil || r.Outcome != w {
			t.Fatalf("api.Allow #%d = %v, %v; want %v", i+1, r.Outcome, err, w)
		}
	}
	if _, err := api.Peek(ctx, "ip"); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Refund(ctx, "ip", 1); err != nil {
		t.Fatal(err)
	}
	rdb.ScriptFlush(ctx)
	// Allowed after the refund, with a NOSCRIPT fallback.
	if r, err := api.Allow(ctx, "ip"); err != nil || !r.Allowed {
		t.Fatalf("api.Allow after Refund = %+v, %v; want allowed", r, err)
	}
	// 1 allowed, then a lockout started, then locked out.
	want = []ratelimit.Outcome{ratelimit.OutcomeAllowed, ratelimit.OutcomeLockedOut, ratelimit.OutcomeLockedOut}
	for i, w := range want {
		if r, err := login.Allow(ctx, "alice"); err != nil || r.Outcome != w {
			t.Fatalf("login.Allow #%d = %v, %v; want %v", i+1, r.Outcome, err, w)
		}
	}
	c.Observe(ratelimit.Event{Limiter: "login", Algorithm: ratelimit.SlidingWindow, Outcome: ratelimit.OutcomeFailedClosed,
		Err: redisErr("OOM command not allowed when used memory > 'maxmemory'."), Duration: time.Millisecond})
	c.Observe(ratelimit.Event{Limiter: "api", Algorithm: ratelimit.TokenBucket, Outcome: ratelimit.OutcomeFailedOpen,
		Err: fmt.Errorf("ratelimit: api: %w", context.DeadlineExceeded), Duration: 500 * time.Millisecond})
	// The middleware reports its OnFailure decision for a call the limiter has
	// already reported: counted apart, never as a second decision or error.
	c.Observe(ratelimit.Event{Limiter: "api", Algorithm: ratelimit.TokenBucket, Outcome: ratelimit.OutcomeFailedOpen,
		Err: fmt.Errorf("ratelimit: api: %w", context.DeadlineExceeded), Source: ratelimit.SourceAdapter})
	c.Observe(ratelimit.Event{Limiter: "api", Algorithm: ratelimit.TokenBucket, Outcome: ratelimit.OutcomeError,
		Err: fmt.Errorf("ratelimit: api: cost n = 1000: %w", ratelimit.ErrInvalidCost), Source: ratelimit.SourceAdapter})
	// Shadow mode: the second call would have been denied.
	shadow, err := ratelimit.New(rdb, ratelimit.Config{Name: "api", Limit: 1, Period: time.Minute, Observer: c, Shadow: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if r, err := shadow.Allow(ctx, "shadowed"); err != nil || !r.Allowed {
			t.Fatalf("shadow.Allow #%d = %+v, %v; want admitted", i+1, r, err)
		}
	}
}

const wantScript = `
# HELP ratelimit_adapter_decisions_total Decisions an adapter (HTTP middleware, gRPC interceptor) made by its OnFailure after the limiter returned an error, by outcome (failed_open, failed_closed); the limiter's own error is in decisions_total{outcome="error"}.
# TYPE ratelimit_adapter_decisions_total counter
ratelimit_adapter_decisions_total{algorithm="sliding_window",limiter="login",outcome="failed_closed"} 0
ratelimit_adapter_decisions_total{algorithm="sliding_window",limiter="login",outcome="failed_open"} 0
ratelimit_adapter_decisions_total{algorithm="token_bucket",limiter="api",outcome="failed_closed"} 0
ratelimit_adapter_decisions_total{algorithm="token_bucket",limiter="api",outcome="failed_open"} 1
# HELP ratelimit_decisions_total Rate-limit decisions of Allow, AllowN (n > 0) and Wait, by outcome (allowed, denied, locked_out, failed_open, failed_closed, failed_local, shadow_denied, error).
# TYPE ratelimit_decisions_total counter
ratelimit_decisions_total{algorithm="sliding_window",limiter="login",outcome="allowed"} 1
ratelimit_decisions_total{algorithm="sliding_window",limiter="login",outcome="denied"} 0
ratelimit_decisions_total{algorithm="sliding_window",limiter="login",outcome="error"} 0
ratelimit_decisions_total{algorithm="sliding_window",limiter="login",outcome="failed_closed"} 1
ratelimit_decisions_total{algorithm="sliding_window",limiter="login",outcome="failed_local"} 0
ratelimit_decisions_total{algorithm="sliding_window",limiter="login",outcome="failed_open"} 0
ratelimit_decisions_total{algorithm="sliding_window",limiter="login",outcome="locked_out"} 2
ratelimit_decisions_total{algorithm="sliding_window",limiter="login",outcome="shadow_denied"} 0
ratelimit_decisions_total{algorithm="token_bucket",limiter="api",outcome="allowed"} 4
ratelimit_decisions_total{algorithm="token_bucket",limiter="api",outcome="denied"} 2
ratelimit_decisions_total{algorithm="token_bucket",limiter="api",outcome="error"} 0
ratelimit_decisions_total{algorithm="token_bucket",limiter="api",outcome="failed_closed"} 0
ratelimit_decisions_total{algorithm="token_bucket",limiter="api",outcome="failed_local"} 0
ratelimit_decisions_total{algorithm="token_bucket",limiter="api",outcome="failed_open"} 1
ratelimit_decisions_total{algorithm="token_bucket",limiter="api",outcome="locked_out"} 0
ratelimit_decisions_total{algorithm="token_bucket",limiter="api",outcome="shadow_denied"} 1
# HELP ratelimit_deny_cache_hits_total Decisions answered by the local deny cache (Config.DenyCache) with no Redis round trip; also counted in decisions_total.
# TYPE ratelimit_deny_cache_hits_total counter
ratelimit_deny_cache_hits_total{algorithm="sliding_window",limiter="login"} 0
ratelimit_deny_cache_hits_total{algorithm="token_bucket",limiter="api"} 1
# HELP ratelimit_invalid_costs_total Requests an adapter refused because their cost can never fit (outside 0..Burst): the caller's error, not Redis's.
# TYPE ratelimit_invalid_costs_total counter
ratelimit_invalid_costs_total{algorithm="sliding_window",limiter="login"} 0
ratelimit_invalid_costs_total{algorithm="token_bucket",limiter="api"} 1
# HELP ratelimit_lockouts_total Lockouts started (Config.BlockFor).
# TYPE ratelimit_lockouts_total counter
ratelimit_lockouts_total{algorithm="sliding_window",limiter="login"} 1
ratelimit_lockouts_total{algorithm="token_bucket",limiter="api"} 0
# HELP ratelimit_peeks_total Peek calls (and AllowN with n = 0), which consume nothing and are not counted as decisions.
# TYPE ratelimit_peeks_total counter
ratelimit_peeks_total{algorithm="sliding_window",limiter="login"} 0
ratelimit_peeks_total{algorithm="token_bucket",limiter="api"} 1
# HELP ratelimit_redis_errors_total Calls that failed in Redis, by error kind (timeout, connection, oom, busy, loading, unavailable, noperm, reply, canceled, other).
# TYPE ratelimit_redis_errors_total counter
ratelimit_redis_errors_total{algorithm="sliding_window",kind="busy",limiter="login"} 0
ratelimit_redis_errors_total{algorithm="sliding_window",kind="canceled",limiter="login"} 0
ratelimit_redis_errors_total{algorithm="sliding_window",kind="connection",limiter="login"} 0
ratelimit_redis_errors_total{algorithm="sliding_window",kind="loading",limiter="login"} 0
ratelimit_redis_errors_total{algorithm="sliding_window",kind="noperm",limiter="login"} 0
ratelimit_redis_errors_total{algorithm="sliding_window",kind="oom",limiter="login"} 1
ratelimit_redis_errors_total{algorithm="sliding_window",kind="other",limiter="login"} 0
ratelimit_redis_errors_total{algorithm="sliding_window",kind="reply",limiter="login"} 0
ratelimit_redis_errors_total{algorithm="sliding_window",kind="timeout",limiter="login"} 0
ratelimit_redis_errors_total{algorithm="sliding_window",kind="unavailable",limiter="login"} 0
ratelimit_redis_errors_total{algorithm="token_bucket",kind="busy",limiter="api"} 0
ratelimit_redis_errors_total{algorithm="token_bucket",kind="canceled",limiter="api"} 0
ratelimit_redis_errors_total{algorithm="token_bucket",kind="connection",limiter="api"} 0
ratelimit_redis_errors_total{algorithm="token_bucket",kind="loading",limiter="api"} 0
ratelimit_redis_errors_total{algorithm="token_bucket",kind="noperm",limiter="api"} 0
ratelimit_redis_errors_total{algorithm="token_bucket",kind="oom",limiter="api"} 0
ratelimit_redis_errors_total{algorithm="token_bucket",kind="other",limiter="api"} 0
ratelimit_redis_errors_total{algorithm="token_bucket",kind="reply",limiter="api"} 0
ratelimit_redis_errors_total{algorithm="token_bucket",kind="timeout",limiter="api"} 1
ratelimit_redis_errors_total{algorithm="token_bucket",kind="unavailable",limiter="api"} 0
# HELP ratelimit_refunds_total Refund calls, which give units back.
# TYPE ratelimit_refunds_total counter
ratelimit_refunds_total{algorithm="sliding_window",limiter="login"} 0
ratelimit_refunds_total{algorithm="token_bucket",limiter="api"} 1
# HELP ratelimit_script_reloads_total Calls that found the script missing in Redis (NOSCRIPT) and sent it again with EVAL.
# TYPE ratelimit_script_reloads_total counter
ratelimit_script_reloads_total{algorithm="sliding_window",limiter="login"} 1
ratelimit_script_reloads_total{algorithm="token_bucket",limiter="api"} 2
`

// TestCollectAndCompare checks the exact exposition of every counter after a
// scripted sequence of decisions on miniredis.
func TestCollectAndCompare(t *testing.T) {
	c := mustCollector(t, Config{})
	script(t, c)
	names := []string{"ratelimit_decisions_total", "ratelimit_deny_cache_hits_total", "ratelimit_lockouts_total", "ratelimit_peeks_total",
		"ratelimit_redis_errors_total", "ratelimit_refunds_total", "ratelimit_script_reloads_total", "ratelimit_adapter_decisions_total", "ratelimit_invalid_costs_total"}
	if err := testutil.CollectAndCompare(c, strings.NewReader(wantScript), names...); err != nil {
		t.Error(err)
	}

	// Latency values vary; their count does not: one observation per call that
	// reached Redis (the deny-cache hit and the middleware event did not).
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "ratelimit_redis_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "limiter" {
					counts[l.GetValue()] += m.GetHistogram().GetSampleCount()
				}
			}
			if h := m.GetHistogram(); h.GetSampleSum() <= 0 || len(h.GetBucket()) != len(DefaultBuckets) {
				t.Errorf("histogram %v: sum %v, %d buckets; want sum > 0 and %d buckets", m.GetLabel(), h.GetSampleSum(), len(h.GetBucket()), len(DefaultBuckets))
			}
		}
	}
	// api: 3 Allow calls to Redis, Peek, Refund, Allow after the flush, the
	// failed call, 2 shadow calls.
	if counts["api"] != 9 || counts["login"] != 4 {
		t.Errorf("latency observations %v, want api 9 and login 4", counts)
	}
}

func TestLint(t *testing.T) {
	for _, cfg := range []Config{{}, {Namespace: "auth", Buckets: []float64{0.01, 0.001}}} {
		c := mustCollector(t, cfg)
		script(t, c)
		problems, err := testutil.CollectAndLint(c)
		if err != nil {
			t.Fatal(err)
		}
		// 2 limiters × (8 outcomes + 10 error kinds + 2 adapter outcomes + 7 other series).
		if n := testutil.CollectAndCount(c); n != 54 {
			t.Errorf("CollectAndCount = %d, want 54: the scripted series", n)
		}
		for _, p := range problems {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
}

func TestNamespaceAndBuckets(t *testing.T) {
	// NaN, +Inf, zero and a bad namespace are refused, each named.
	_, err := NewCollector(Config{Namespace: "a-b", Buckets: []float64{0.01, math.Inf(+1), math.NaN(), 0}})
	for _, want := range []string{"Config.Namespace = \"a-b\"", "Config.Buckets[1] = +Inf", "Config.Buckets[2] = NaN", "Config.Buckets[3] = 0"} {
		if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("NewCollector with bad fields = %v, want it to name %s", err, want)
		}
	}
	// Unsorted and duplicated: cleaned.
	c := mustCollector(t, Config{Namespace: "auth", Buckets: []float64{0.01, 0.001, 0.01}})
	c.Observe(ratelimit.Event{Limiter: "x", Outcome: ratelimit.OutcomeAllowed, Duration: 2 * time.Millisecond})
	if n := testutil.CollectAndCount(c, "auth_decisions_total"); n != 8 {
		t.Errorf("auth_decisions_total has %d series, want one per outcome (8)", n)
	}
	if n := testutil.CollectAndCount(c, "ratelimit_decisions_total"); n != 0 {
		t.Errorf("ratelimit_decisions_total has %d series with namespace auth, want 0", n)
	}
	want := `
# HELP auth_redis_duration_seconds Time a call spent in Redis, NOSCRIPT fallback included.
# TYPE auth_redis_duration_seconds histogram
auth_redis_duration_seconds_bucket{algorithm="token_bucket",limiter="x",le="0.001"} 0
auth_redis_duration_seconds_bucket{algorithm="token_bucket",limiter="x",le="0.01"} 1
auth_redis_duration_seconds_bucket{algorithm="token_bucket",limiter="x",le="+Inf"} 1
auth_redis_duration_seconds_sum{algorithm="token_bucket",limiter="x"} 0.002
auth_redis_duration_seconds_count{algorithm="token_bucket",limiter="x"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "auth_redis_duration_seconds"); err != nil {
		t.Error(err)
	}

	// Defaults: 50µs..1s, and a later change to DefaultBuckets changes nothing.
	saved := DefaultBuckets
	c = mustCollector(t, Config{})
	DefaultBuckets = []float64{1}
	defer func() { DefaultBuckets = saved }()
	c.Observe(ratelimit.Event{Limiter: "x", Outcome: ratelimit.OutcomeAllowed, Duration: 70 * time.Microsecond})
	want = `
# HELP ratelimit_redis_duration_seconds Time a call spent in Redis, NOSCRIPT fallback included.
# TYPE ratelimit_redis_duration_seconds histogram
ratelimit_redis_duration_seconds_bucket{algorithm="token_bucket",limiter="x",le="5e-05"} 0
ratelimit_redis_duration_seconds_bucket{algorithm="token_bucket",limiter="x",le="0.0001"} 1
ratelimit_redis_duration_seconds_bucket{algorithm="token_bucket",limiter="x",le="0.00025"} 1
ratelimit_redis_duration_seconds_bucket{algorithm="token_bucket",limiter="x",le="0.0005"} 1
ratelimit_redis_duration_seconds_bucket{algorithm="token_bucket",limiter="x",le="0.001"} 1
ratelimit_redis_duration_seconds_bucket{algorithm="token_bucket",limiter="x",le="0.0025"} 1
ratelimit_redis_duration_seconds_bucket{algorithm="token_bucket",limiter="x",le="0.005"} 1
ratelimit_redis_duration_seconds_bucket{algorithm="token_bucket",limiter="x",le="0.01"} 1
ratelimit_redis_duration_seconds_bucket{algorithm="token_bucket",limiter="x",le="0.025"} 1
ratelimit_redis_duration_seconds_bucket{algorithm="token_bucket",limiter="x",le="0.05"} 1
ratelimit_redis_duration_seconds_bucket{algorithm="token_bucket",limiter="x",le="0.1"} 1
ratelimit_redis_duration_seconds_bucket{algorithm="token_bucket",limiter="x",le="0.25"} 1
ratelimit_redis_duration_seconds_bucket{algorithm="token_bucket",limiter="x",le="0.5"} 1
ratelimit_redis_duration_seconds_bucket{algorithm="token_bucket",limiter="x",le="1"} 1
ratelimit_redis_duration_seconds_bucket{algorithm="token_bucket",limiter="x",le="+Inf"} 1
ratelimit_redis_duration_seconds_sum{algorithm="token_bucket",limiter="x"} 7e-05
ratelimit_redis_duration_seconds_count{algorithm="token_bucket",limiter="x"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "ratelimit_redis_duration_seconds"); err != nil {
		t.Error(err)
	}
}

// TestErrorKinds feeds errors as go-redis and the Limiter return them and
// checks which kind series each one increments.
func TestErrorKinds(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("ratelimit: api: %w", err) }
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"context deadline", wrap(context.DeadlineExceeded), "timeout"},
		{"socket deadline", wrap(&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}), "timeout"},
		{"canceled", wrap(context.Canceled), "canceled"},
		{"eof", wrap(io.EOF), "connection"},
		{"refused", wrap(&net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}), "connection"},
		{"reset", wrap(&net.OpError{Op: "read", Net: "tcp", Err: &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}}), "connection"},
		{"closed client", wrap(redis.ErrClosed), "connection"},
		{"pool timeout", wrap(errors.New("redis: connection pool timeout")), "connection"},
		{"oom", wrap(redisErr("OOM command not allowed when used memory > 'maxmemory'.")), "oom"},
		{"oom in script", wrap(redisErr("ERR Error running script (call to f_x): @user_script:1: OOM command not allowed when used memory > 'maxmemory'.")), "oom"},
		{"busy", wrap(redisErr("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.")), "busy"},
		{"loading", wrap(redisErr("LOADING Redis is loading the dataset in memory")), "loading"},
		{"masterdown", wrap(redisErr("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.")), "unavailable"},
		{"clusterdown", wrap(redisErr("CLUSTERDOWN The cluster is down")), "unavailable"},
		{"tryagain", wrap(redisErr("TRYAGAIN Multiple keys request during rehashing of slot")), "unavailable"},
		{"readonly", wrap(redisErr("READONLY You can't write against a read only replica.")), "unavailable"},
		{"noperm", wrap(redisErr("NOPERM this user has no permissions to access one of the keys used as arguments")), "noperm"},
		{"bad reply", wrap(fmt.Errorf("%w: string x", ratelimit.ErrUnexpectedReply)), "reply"},
		{"other reply", wrap(redisErr("ERR unknown command 'EVALSHA'")), "other"},
		{"other", errors.New("something else"), "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustCollector(t, Config{})
			c.Observe(ratelimit.Event{Limiter: "api", Outcome: ratelimit.OutcomeFailedOpen, Err: tt.err, Duration: time.Millisecond})
			if got := testutil.ToFloat64(c.errors.WithLabelValues("api", "token_bucket", tt.want)); got != 1 {
				t.Errorf("Observe(Err: %v): %s errors = %v, want 1", tt.err, tt.want, got)
			}
			if got := sumCounter(t, c, "ratelimit_redis_errors_total"); got != 1 {
				t.Errorf("Observe(Err: %v): %v errors in all, want 1", tt.err, got)
			}
		})
	}
}

// sumCounter is the sum of every series of the counter name that c exports.
func sumCounter(t *testing.T, c prometheus.Collector, name string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func TestObserveDoesNotAllocate(t *testing.T) {
	c := mustCollector(t, Config{})
	events := []ratelimit.Event{
		{Limiter: "api", Outcome: ratelimit.OutcomeAllowed, Duration: time.Millisecond},
		{Limiter: "api", Outcome: ratelimit.OutcomeDenied, Duration: time.Millisecond},
		{Limiter: "api", Outcome: ratelimit.OutcomeDenied, Cached: true},
		{Limiter: "api", Outcome: ratelimit.OutcomeLockedOut, LockStarted: true, ScriptReloaded: true, Duration: time.Millisecond},
		{Limiter: "api", Op: ratelimit.OpPeek, Outcome: ratelimit.OutcomeAllowed, Duration: time.Millisecond},
		{Limiter: "api", Op: ratelimit.OpRefund, Outcome: ratelimit.OutcomeAllowed, Duration: time.Millisecond},
		{Limiter: "login", Algorithm: ratelimit.SlidingWindow, Outcome: ratelimit.OutcomeAllowed, Duration: time.Millisecond},
		// The middleware's report of a failure: no Redis error to classify.
		{Limiter: "api", Outcome: ratelimit.OutcomeFailedOpen, Err: context.DeadlineExceeded, Source: ratelimit.SourceAdapter},
	}
	for _, e := range events {
		c.Observe(e) // create the series
	}
	for _, e := range events {
		if n := testing.AllocsPerRun(1000, func() { c.Observe(e) }); n != 0 {
			t.Errorf("Observe(%+v) allocates %v times per call, want 0", e, n)
		}
	}
	// A Redis error costs up to three allocations, in ratelimit.ErrorKind
	// (errors.As with interface targets); the failed call itself has already
	// allocated more (its wrapped error, go-redis's).
	for _, err := range []error{context.DeadlineExceeded, redisErr("OOM command not allowed"), io.EOF,
		&net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}} {
		e := ratelimit.Event{Limiter: "api", Outcome: ratelimit.OutcomeFailedOpen, Err: fmt.Errorf("ratelimit: api: %w", err), Duration: time.Millisecond}
		if n := testing.AllocsPerRun(1000, func() { c.Observe(e) }); n > 3 {
			t.Errorf("Observe(%+v) allocates %v times per call, want at most 3", e, n)
		}
	}
}

// TestConcurrentObserve counts events from many goroutines while Collect runs:
// no event is lost (run with -race).
func TestConcurrentObserve(t *testing.T) {
	c := mustCollector(t, Config{})
	const goroutines, each = 8, 2000
	names := []string{"l0", "l1", "l2", "l3", "l4"}
	stop := make(chan struct{})
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for {
			select {
			case <-stop:
				return
			default:
				testutil.CollectAndCount(c)
			}
		}
	}()
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				// Five limiters, so series are added while others observe;
				// outcomes error (with a Redis error), allowed, denied in turn.
				e := ratelimit.Event{Limiter: names[i%len(names)], Outcome: ratelimit.Outcome(i % 3), Duration: time.Microsecond}
				if e.Outcome == ratelimit.OutcomeError {
					e.Err = io.EOF
				}
				c.Observe(e)
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-collected
	if got := sumCounter(t, c, "ratelimit_decisions_total"); got != goroutines*each {
		t.Errorf("decisions = %v, want %d", got, goroutines*each)
	}
	// Outcome 0 is OutcomeError, the events with Err.
	wantErrs := float64(goroutines * ((each + 2) / 3))
	if got := sumCounter(t, c, "ratelimit_redis_errors_total"); got != wantErrs {
		t.Errorf("redis errors = %v, want %v", got, wantErrs)
	}
}

// TestRealRedisDown kills a real redis-server while goroutines call three
// limiters (FailError, FailOpen, FailClosed): every result the callers saw is
// counted once, with the failures as connection errors. After a restart the
// empty script cache shows as NOSCRIPT fallbacks.
func TestRealRedisDown(t *testing.T) {
	s := redistest.Start(t)
	c := mustCollector(t, Config{})
	rdb := s.Client(t)
	policies := []ratelimit.FailurePolicy{ratelimit.FailError, ratelimit.FailOpen, ratelimit.FailClosed}
	lims := make([]*ratelimit.Limiter, len(policies))
	for i, p := range policies {
		l, err := ratelimit.New(rdb, ratelimit.Config{Name: "fail-" + p.String(), Limit: 1000, Period: time.Second,
			Observer: c, Timeout: time.Second, OnFailure: p})
		if err != nil {
			t.Fatal(err)
		}
		lims[i] = l
	}
	ctx := context.Background()

	type tally struct {
		mu       sync.Mutex
		outcomes map[string]map[string]int // limiter → outcome → count
		errs     map[string]int            // limiter → calls that returned an error
	}
	seen := tally{outcomes: map[string]map[string]int{}, errs: map[string]int{}}
	for _, l := range lims {
		seen.outcomes[l.Config().Name] = map[string]int{}
	}
	var failures sync.WaitGroup // done when every goroutine has seen a failure
	stop := make(chan struct{})
	var workers sync.WaitGroup
	for _, l := range lims {
		for g := 0; g < 2; g++ {
			workers.Add(1)
			failures.Add(1)
			go func() {
				defer workers.Done()
				failed := false
				for n := 0; ; n++ {
					select {
					case <-stop:
						if !failed {
							failures.Done()
						}
						return
					default:
					}
					r, err := l.Allow(ctx, fmt.Sprintf("k%d", n%50))
					name := l.Config().Name
					seen.mu.Lock()
					if err != nil {
						seen.errs[name]++
						seen.outcomes[name]["error"]++
					} else {
						seen.outcomes[name][r.Outcome.String()]++
					}
					seen.mu.Unlock()
					if !failed && (err != nil || r.Outcome == ratelimit.OutcomeFailedOpen || r.Outcome == ratelimit.OutcomeFailedClosed) {
						failed = true
						failures.Done()
					}
				}
			}()
		}
	}
	// Let every limiter decide in Redis for a while, then crash the server under them.
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(c.decisions.WithLabelValues("fail-closed", "token_bucket", "allowed")) < 20 ||
		testutil.ToFloat64(c.decisions.WithLabelValues("fail-error", "token_bucket", "allowed")) < 20 ||
		testutil.ToFloat64(c.decisions.WithLabelValues("fail-open", "token_bucket", "allowed")) < 20 {
		if time.Now().After(deadline) {
			t.Fatal("limiters made no decisions on a live server within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.Kill()
	done := make(chan struct{})
	go func() { failures.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Error("not every goroutine saw a failure within 10s of killing Redis")
	}
	close(stop)
	workers.Wait()

	for _, l := range lims {
		name := l.Config().Name
		for _, o := range []string{"allowed", "denied", "error", "failed_open", "failed_closed"} {
			if got, want := testutil.ToFloat64(c.decisions.WithLabelValues(name, "token_bucket", o)), seen.outcomes[name][o]; got != float64(want) {
				t.Errorf("%s: decisions{outcome=%q} = %v, callers saw %d", name, o, got, want)
			}
		}
		failed := seen.outcomes[name]["error"] + seen.outcomes[name]["failed_open"] + seen.outcomes[name]["failed_closed"]
		if failed == 0 {
			t.Errorf("%s: no failure after killing Redis", name)
		}
		conn := testutil.ToFloat64(c.errors.WithLabelValues(name, "token_bucket", "connection"))
		var all float64
		kinds := map[string]float64{}
		for _, k := range errorKinds {
			n := testutil.ToFloat64(c.errors.WithLabelValues(name, "token_bucket", k))
			all += n
			if n > 0 {
				kinds[k] = n
			}
		}
		// A call in flight when the server died may also end as a timeout.
		if all != float64(failed) || conn == 0 {
			t.Errorf("%s: redis errors = %v (by kind %v), want %d, mostly connection", name, all, kinds, failed)
		}
	}
	t.Logf("callers saw %v; errors returned %v", seen.outcomes, seen.errs)
	if n := seen.errs["fail-error"]; n == 0 || seen.errs["fail-open"]+seen.errs["fail-closed"] != 0 {
		t.Errorf("errors returned to callers: %v; want some for FailError only", seen.errs)
	}

	// A restarted server has lost the scripts: one NOSCRIPT fallback, then none.
	s.Restart(t)
	l := lims[0]
	before := testutil.ToFloat64(c.reloads.WithLabelValues(l.Config().Name, "token_bucket"))
	var r ratelimit.Result
	var err error
	for i := 0; i < 200; i++ { // the pool may hold dead connections for a few calls
		if r, err = l.Allow(ctx, "after-restart"); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil || !r.Allowed {
		t.Fatalf("Allow after restart = %+v, %v", r, err)
	}
	l.Allow(ctx, "after-restart")
	if got := testutil.ToFloat64(c.reloads.WithLabelValues(l.Config().Name, "token_bucket")) - before; got != 1 {
		t.Errorf("script reloads after restart = %v, want 1", got)
	}
}

// TestAllowWithCollectorAddsNoAllocation pins what BenchmarkAllow shows: a
// Limiter with a Collector as Observer allocates exactly as much per Allow
// as one without (on a canned Scripter, so only the Limiter allocates).
func TestAllowWithCollectorAddsNoAllocation(t *testing.T) {
	ctx := context.Background()
	allocs := func(o ratelimit.Observer) float64 {
		lim, err := ratelimit.New(cannedScripter{}, ratelimit.Config{Name: "api", Limit: 10, Period: time.Second, Observer: o})
		if err != nil {
			t.Fatal(err)
		}
		lim.Allow(ctx, "k")
		return testing.AllocsPerRun(1000, func() { lim.Allow(ctx, "k") })
	}
	c := mustCollector(t, Config{})
	without, with := allocs(nil), allocs(c)
	if with != without {
		t.Errorf("Allow allocates %v times with a Collector, %v without; want the same", with, without)
	}
	if got := testutil.ToFloat64(c.decisions.WithLabelValues("api", "token_bucket", "allowed")); got < 1000 {
		t.Errorf("allowed decisions = %v, want the calls counted", got)
	}
}

// mustCollector is NewCollector that fails the test on error.
func mustCollector(t testing.TB, cfg Config) *Collector {
	t.Helper()
	c, err := NewCollector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
