package metrics

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit"
	"github.com/seed68425060/ratelimit/internal/redistest"
)

type redisErr string

func (e redisErr) Error() string { return string(e) }
func (redisErr) RedisError()     {}

// script drives real Limiters on miniredis (frozen clock) with the collector as
// their Observer, plus two events for failures a healthy server cannot produce.
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
	for i := 0; i < 4; i++ { // 2 allowed, 1 denied by Redis, 1 by the deny cache
		api.Allow(ctx, "ip")
	}
	api.Peek(ctx, "ip")
	api.Refund(ctx, "ip", 1)
	rdb.ScriptFlush(ctx)
	api.Allow(ctx, "ip")     // allowed after the refund, with a NOSCRIPT fallback
	for i := 0; i < 3; i++ { // 1 allowed, then a lockout started, then locked out
		login.Allow(ctx, "alice")
	}
	c.Observe(ratelimit.Event{Limiter: "login", Algorithm: ratelimit.SlidingWindow, Outcome: ratelimit.OutcomeFailedClosed, Err: redisErr("OOM command not allowed when used memory > 'maxmemory'."), Duration: time.Millisecond})
	c.Observe(ratelimit.Event{Limiter: "api", Algorithm: ratelimit.TokenBucket, Outcome: ratelimit.OutcomeFailedOpen, Err: context.DeadlineExceeded, Duration: 500 * time.Millisecond})
}

func TestCollectAndCompare(t *testing.T) {
	c := NewCollector()
	script(t, c)
	want := `
# HELP ratelimit_decisions_total Rate-limit decisions (Allow, AllowN, Wait), by outcome.
# TYPE ratelimit_decisions_total counter
ratelimit_decisions_total{algorithm="sliding_window",limiter="login",outcome="allowed"} 1
ratelimit_decisions_total{algorithm="sliding_window",limiter="login",outcome="denied"} 0
ratelimit_decisions_total{algorithm="sliding_window",limiter="login",outcome="error"} 0
ratelimit_decisions_total{algorithm="sliding_window",limiter="login",outcome="failed_closed"} 1
ratelimit_decisions_total{algorithm="sliding_window",limiter="login",outcome="failed_local"} 0
ratelimit_decisions_total{algorithm="sliding_window",limiter="login",outcome="failed_open"} 0
ratelimit_decisions_total{algorithm="sliding_window",limiter="login",outcome="locked_out"} 2
ratelimit_decisions_total{algorithm="token_bucket",limiter="api",outcome="allowed"} 3
ratelimit_decisions_total{algorithm="token_bucket",limiter="api",outcome="denied"} 2
ratelimit_decisions_total{algorithm="token_bucket",limiter="api",outcome="error"} 0
ratelimit_decisions_total{algorithm="token_bucket",limiter="api",outcome="failed_closed"} 0
ratelimit_decisions_total{algorithm="token_bucket",limiter="api",outcome="failed_local"} 0
ratelimit_decisions_total{algorithm="token_bucket",limiter="api",outcome="failed_open"} 1
ratelimit_decisions_total{algorithm="token_bucket",limiter="api",outcome="locked_out"} 0
# HELP ratelimit_deny_cache_hits_total Decisions answered by the local deny cache (Config.DenyCache), with no Redis round trip; also counted in decisions_total.
# TYPE ratelimit_deny_cache_hits_total counter
ratelimit_deny_cache_hits_total{algorithm="sliding_window",limiter="login"} 0
ratelimit_deny_cache_hits_total{algorithm="token_bucket",limiter="api"} 1
# HELP ratelimit_lockouts_total Lockouts started (Config.BlockFor).
# TYPE ratelimit_lockouts_total counter
ratelimit_lockouts_total{algorithm="sliding_window",limiter="login"} 1
ratelimit_lockouts_total{algorithm="token_bucket",limiter="api"} 0
# HELP ratelimit_peeks_total Peek calls (and AllowN with n = 0), which consume nothing.
# TYPE ratelimit_peeks_total counter
ratelimit_peeks_total{algorithm="sliding_window",limiter="login"} 0
ratelimit_peeks_total{algorithm="token_bucket",limiter="api"} 1
# HELP ratelimit_redis_errors_total Calls that failed in Redis, by error kind (timeout, connection, oom, busy, loading, unavailable, noperm, reply, canceled, other).
# TYPE ratelimit_redis_errors_total counter
ratelimit_redis_errors_total{algorithm="sliding_window",kind="oom",limiter="login"} 1
ratelimit_redis_errors_total{algorithm="token_bucket",kind="timeout",limiter="api"} 1
# HELP ratelimit_refunds_total Refund calls, which give units back.
# TYPE ratelimit_refunds_total counter
ratelimit_refunds_total{algorithm="sliding_window",limiter="login"} 0
ratelimit_refunds_total{algorithm="token_bucket",limiter="api"} 1
# HELP ratelimit_script_reloads_total Calls that found the script missing in Redis (NOSCRIPT) and sent it again with EVAL.
# TYPE ratelimit_script_reloads_total counter
ratelimit_script_reloads_total{algorithm="sliding_window",limiter="login"} 1
ratelimit_script_reloads_total{algorithm="token_bucket",limiter="api"} 2
`
	names := []string{"ratelimit_decisions_total", "ratelimit_deny_cache_hits_total", "ratelimit_lockouts_total", "ratelimit_peeks_total",
		"ratelimit_redis_errors_total", "ratelimit_refunds_total", "ratelimit_script_reloads_total"}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	// Latency: one observation per call that reached Redis or failed there.
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
			counts[m.GetLabel()[1].GetValue()] += m.GetHistogram().GetSampleCount()
		}
	}
	if counts["api"] != 7 || counts["login"] != 4 {
		t.Errorf("latency observations %v, want api 7 and login 4", counts)
	}
}

