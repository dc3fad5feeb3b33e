package middleware_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit"
	"github.com/seed68425060/ratelimit/clientip"
	"github.com/seed68425060/ratelimit/internal/redistest"
	"github.com/seed68425060/ratelimit/middleware"
)

var frozen = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)

// newMini starts a miniredis with its clock frozen and returns a limiter client.
func newMini(t testing.TB) (*miniredis.Miniredis, *redis.Client) {
	t.Helper()
	mr := miniredis.RunT(t)
	mr.SetTime(frozen)
	rdb := redis.NewClient(redistest.Options(mr.Addr()))
	t.Cleanup(func() { rdb.Close() })
	return mr, rdb
}

func newLimiter(t testing.TB, rdb redis.Scripter, cfg ratelimit.Config) *ratelimit.Limiter {
	t.Helper()
	l, err := ratelimit.New(rdb, cfg)
	if err != nil {
		t.Fatalf("ratelimit.New(%+v): %v", cfg, err)
	}
	return l
}

func newMiddleware(t testing.TB, cfg middleware.Config) *middleware.Middleware {
	t.Helper()
	m, err := middleware.New(cfg)
	if err != nil {
		t.Fatalf("middleware.New: %v", err)
	}
	return m
}

// okHandler counts the requests it serves.
type okHandler struct {
	mu sync.Mutex
	n  int
}

func (h *okHandler) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	h.mu.Lock()
	h.n++
	h.mu.Unlock()
	_, _ = io.WriteString(w, "ok")
}

func (h *okHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// do sends one request from remote through h and returns the recorded response.
func do(h http.Handler, remote string, header http.Header) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "/api", nil)
	r.RemoteAddr = remote
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// rateHeaders returns the rate-limit headers of a response in a fixed order.
func rateHeaders(w *httptest.ResponseRecorder) []string {
	var out []string
	for _, name := range []string{
		middleware.HeaderRetryAfter, middleware.HeaderRateLimitPolicy, middleware.HeaderRateLimit,
		middleware.HeaderXRateLimitLimit, middleware.HeaderXRateLimitRemaining, middleware.HeaderXRateLimitReset,
	} {
		for _, v := range w.Result().Header.Values(name) {
			out = append(out, name+": "+v)
		}
	}
	return out
}

