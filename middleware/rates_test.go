package middleware_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit"
	"github.com/seed68425060/ratelimit/internal/redistest"
	"github.com/seed68425060/ratelimit/middleware"
)

// plans is a plan table looked up from the request's X-Plan header.
func plans(r *http.Request) ([]ratelimit.Rate, error) {
	switch r.Header.Get("X-Plan") {
	case "pro":
		return []ratelimit.Rate{ratelimit.PerMinute(5), ratelimit.PerDay(1000)}, nil
	case "bad":
		return []ratelimit.Rate{{Limit: -1, Period: time.Minute}}, nil
	case "down":
		return nil, errors.New("plan database down")
	}
	return nil, nil // the limiter's own rate
}

// TestRatesPerRequest: each request is checked against its plan's rates, the
// headers list and name those rates, and a plan change keeps the state.
func TestRatesPerRequest(t *testing.T) {
	for _, backend := range []string{"miniredis", "redis"} {
		t.Run(backend, func(t *testing.T) {
			var rdb *redis.Client
			if backend == "redis" {
				rdb = redistest.Start(t).Client(t)
			} else {
				_, rdb = newMini(t)
			}
			lim := newLimiter(t, rdb, ratelimit.Config{Name: "api", Algorithm: ratelimit.SlidingWindow, Limit: 2, Period: time.Minute})
			h := newMiddleware(t, middleware.Config{
				Limiters:  []*ratelimit.Limiter{lim},
				Rates:     map[string]func(*http.Request) ([]ratelimit.Rate, error){"api": plans},
				OnFailure: ratelimit.FailOpen,
			}).Handler(&okHandler{})
			plan := func(p string) http.Header { return http.Header{"X-Plan": {p}} }
			codes := func(p string, n int) (ok int, last *http.Response) {
				for i := 0; i < n; i++ {
					w := do(h, "203.0.113.7:1", plan(p))
					if w.Code == http.StatusOK {
						ok++
					}
					last = w.Result()
				}
				return ok, last
			}
			if ok, last := codes("free", 3); ok != 2 || last.Header.Get(middleware.HeaderRateLimitPolicy) != `"api";q=2;w=60` {
				t.Errorf("free: %d admitted, policy %q; want 2 and the limiter's own rate", ok, last.Header.Get(middleware.HeaderRateLimitPolicy))
			}
			// Upgrading keeps the 2 calls counted: 3 more fit in 5/min.
			ok, last := codes("pro", 4)
			if ok != 3 {
				t.Errorf("pro after free: %d admitted, want 3 (state kept across the plan change)", ok)
			}
			if got, want := last.Header.Get(middleware.HeaderRateLimitPolicy), `"api/60s";q=5;w=60, "api/86400s";q=1000;w=86400`; got != want {
				t.Errorf("pro policy = %q, want %q", got, want)
			}
			if got := last.Header.Get(middleware.HeaderRateLimit); got[:len(`"api/60s"`)] != `"api/60s"` {
				t.Errorf("RateLimit = %q, want the minute, which denied", got)
			}
			if w := do(h, "203.0.113.8:1", plan("bad")); w.Code != http.StatusServiceUnavailable {
				t.Errorf("a plan with bad rates: status %d, want 503 (refused, never unlimited)", w.Code)
			}
			if w := do(h, "203.0.113.9:1", plan("down")); w.Code != http.StatusOK {
				t.Errorf("plan lookup failed under FailOpen: status %d, want 200", w.Code)
			}
		})
	}
}

// TestShadowServes: a shadow limiter's would-be denials are served, no 429.
func TestShadowServes(t *testing.T) {
	_, rdb := newMini(t)
	lim := newLimiter(t, rdb, ratelimit.Config{Name: "new", Limit: 1, Period: time.Minute, Shadow: true})
	h := newMiddleware(t, middleware.Config{Limiters: []*ratelimit.Limiter{lim}, OnFailure: ratelimit.FailClosed}).Handler(&okHandler{})
	for i := 0; i < 3; i++ {
		if w := do(h, "203.0.113.7:1", nil); w.Code != http.StatusOK {
			t.Fatalf("request %d: status %d, want 200 (shadow mode never denies)", i, w.Code)
		}
	}
}