func TestLint(t *testing.T) {
	c := NewCollector()
	script(t, c)
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestNamespaceAndBuckets(t *testing.T) {
	c := NewCollector(WithNamespace("auth"), WithBuckets([]float64{0.001, 0.01}))
	c.Observe(ratelimit.Event{Limiter: "x", Outcome: ratelimit.OutcomeAllowed, Duration: 2 * time.Millisecond})
	if n := testutil.CollectAndCount(c, "auth_decisions_total"); n == 0 {
		t.Error("no auth_decisions_total series with namespace auth")
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
}

func TestObserveDoesNotAllocate(t *testing.T) {
	c := NewCollector()
	events := []ratelimit.Event{
		{Limiter: "api", Outcome: ratelimit.OutcomeAllowed, Duration: time.Millisecond},
		{Limiter: "api", Outcome: ratelimit.OutcomeDenied, Duration: time.Millisecond},
		{Limiter: "api", Outcome: ratelimit.OutcomeLockedOut, LockStarted: true, ScriptReloaded: true, Duration: time.Millisecond},
		{Limiter: "api", Op: ratelimit.OpPeek, Outcome: ratelimit.OutcomeAllowed},
	}
	for _, e := range events {
		c.Observe(e) // create the series
	}
	for _, e := range events {
		if n := testing.AllocsPerRun(1000, func() { c.Observe(e) }); n != 0 {
			t.Errorf("Observe(%+v) allocates %v times per call, want 0", e, n)
		}
	}
}

// TestRealRedisDown kills a real redis-server under a limiter: the error
// outcome and connection errors are counted.
func TestRealRedisDown(t *testing.T) {
	s := redistest.Start(t)
	c := NewCollector()
	l, err := ratelimit.New(s.Client(t), ratelimit.Config{Name: "api", Limit: 10, Period: time.Minute, Observer: c, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := l.Allow(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	s.Kill()
	for i := 0; i < 3; i++ {
		if _, err := l.Allow(ctx, "k"); err == nil {
			t.Fatal("Allow succeeded with Redis killed")
		}
	}
	want := `
# HELP ratelimit_redis_errors_total Calls that failed in Redis, by error kind (timeout, connection, oom, busy, loading, unavailable, noperm, reply, canceled, other).
# TYPE ratelimit_redis_errors_total counter
ratelimit_redis_errors_total{algorithm="token_bucket",kind="connection",limiter="api"} 3
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "ratelimit_redis_errors_total"); err != nil {
		t.Error(err)
	}
	if got := testutil.ToFloat64(c.decisions.WithLabelValues("api", "token_bucket", "error")); got != 3 {
		t.Errorf("error decisions = %v, want 3", got)
	}
}

var seriesName = regexp.MustCompile(`\bratelimit_[a-z_]+\b`)

// TestOperatorFiles checks that every query of dashboard.json and every expr of
// alerts.yml names only series the Collector exports.
func TestOperatorFiles(t *testing.T) {
	c := NewCollector()
	script(t, c)
	exported := map[string]bool{}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		exported[mf.GetName()] = true
		if mf.GetType().String() == "HISTOGRAM" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				exported[mf.GetName()+s] = true
			}
		}
	}

	var queries []string
	raw, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "query") {
					queries = append(queries, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(dash)
	panels := 0
	for _, p := range dash.(map[string]any)["panels"].([]any) {
		if len(p.(map[string]any)["targets"].([]any)) > 0 {
			panels++
		}
	}
	if panels < 6 {
		t.Errorf("dashboard has %d panels with queries", panels)
	}

	rules, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	alerts := 0
	for _, line := range strings.Split(string(rules), "\n") {
		line = strings.TrimSpace(line)
		if e, ok := strings.CutPrefix(line, "expr:"); ok {
			queries = append(queries, e)
		}
		if strings.HasPrefix(line, "- alert:") {
			alerts++
		}
	}
	if alerts < 5 {
		t.Errorf("alerts.yml has %d alerts", alerts)
	}

	used := map[string]bool{}
	for _, q := range queries {
		names := seriesName.FindAllString(q, -1)
		if len(names) == 0 && !strings.HasPrefix(q, "prometheus") {
			t.Errorf("query names no ratelimit series: %s", q)
		}
		for _, n := range names {
			used[n] = true
			if !exported[n] {
				t.Errorf("query uses %s, which the collector does not export: %s", n, q)
			}
		}
	}
	var all []string
	for n := range used {
		all = append(all, n)
	}
	sort.Strings(all)
	t.Logf("series used by the dashboard and alerts: %v", all)
}
