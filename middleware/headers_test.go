package middleware_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/seed68425060/ratelimit"
	"github.com/seed68425060/ratelimit/middleware"
)

// TestNoHeaders: a limiter named in Config.NoHeaders (a global one, whose
// Remaining every client shares) is left out of the rate-limit headers, in
// every mode, admitted or denied; Retry-After is still written when it denies.
func TestNoHeaders(t *testing.T) {
	for _, tt := range []struct {
		mode   middleware.HeaderMode
		admit  []string // request 1: both admit
		denied []string // request 3: global denies
	}{
		{middleware.HeadersDraft,
			[]string{`RateLimit-Policy: "per-client";q=10;w=60`, `RateLimit: "per-client";r=9;t=6`},
			[]string{"Retry-After: 60", `RateLimit-Policy: "per-client";q=10;w=60`, `RateLimit: "per-client";r=8;t=12`}},
		// global has less remaining (1 < 9) but is not shown.
		{middleware.HeadersLegacy,
			[]string{"X-RateLimit-Limit: 10", "X-RateLimit-Remaining: 9", "X-RateLimit-Reset: 6"},
			[]string{"Retry-After: 60"}},
	} {
		t.Run(tt.mode.String(), func(t *testing.T) {
			_, rdb := newMini(t)
			perClient := newLimiter(t, rdb, ratelimit.Config{Name: "per-client", Limit: 10, Period: time.Minute})
			global := newLimiter(t, rdb, ratelimit.Config{Name: "global", Limit: 2, Period: 2 * time.Minute})
			h := newMiddleware(t, middleware.Config{
				Limiters:  []*ratelimit.Limiter{perClient, global},
				Keys:      map[string]middleware.KeyFunc{"global": middleware.ConstantKey("all")},
				NoHeaders: []string{"global"},
				OnFailure: ratelimit.FailOpen,
				Headers:   tt.mode,
			}).Handler(&okHandler{})
			w := do(h, "203.0.113.7:1", nil)
			if got := rateHeaders(w); w.Code != http.StatusOK || strings.Join(got, "\n") != strings.Join(tt.admit, "\n") {
				t.Errorf("admitted: status %d, headers:\n%s\nwant 200 and:\n%s", w.Code, strings.Join(got, "\n"), strings.Join(tt.admit, "\n"))
			}
			do(h, "203.0.113.8:1", nil) // another client takes the last global unit
			w = do(h, "203.0.113.7:1", nil)
			if got := rateHeaders(w); w.Code != http.StatusTooManyRequests || strings.Join(got, "\n") != strings.Join(tt.denied, "\n") {
				t.Errorf("denied by global: status %d, headers:\n%s\nwant 429 and:\n%s", w.Code, strings.Join(got, "\n"), strings.Join(tt.denied, "\n"))
			}
		})
	}
}

func TestNoHeadersErrors(t *testing.T) {
	_, rdb := newMini(t)
	a := newLimiter(t, rdb, ratelimit.Config{Name: "a", Limit: 1, Period: time.Second})
	_, err := middleware.New(middleware.Config{Limiters: []*ratelimit.Limiter{a}, OnFailure: ratelimit.FailOpen, NoHeaders: []string{"b"}})
	if err == nil || !strings.Contains(err.Error(), `Config.NoHeaders[0] = "b" names no limiter`) {
		t.Errorf("New(NoHeaders: [b]) = %v, want an error naming Config.NoHeaders[0]", err)
	}
}
