package middleware_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit"
	"github.com/seed68425060/ratelimit/internal/redistest"
	"github.com/seed68425060/ratelimit/middleware"
)

// checkInvalidCost: a Cost outside 0..Burst is the caller's error. Under
// FailOpen too, it is answered 400, never served, reported as an
// ErrInvalidCost event (never failed_open), and what earlier limiters took is
// given back.
func checkInvalidCost(t *testing.T, rdb redis.Scripter) {
	wide := newLimiter(t, rdb, ratelimit.Config{Name: "wide", Limit: 1000, Period: time.Minute})
	api := newLimiter(t, rdb, ratelimit.Config{Name: "api", Limit: 100, Period: time.Minute})
	obs := &recorder{}
	next := &okHandler{}
	h := newMiddleware(t, middleware.Config{
		Limiters:  []*ratelimit.Limiter{wide, api},
		OnFailure: ratelimit.FailOpen,
		Observer:  obs,
		Cost: func(r *http.Request) int {
			n, _ := strconv.Atoi(r.URL.Query().Get("cost"))
			return n
		},
	}).Handler(next)
	tests := []struct {
		cost    int
		limiter string // the limiter that rejects the cost
		problem bool   // ask for application/problem+json
	}{
		{cost: 1000, limiter: "api"}, // fits wide, never fits api: wide refunded
		{cost: 101, limiter: "api", problem: true},
		{cost: -5, limiter: "wide"},
		{cost: 1001, limiter: "wide", problem: true},
	}
	for _, tt := range tests {
		for i := 0; i < 3; i++ {
			r := httptest.NewRequest(http.MethodGet, "/api?cost="+strconv.Itoa(tt.cost), nil)
			r.RemoteAddr = "203.0.113.7:1"
			if tt.problem {
				r.Header.Set("Accept", "application/problem+json")
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusBadRequest {
				t.Errorf("cost %d: status %d, want 400", tt.cost, w.Code)
			}
			ct := w.Header().Get("Content-Type")
			if tt.problem && (ct != "application/problem+json" || !strings.Contains(w.Body.String(), `"status":400`) || !strings.Contains(w.Body.String(), `"limiter":"`+tt.limiter+`"`)) {
				t.Errorf("cost %d: %s %q, want a problem detail naming %q", tt.cost, ct, w.Body.String(), tt.limiter)
			}
			if got := w.Header().Get(middleware.HeaderRetryAfter); got != "" {
				t.Errorf("cost %d: Retry-After %q, want none (waiting never helps)", tt.cost, got)
			}
		}
	}
	if next.count() != 0 {
		t.Errorf("next served %d requests with an invalid cost, want 0", next.count())
	}
	obs.mu.Lock()
	invalid := 0
	for _, e := range obs.events {
		switch {
		case e.Outcome == ratelimit.OutcomeFailedOpen || e.Outcome == ratelimit.OutcomeFailedClosed:
			t.Errorf("observer saw %v for limiter %q (%v): an invalid cost is not a Redis failure", e.Outcome, e.Limiter, e.Err)
		case errors.Is(e.Err, ratelimit.ErrInvalidCost) && e.Outcome == ratelimit.OutcomeError && e.Duration == 0:
			invalid++
		default:
			t.Errorf("observer saw unexpected event %+v", e)
		}
	}
	obs.mu.Unlock()
	if invalid != 12 {
		t.Errorf("observer saw %d invalid-cost events, want 12", invalid)
	}
	ctx := context.Background()
	for _, l := range []*ratelimit.Limiter{wide, api} {
		r, err := l.Peek(ctx, "203.0.113.7")
		if err != nil {
			t.Fatal(err)
		}
		if r.Remaining != l.Config().Burst {
			t.Errorf("%s: Remaining %d after invalid costs, want %d (nothing kept)", l.Config().Name, r.Remaining, l.Config().Burst)
		}
	}
	// Cost 0 (no query) only checks, and is served.
	if w := do(h, "203.0.113.7:1", nil); w.Code != http.StatusOK {
		t.Errorf("cost 0: status %d, want 200", w.Code)
	}
}

func TestInvalidCostMiniredis(t *testing.T) {
	_, rdb := newMini(t)
	checkInvalidCost(t, rdb)
}

func TestInvalidCostReal(t *testing.T) {
	checkInvalidCost(t, redistest.Start(t).Client(t))
}
