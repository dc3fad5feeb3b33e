package middleware_test

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/seed68425060/ratelimit"
	"github.com/seed68425060/ratelimit/internal/redistest"
	"github.com/seed68425060/ratelimit/middleware"
)

// TestPolicyItems checks the RateLimit-Policy item of each limiter shape: for
// the buckets q=Burst over w = the time Burst takes to refill (whole seconds,
// rounded up), or the sustained rate per second when that is under a second;
// for the sliding window q=Limit over w=Period.
func TestPolicyItems(t *testing.T) {
	tests := []struct {
		name string
		cfg  ratelimit.Config
		want string
	}{
		{name: "10/min, default burst", cfg: ratelimit.Config{Limit: 10, Period: time.Minute}, want: `"p";q=10;w=60`},
		{name: "10/s burst 20", cfg: ratelimit.Config{Limit: 10, Period: time.Second, Burst: 20}, want: `"p";q=20;w=2`},
		{name: "100/min burst 20", cfg: ratelimit.Config{Limit: 100, Period: time.Minute, Burst: 20}, want: `"p";q=20;w=12`},
		{name: "7/min burst 3: refill rounded up", cfg: ratelimit.Config{Limit: 7, Period: time.Minute, Burst: 3}, want: `"p";q=3;w=26`},
		{name: "1000/s burst 10: rate per second", cfg: ratelimit.Config{Limit: 1000, Period: time.Second, Burst: 10}, want: `"p";q=1000;w=1`},
		{name: "leaky bucket like token bucket", cfg: ratelimit.Config{Algorithm: ratelimit.LeakyBucket, Limit: 10, Period: time.Second, Burst: 20}, want: `"p";q=20;w=2`},
		{name: "sliding window", cfg: ratelimit.Config{Algorithm: ratelimit.SlidingWindow, Limit: 100, Period: time.Minute}, want: `"p";q=100;w=60`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, rdb := newMini(t)
			tt.cfg.Name = "p"
			lim := newLimiter(t, rdb, tt.cfg)
			h := newMiddleware(t, middleware.Config{Limiters: []*ratelimit.Limiter{lim}, OnFailure: ratelimit.FailOpen}).Handler(&okHandler{})
			w := do(h, "203.0.113.7:1", nil)
			if got := w.Header().Get(middleware.HeaderRateLimitPolicy); got != tt.want {
				t.Errorf("RateLimit-Policy = %q, want %q", got, tt.want)
			}
		})
	}
}

var policyItem = regexp.MustCompile(`^"[^"]+";q=(\d+);w=(\d+)$`)

// TestPolicyTrueOnRedis checks a token bucket's announced policy against what
// it admits on a real redis-server: a client that sends q at once is admitted q
// times and then denied (q is the real burst), and after waiting w seconds it
// is admitted q at once again (q per w is a pace it can keep forever).
func TestPolicyTrueOnRedis(t *testing.T) {
	s := redistest.Start(t)
	rdb := s.Client(t)
	lim := newLimiter(t, rdb, ratelimit.Config{Name: "api", Limit: 10, Period: time.Second, Burst: 20})
	h := newMiddleware(t, middleware.Config{Limiters: []*ratelimit.Limiter{lim}, OnFailure: ratelimit.FailClosed}).Handler(&okHandler{})
	// Read the announced policy from another client's request.
	w := do(h, "198.51.100.1:1", nil)
	m := policyItem.FindStringSubmatch(w.Header().Get(middleware.HeaderRateLimitPolicy))
	if m == nil {
		t.Fatalf("RateLimit-Policy = %q, want one item", w.Header().Get(middleware.HeaderRateLimitPolicy))
	}
	q, _ := strconv.Atoi(m[1])
	win, _ := strconv.Atoi(m[2])
	ctx := context.Background()
	burst := func(round int) {
		t.Helper()
		for i := 0; i < q; i++ {
			if w := do(h, "203.0.113.7:1", nil); w.Code != http.StatusOK {
				t.Fatalf("round %d: request %d of q=%d: status %d, want 200 (announced %s)", round, i+1, q, w.Code, m[0])
			}
		}
		if r, err := lim.Peek(ctx, "203.0.113.7"); err != nil || r.Allowed && r.Remaining > 0 {
			t.Errorf("round %d: after q=%d at once, Peek = %+v, %v; want nothing left (q is the whole burst)", round, q, r, err)
		}
	}
	for round := 1; round <= 2; round++ {
		burst(round)
		time.Sleep(time.Duration(win)*time.Second + 50*time.Millisecond)
	}
	if got, want := float64(q)/float64(win), 10.0; got > want {
		t.Errorf("q/w = %v per second, more than the sustained rate %v", got, want)
	}
}