func TestNewErrors(t *testing.T) {
	_, rdb := newMini(t)
	a := newLimiter(t, rdb, ratelimit.Config{Name: "a", Limit: 1, Period: time.Second})
	a2 := newLimiter(t, rdb, ratelimit.Config{Name: "a", Limit: 2, Period: time.Second})
	tests := []struct {
		name string
		cfg  middleware.Config
		want []string // substrings of the error
	}{
		{name: "empty", cfg: middleware.Config{}, want: []string{"Config.Limiters is empty", "Config.OnFailure = error"}},
		{name: "nil limiter", cfg: middleware.Config{Limiters: []*ratelimit.Limiter{a, nil}, OnFailure: ratelimit.FailOpen}, want: []string{"Config.Limiters[1] is nil"}},
		{name: "duplicate name", cfg: middleware.Config{Limiters: []*ratelimit.Limiter{a, a2}, OnFailure: ratelimit.FailOpen}, want: []string{`Config.Limiters[1] has Name "a"`}},
		{name: "OnFailure unset", cfg: middleware.Config{Limiters: []*ratelimit.Limiter{a}}, want: []string{"Config.OnFailure = error, must be FailOpen or FailClosed (there is no default)"}},
		{name: "OnFailure FailLocal", cfg: middleware.Config{Limiters: []*ratelimit.Limiter{a}, OnFailure: ratelimit.FailLocal}, want: []string{"Config.OnFailure = local, must be FailOpen or FailClosed (set FailLocal on the limiters' own ratelimit.Config.OnFailure)"}},
		{name: "OnFailure bad", cfg: middleware.Config{Limiters: []*ratelimit.Limiter{a}, OnFailure: 7}, want: []string{"Config.OnFailure = FailurePolicy(7)"}},
		{name: "Headers bad", cfg: middleware.Config{Limiters: []*ratelimit.Limiter{a}, OnFailure: ratelimit.FailOpen, Headers: 9}, want: []string{"Config.Headers = 9"}},
		{name: "Keys unknown", cfg: middleware.Config{Limiters: []*ratelimit.Limiter{a}, OnFailure: ratelimit.FailOpen, Keys: map[string]middleware.KeyFunc{"b": middleware.ConstantKey("x")}}, want: []string{`Config.Keys["b"] names no limiter`}},
		{name: "Keys nil func", cfg: middleware.Config{Limiters: []*ratelimit.Limiter{a}, OnFailure: ratelimit.FailOpen, Keys: map[string]middleware.KeyFunc{"a": nil}}, want: []string{`Config.Keys["a"] is nil`}},
		{name: "TrustedProxies invalid", cfg: middleware.Config{Limiters: []*ratelimit.Limiter{a}, OnFailure: ratelimit.FailOpen, ClientIP: clientip.Config{TrustedProxies: []netip.Prefix{{}}}}, want: []string{"Config.ClientIP: clientip: Config.TrustedProxies[0]"}},
		{name: "TrustedProxies 4in6", cfg: middleware.Config{Limiters: []*ratelimit.Limiter{a}, OnFailure: ratelimit.FailOpen, ClientIP: clientip.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")}}}, want: []string{"Config.TrustedProxies[0] = ::ffff:10.0.0.0/104"}},
		{name: "Header bad", cfg: middleware.Config{Limiters: []*ratelimit.Limiter{a}, OnFailure: ratelimit.FailOpen, ClientIP: clientip.Config{Header: "X-Real-IP"}}, want: []string{`Config.Header = "X-Real-IP"`}},
		{name: "IPv6Prefix bad", cfg: middleware.Config{Limiters: []*ratelimit.Limiter{a}, OnFailure: ratelimit.FailOpen, ClientIP: clientip.Config{IPv6Prefix: 129}}, want: []string{"Config.IPv6Prefix = 129"}},
		{name: "IPv4Prefix bad", cfg: middleware.Config{Limiters: []*ratelimit.Limiter{a}, OnFailure: ratelimit.FailOpen, ClientIP: clientip.Config{IPv4Prefix: -1}}, want: []string{"Config.IPv4Prefix = -1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := middleware.New(tt.cfg)
			if err == nil {
				t.Fatalf("New(%+v) = %v, nil; want an error", tt.cfg, m)
			}
			if !errors.Is(err, ratelimit.ErrInvalidConfig) {
				t.Errorf("New error %v does not wrap ErrInvalidConfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New error %q does not contain %q", err, w)
				}
			}
		})
	}
	if _, err := middleware.New(middleware.Config{Limiters: []*ratelimit.Limiter{a}, OnFailure: ratelimit.FailClosed}); err != nil {
		t.Errorf("New(minimal valid config) = %v", err)
	}
}

// TestHeaders checks every header mode byte for byte on a frozen clock, where a
// token bucket of 10 per minute (one token per 6s) answers exactly: after k
// requests Remaining is 10-k and ResetAfter k×6s; a denial has RetryAfter 6s.
func TestHeaders(t *testing.T) {
	tests := []struct {
		mode  middleware.HeaderMode
		first []string // after request 1
		tenth []string // after request 10
		deny  []string // request 11
	}{
		{
			mode:  middleware.HeadersDraft,
			first: []string{`RateLimit-Policy: "per-client";q=10;w=60`, `RateLimit: "per-client";r=9;t=6`},
			tenth: []string{`RateLimit-Policy: "per-client";q=10;w=60`, `RateLimit: "per-client";r=0;t=60`},
			deny:  []string{`Retry-After: 6`, `RateLimit-Policy: "per-client";q=10;w=60`, `RateLimit: "per-client";r=0;t=6`},
		},
		{
			mode:  middleware.HeadersLegacy,
			first: []string{"X-RateLimit-Limit: 10", "X-RateLimit-Remaining: 9", "X-RateLimit-Reset: 6"},
			tenth: []string{"X-RateLimit-Limit: 10", "X-RateLimit-Remaining: 0", "X-RateLimit-Reset: 60"},
			deny:  []string{"Retry-After: 6", "X-RateLimit-Limit: 10", "X-RateLimit-Remaining: 0", "X-RateLimit-Reset: 6"},
		},
		{
			mode:  middleware.HeadersNone,
			first: nil,
			tenth: nil,
			deny:  []string{"Retry-After: 6"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			_, rdb := newMini(t)
			lim := newLimiter(t, rdb, ratelimit.Config{Name: "per-client", Limit: 10, Period: time.Minute})
			h := newMiddleware(t, middleware.Config{Limiters: []*ratelimit.Limiter{lim}, OnFailure: ratelimit.FailOpen, Headers: tt.mode}).Handler(&okHandler{})
			check := func(n int, want []string, status int) {
				t.Helper()
				w := do(h, "203.0.113.7:1", nil)
				if w.Code != status {
					t.Fatalf("request %d: status %d, want %d", n, w.Code, status)
				}
				if got := rateHeaders(w); strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("request %d headers:\n%s\nwant:\n%s", n, strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
			}
			check(1, tt.first, http.StatusOK)
			for i := 2; i < 10; i++ {
				do(h, "203.0.113.7:1", nil)
			}
			check(10, tt.tenth, http.StatusOK)
			check(11, tt.deny, http.StatusTooManyRequests)
		})
	}
}

// TestHeadersSeveralLimiters: the draft lists every policy and every limiter
// that decided; legacy reports the most restrictive one.
func TestHeadersSeveralLimiters(t *testing.T) {
	for _, tt := range []struct {
		mode middleware.HeaderMode
		want []string
	}{
		{middleware.HeadersDraft, []string{
			`RateLimit-Policy: "per-client";q=10;w=60, "global";q=3;w=2`,
			// global: 3 per 1.5s = one per 500ms; after 1 request r=2, reset 500ms → 1.
			`RateLimit: "per-client";r=9;t=6, "global";r=2;t=1`,
		}},
		// global has the least remaining (2 < 9).
		{middleware.HeadersLegacy, []string{"X-RateLimit-Limit: 3", "X-RateLimit-Remaining: 2", "X-RateLimit-Reset: 1"}},
	} {
		t.Run(tt.mode.String(), func(t *testing.T) {
			_, rdb := newMini(t)
			perClient := newLimiter(t, rdb, ratelimit.Config{Name: "per-client", Limit: 10, Period: time.Minute})
			global := newLimiter(t, rdb, ratelimit.Config{Name: "global", Limit: 3, Period: 1500 * time.Millisecond})
			h := newMiddleware(t, middleware.Config{
				Limiters:  []*ratelimit.Limiter{perClient, global},
				Keys:      map[string]middleware.KeyFunc{"global": middleware.ConstantKey("all")},
				OnFailure: ratelimit.FailOpen,
				Headers:   tt.mode,
			}).Handler(&okHandler{})
			w := do(h, "203.0.113.7:1", nil)
			if got := rateHeaders(w); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("headers:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestRetryAfterRoundsUp: 7 per minute spaces tokens 8.571429s apart; the
// denial must say 9, never 8.
func TestRetryAfterRoundsUp(t *testing.T) {
	for _, tt := range []struct {
		limit  int
		period time.Duration
		want   string
	}{
		{7, time.Minute, "9"},
		{3, time.Second, "1"}, // 333.334ms rounds up to 1, never 0
		{1, 5 * time.Second, "5"},
	} {
		_, rdb := newMini(t)
		lim := newLimiter(t, rdb, ratelimit.Config{Name: "r", Limit: tt.limit, Period: tt.period, Burst: 1})
		h := newMiddleware(t, middleware.Config{Limiters: []*ratelimit.Limiter{lim}, OnFailure: ratelimit.FailOpen}).Handler(&okHandler{})
		do(h, "203.0.113.7:1", nil)
		w := do(h, "203.0.113.7:1", nil)
		if w.Code != http.StatusTooManyRequests {
			t.Fatalf("%d per %v: second request status %d, want 429", tt.limit, tt.period, w.Code)
		}
		if got := w.Header().Get(middleware.HeaderRetryAfter); got != tt.want {
			t.Errorf("%d per %v: Retry-After = %q, want %q", tt.limit, tt.period, got, tt.want)
		}
	}
}

func TestDeniedBody(t *testing.T) {
	_, rdb := newMini(t)
	lim := newLimiter(t, rdb, ratelimit.Config{Name: "per-client", Limit: 1, Period: time.Minute})
	next := &okHandler{}
	h := newMiddleware(t, middleware.Config{Limiters: []*ratelimit.Limiter{lim}, OnFailure: ratelimit.FailOpen}).Handler(next)
	do(h, "203.0.113.7:1", nil)
	const problem = `{"type":"https://iana.org/assignments/http-problem-types#quota-exceeded","title":"Too Many Requests","status":429,"violated-policies":["per-client"]}` + "\n"
	for _, tt := range []struct {
		accept   string
		wantType string
		wantBody string
	}{
		{"", "text/plain; charset=utf-8", "429 Too Many Requests\n"},
		{"text/html, */*;q=0.8", "text/plain; charset=utf-8", "429 Too Many Requests\n"},
		{"application/json, application/problem+json", "application/problem+json", problem},
		{"Application/Problem+JSON;q=0.5", "application/problem+json", problem},
		{"application/problem+json;q=0", "text/plain; charset=utf-8", "429 Too Many Requests\n"},
	} {
		hdr := http.Header{}
		if tt.accept != "" {
			hdr.Set("Accept", tt.accept)
		}
		w := do(h, "203.0.113.7:1", hdr)
		if w.Code != http.StatusTooManyRequests {
			t.Errorf("Accept %q: status %d, want 429", tt.accept, w.Code)
		}
		if got := w.Header().Get("Content-Type"); got != tt.wantType {
			t.Errorf("Accept %q: Content-Type %q, want %q", tt.accept, got, tt.wantType)
		}
		if got := w.Body.String(); got != tt.wantBody {
			t.Errorf("Accept %q: body %q, want %q", tt.accept, got, tt.wantBody)
		}
	}
	if next.count() != 1 {
		t.Errorf("next served %d requests, want 1", next.count())
	}
}

func TestCustomDenied(t *testing.T) {
	_, rdb := newMini(t)
	lim := newLimiter(t, rdb, ratelimit.Config{Name: "per-client", Limit: 1, Period: time.Minute})
	var got middleware.Denial
	h := newMiddleware(t, middleware.Config{
		Limiters:  []*ratelimit.Limiter{lim},
		OnFailure: ratelimit.FailOpen,
		Denied: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got, _ = middleware.DenialFrom(r.Context())
			w.WriteHeader(http.StatusTeapot)
		}),
	}).Handler(&okHandler{})
	do(h, "203.0.113.7:1", nil)
	w := do(h, "203.0.113.7:1", nil)
	if w.Code != http.StatusTeapot || got.Limiter != "per-client" || got.Result.Allowed || got.Result.RetryAfter != time.Minute {
		t.Errorf("custom Denied: status %d, Denial %+v; want 418, per-client, RetryAfter 1m", w.Code, got)
	}
	if w.Header().Get(middleware.HeaderRetryAfter) != "60" {
		t.Errorf("custom Denied: Retry-After %q, want 60 (set before Denied runs)", w.Header().Get(middleware.HeaderRetryAfter))
	}
}

// TestSeveralLimitersBudget: limiters are checked in order; the first denial
// stops the check, earlier limiters get their units back and later ones are not
// charged.
func TestSeveralLimitersBudget(t *testing.T) {
	ctx := context.Background()
	t.Run("later denial refunds earlier", func(t *testing.T) {
		_, rdb := newMini(t)
		perClient := newLimiter(t, rdb, ratelimit.Config{Name: "per-client", Limit: 5, Period: time.Minute})
		global := newLimiter(t, rdb, ratelimit.Config{Name: "global", Limit: 3, Period: time.Minute})
		h := newMiddleware(t, middleware.Config{
			Limiters:  []*ratelimit.Limiter{perClient, global},
			Keys:      map[string]middleware.KeyFunc{"global": middleware.ConstantKey("all")},
			OnFailure: ratelimit.FailOpen,
		}).Handler(&okHandler{})
		for i := 0; i < 3; i++ {
			if w := do(h, "203.0.113.7:1", nil); w.Code != http.StatusOK {
				t.Fatalf("request %d: status %d, want 200", i+1, w.Code)
			}
		}
		for i := 0; i < 4; i++ {
			if w := do(h, "203.0.113.7:1", nil); w.Code != http.StatusTooManyRequests {
				t.Fatalf("request %d: status %d, want 429 (global exhausted)", i+4, w.Code)
			}
		}
		r, err := perClient.Peek(ctx, "203.0.113.7")
		if err != nil {
			t.Fatal(err)
		}
		if r.Remaining != 2 {
			t.Errorf("per-client remaining after 3 admitted and 4 denied requests = %d, want 2 (denials refunded)", r.Remaining)
		}
	})
	t.Run("earlier denial does not charge later", func(t *testing.T) {
		_, rdb := newMini(t)
		perClient := newLimiter(t, rdb, ratelimit.Config{Name: "per-client", Limit: 1, Period: time.Minute})
		global := newLimiter(t, rdb, ratelimit.Config{Name: "global", Limit: 10, Period: time.Minute})
		h := newMiddleware(t, middleware.Config{
			Limiters:  []*ratelimit.Limiter{perClient, global},
			Keys:      map[string]middleware.KeyFunc{"global": middleware.ConstantKey("all")},
			OnFailure: ratelimit.FailOpen,
		}).Handler(&okHandler{})
		codes := []int{do(h, "203.0.113.7:1", nil).Code, do(h, "203.0.113.7:1", nil).Code, do(h, "203.0.113.7:1", nil).Code}
		if codes[0] != 200 || codes[1] != 429 || codes[2] != 429 {
			t.Fatalf("statuses %v, want [200 429 429]", codes)
		}
		r, err := global.Peek(ctx, "all")
		if err != nil {
			t.Fatal(err)
		}
		if r.Remaining != 9 {
			t.Errorf("global remaining = %d, want 9 (only the admitted request charged)", r.Remaining)
		}
	})
}

func TestSkipAndCost(t *testing.T) {
	_, rdb := newMini(t)
	lim := newLimiter(t, rdb, ratelimit.Config{Name: "per-client", Limit: 5, Period: time.Minute})
	next := &okHandler{}
	h := newMiddleware(t, middleware.Config{
		Limiters:  []*ratelimit.Limiter{lim},
		OnFailure: ratelimit.FailOpen,
		Skip:      func(r *http.Request) bool { return r.URL.Path == "/healthz" },
		Cost: func(r *http.Request) int {
			if r.Method == http.MethodPost {
				return 2
			}
			return 1
		},
	}).Handler(next)
	for i := 0; i < 20; i++ {
		r := httptest.NewRequest(http.MethodGet, "/healthz", nil)
		r.RemoteAddr = "203.0.113.7:1"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 || w.Header().Get(middleware.HeaderRateLimit) != "" {
			t.Fatalf("skipped request: status %d, RateLimit %q; want 200 and no header", w.Code, w.Header().Get(middleware.HeaderRateLimit))
		}
	}
	post := func() int {
		r := httptest.NewRequest(http.MethodPost, "/api", nil)
		r.RemoteAddr = "203.0.113.7:1"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	if got := []int{post(), post(), post()}; got[0] != 200 || got[1] != 200 || got[2] != 429 {
		t.Errorf("three POSTs of cost 2 on a burst of 5: %v, want [200 200 429]", got)
	}
	if w := do(h, "203.0.113.7:1", nil); w.Code != 200 {
		t.Errorf("GET of cost 1 with 1 left: status %d, want 200", w.Code)
	}
}

// recorder is an Observer that keeps every Event.
type recorder struct {
	mu     sync.Mutex
	events []ratelimit.Event
}

func (o *recorder) Observe(e ratelimit.Event) {
	o.mu.Lock()
	o.events = append(o.events, e)
	o.mu.Unlock()
}

func (o *recorder) count(out ratelimit.Outcome) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, e := range o.events {
		if e.Outcome == out && e.Err != nil {
			n++
		}
	}
	return n
}

func TestKeyFuncError(t *testing.T) {
	_, rdb := newMini(t)
	lim := newLimiter(t, rdb, ratelimit.Config{Name: "per-user", Limit: 5, Period: time.Minute})
	noKey := func(*http.Request) (string, error) { return "", errors.New("no session") }
	for _, tt := range []struct {
		policy ratelimit.FailurePolicy
		status int
		out    ratelimit.Outcome
	}{
		{ratelimit.FailOpen, http.StatusOK, ratelimit.OutcomeFailedOpen},
		{ratelimit.FailClosed, http.StatusServiceUnavailable, ratelimit.OutcomeFailedClosed},
	} {
		obs := &recorder{}
		h := newMiddleware(t, middleware.Config{Limiters: []*ratelimit.Limiter{lim}, OnFailure: tt.policy, KeyFunc: noKey, Observer: obs}).Handler(&okHandler{})
		if w := do(h, "203.0.113.7:1", nil); w.Code != tt.status {
			t.Errorf("%v: status %d, want %d", tt.policy, w.Code, tt.status)
		}
		if obs.count(tt.out) != 1 {
			t.Errorf("%v: observer saw %d %v events, want 1", tt.policy, obs.count(tt.out), tt.out)
		}
	}
}

// TestLimiterOwnFailurePolicy: a limiter with its own OnFailure answers without
// an error; the middleware follows it.
func TestLimiterOwnFailurePolicy(t *testing.T) {
	mr, rdb := newMini(t)
	open := newLimiter(t, rdb, ratelimit.Config{Name: "open", Limit: 5, Period: time.Minute, OnFailure: ratelimit.FailOpen})
	closed := newLimiter(t, rdb, ratelimit.Config{Name: "closed", Limit: 5, Period: time.Minute, OnFailure: ratelimit.FailClosed})
	hOpen := newMiddleware(t, middleware.Config{Limiters: []*ratelimit.Limiter{open}, OnFailure: ratelimit.FailClosed}).Handler(&okHandler{})
	hClosed := newMiddleware(t, middleware.Config{Limiters: []*ratelimit.Limiter{closed}, OnFailure: ratelimit.FailOpen}).Handler(&okHandler{})
	mr.Close()
	if w := do(hOpen, "203.0.113.7:1", nil); w.Code != http.StatusOK {
		t.Errorf("limiter FailOpen, Redis down: status %d, want 200", w.Code)
	}
	if w := do(hClosed, "203.0.113.7:1", nil); w.Code != http.StatusServiceUnavailable || w.Header().Get(middleware.HeaderRetryAfter) != "1" {
		t.Errorf("limiter FailClosed, Redis down: status %d Retry-After %q, want 503 and 1", w.Code, w.Header().Get(middleware.HeaderRetryAfter))
	}
}

// checkRedisFailure sends requests through a middleware with policy while
// Redis is up, calls kill, and checks the answers and the Observer after it.
func checkRedisFailure(t *testing.T, policy ratelimit.FailurePolicy, rdb redis.Scripter, kill func()) {
	t.Helper()
	lim := newLimiter(t, rdb, ratelimit.Config{Name: "api", Limit: 100, Period: time.Minute, Timeout: 200 * time.Millisecond})
	obs := &recorder{}
	next := &okHandler{}
	h := newMiddleware(t, middleware.Config{Limiters: []*ratelimit.Limiter{lim}, OnFailure: policy, Observer: obs}).Handler(next)
	for i := 0; i < 3; i++ {
		if w := do(h, "203.0.113.7:1", nil); w.Code != http.StatusOK || w.Header().Get(middleware.HeaderRateLimit) == "" {
			t.Fatalf("Redis up: status %d RateLimit %q, want 200 with header", w.Code, w.Header().Get(middleware.HeaderRateLimit))
		}
	}
	if n := len(obs.events); n != 0 {
		t.Fatalf("observer saw %d events while Redis was up, want 0", n)
	}
	kill()
	want, outcome := http.StatusOK, ratelimit.OutcomeFailedOpen
	if policy == ratelimit.FailClosed {
		want, outcome = http.StatusServiceUnavailable, ratelimit.OutcomeFailedClosed
	}
	for i := 0; i < 3; i++ {
		w := do(h, "203.0.113.7:1", nil)
		if w.Code != want {
			t.Errorf("Redis down: status %d, want %d", w.Code, want)
		}
		if got := w.Header().Get(middleware.HeaderRateLimit); got != "" {
			t.Errorf("Redis down: RateLimit header %q, want none", got)
		}
		if policy == ratelimit.FailClosed && w.Header().Get(middleware.HeaderRetryAfter) != "1" {
			t.Errorf("FailClosed: Retry-After %q, want 1", w.Header().Get(middleware.HeaderRetryAfter))
		}
	}
	if got := obs.count(outcome); got != 3 {
		t.Errorf("observer saw %d %v events with an error, want 3", got, outcome)
	}
	wantServed := 3
	if policy == ratelimit.FailOpen {
		wantServed = 6
	}
	if next.count() != wantServed {
		t.Errorf("next served %d requests in all, want %d", next.count(), wantServed)
	}
}

// TestRedisFailureReal kills a real redis-server in the middle of the test.
func TestRedisFailureReal(t *testing.T) {
	for _, policy := range []ratelimit.FailurePolicy{ratelimit.FailOpen, ratelimit.FailClosed} {
		t.Run(policy.String(), func(t *testing.T) {
			s := redistest.Start(t)
			checkRedisFailure(t, policy, s.Client(t), s.Kill)
		})
	}
}

func TestRedisFailureMiniredis(t *testing.T) {
	for _, policy := range []ratelimit.FailurePolicy{ratelimit.FailOpen, ratelimit.FailClosed} {
		t.Run(policy.String(), func(t *testing.T) {
			mr, rdb := newMini(t)
			checkRedisFailure(t, policy, rdb, mr.Close)
		})
	}
}

func TestCanceledRequest(t *testing.T) {
	_, rdb := newMini(t)
	lim := newLimiter(t, rdb, ratelimit.Config{Name: "api", Limit: 5, Period: time.Minute})
	obs := &recorder{}
	next := &okHandler{}
	h := newMiddleware(t, middleware.Config{Limiters: []*ratelimit.Limiter{lim}, OnFailure: ratelimit.FailOpen, Observer: obs}).Handler(next)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := httptest.NewRequest(http.MethodGet, "/api", nil).WithContext(ctx)
	r.RemoteAddr = "203.0.113.7:1"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusServiceUnavailable || next.count() != 0 || len(obs.events) != 0 {
		t.Errorf("canceled request: status %d, served %d, %d observer events; want 503, 0, 0", w.Code, next.count(), len(obs.events))
	}
}

// TestConcurrentExact: N parallel requests from one client on a real
// redis-server admit exactly the burst, with two limiters and refunds.
func TestConcurrentExact(t *testing.T) {
	s := redistest.Start(t)
	rdb := s.Client(t)
	perClient := newLimiter(t, rdb, ratelimit.Config{Name: "per-client", Limit: 10, Period: time.Hour})
	global := newLimiter(t, rdb, ratelimit.Config{Name: "global", Limit: 25, Period: time.Hour})
	next := &okHandler{}
	h := newMiddleware(t, middleware.Config{
		Limiters:  []*ratelimit.Limiter{perClient, global},
		Keys:      map[string]middleware.KeyFunc{"global": middleware.ConstantKey("all")},
		OnFailure: ratelimit.FailClosed,
	}).Handler(next)
	var wg sync.WaitGroup
	for c := 0; c < 4; c++ { // 4 clients × 30 requests, each client may get 10, all together 25
		for i := 0; i < 30; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				do(h, "203.0.113."+string(rune('1'+c))+":1", nil)
			}()
		}
	}
	wg.Wait()
	if next.count() != 25 {
		t.Errorf("120 parallel requests from 4 clients admitted %d, want 25 (the global limit)", next.count())
	}
	// Every unit the global limiter did not admit was refunded to per-client:
	// the per-client budgets used add up to the admitted count.
	used := 0
	for c := 0; c < 4; c++ {
		r, err := perClient.Peek(context.Background(), "203.0.113."+string(rune('1'+c)))
		if err != nil {
			t.Fatal(err)
		}
		used += 10 - r.Remaining
	}
	if used != 25 {
		t.Errorf("per-client units used = %d, want 25 (denied requests refunded)", used)
	}
}
