package ratelimitgrpc_test

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/seed68425060/ratelimit"
	"github.com/seed68425060/ratelimit/clientip"
	ratelimitgrpc "github.com/seed68425060/ratelimit/grpc"
	"github.com/seed68425060/ratelimit/internal/redistest"
)

// TestExactAcrossConnections: many calls at once from several client
// connections, all one client address: exactly Limit are admitted, the rest
// are ResourceExhausted, for unary calls and for streams alike.
func TestExactAcrossConnections(t *testing.T) {
	const limit, conns, perConn = 25, 4, 20
	onBackends(t, func(t *testing.T, rdb redis.Scripter) {
		for _, kind := range []string{"unary", "stream"} {
			t.Run(kind, func(t *testing.T) {
				lim := newLimiter(t, rdb, ratelimit.Config{Name: "api", Limit: limit, Period: time.Hour})
				addr := serve(t, newInterceptor(t, ratelimitgrpc.Config{Limiters: []*ratelimit.Limiter{lim}, OnFailure: ratelimit.FailClosed}))
				var mu sync.Mutex
				got := map[codes.Code]int{}
				var wg sync.WaitGroup
				for range conns {
					c := dial(t, addr)
					for range perConn {
						wg.Add(1)
						go func() {
							defer wg.Done()
							var a answer
							if kind == "unary" {
								a = check(t, c)
							} else {
								a = watch(t, c)
							}
							mu.Lock()
							got[a.code]++
							mu.Unlock()
						}()
					}
				}
				wg.Wait()
				if got[codes.OK] != limit || got[codes.ResourceExhausted] != conns*perConn-limit {
					t.Errorf("%d calls over %d connections, limit %d: got %v, want %d OK and %d ResourceExhausted",
						conns*perConn, conns, limit, got, limit, conns*perConn-limit)
				}
			})
		}
	})
}

// TestDenial: a denial is ResourceExhausted with a RetryInfo (the limiter's
// RetryAfter, never shorter) and a QuotaFailure naming the limiter; every
// answer carries the rate-limit metadata.
func TestDenial(t *testing.T) {
	onBackends(t, func(t *testing.T, rdb redis.Scripter) {
		for _, kind := range []string{"unary", "stream"} {
			t.Run(kind, func(t *testing.T) {
				lim := newLimiter(t, rdb, ratelimit.Config{Name: "api", Limit: 2, Period: time.Minute})
				c := dial(t, serve(t, newInterceptor(t, ratelimitgrpc.Config{Limiters: []*ratelimit.Limiter{lim}, OnFailure: ratelimit.FailOpen})))
				call := check
				if kind == "stream" {
					call = watch
				}
				for i, want := range []struct {
					code      codes.Code
					remaining string
				}{{codes.OK, "1"}, {codes.OK, "0"}, {codes.ResourceExhausted, "0"}} {
					a := call(t, c)
					if a.code != want.code {
						t.Fatalf("call %d: code %v (%v), want %v", i+1, a.code, a.st.Message(), want.code)
					}
					if g := a.header.Get(ratelimitgrpc.MetadataLimit); len(g) != 1 || g[0] != "2/min" {
						t.Errorf("call %d: %s = %q, want [2/min]", i+1, ratelimitgrpc.MetadataLimit, g)
					}
					if g := a.header.Get(ratelimitgrpc.MetadataRemaining); len(g) != 1 || g[0] != want.remaining {
						t.Errorf("call %d: %s = %q, want [%s]", i+1, ratelimitgrpc.MetadataRemaining, g, want.remaining)
					}
					reset := a.header.Get(ratelimitgrpc.MetadataReset)
					if len(reset) != 1 {
						t.Fatalf("call %d: %s = %q, want one value", i+1, ratelimitgrpc.MetadataReset, reset)
					}
					secs, err := strconv.Atoi(reset[0])
					if err != nil || secs < 1 || secs > 60 {
						t.Errorf("call %d: %s = %q, want 1..60 seconds", i+1, ratelimitgrpc.MetadataReset, reset[0])
					}
					if a.code == codes.OK {
						if r := a.retry(); r != -1 {
							t.Errorf("call %d: admitted with RetryInfo %v", i+1, r)
						}
						continue
					}
					// 2/min: the next unit in 30s, on Redis's millisecond clock.
					if r := a.retry(); r < 29*time.Second || r > 30*time.Second || r%time.Millisecond != 0 {
						t.Errorf("RetryInfo delay = %v, want whole ms in [29s, 30s]", r)
					}
					if secs != 30 {
						t.Errorf("denied: %s = %d, want 30 (RetryAfter in whole seconds, rounded up)", ratelimitgrpc.MetadataReset, secs)
					}
					if v := a.quota(); len(v) != 1 || v[0].GetSubject() != "api" {
						t.Errorf("QuotaFailure violations = %v, want one with Subject \"api\"", v)
					}
				}
			})
		}
	})
}

// TestRetryInfoNeverEarly: on a real Redis, a client that waits the
// RetryInfo delay of a denial and calls again is admitted, round after round;
// half the delay is not enough.
func TestRetryInfoNeverEarly(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	for _, alg := range []ratelimit.Algorithm{ratelimit.TokenBucket, ratelimit.SlidingWindow} {
		t.Run(alg.String(), func(t *testing.T) {
			lim := newLimiter(t, rdb, ratelimit.Config{Name: "api", Algorithm: alg, Limit: 4, Period: time.Second})
			c := dial(t, serve(t, newInterceptor(t, ratelimitgrpc.Config{Limiters: []*ratelimit.Limiter{lim}, OnFailure: ratelimit.FailClosed})))
			for round := 0; round < 4; round++ {
				var a answer
				for a = check(t, c); a.code == codes.OK; a = check(t, c) {
				}
				if a.code != codes.ResourceExhausted {
					t.Fatalf("round %d: code %v (%s), want ResourceExhausted", round, a.code, a.st.Message())
				}
				d := a.retry()
				if d <= 0 || d > 2*time.Second { // a sliding window may take two Periods
					t.Fatalf("round %d: RetryInfo delay %v, want in (0, 2s]", round, d)
				}
				if d >= 100*time.Millisecond {
					time.Sleep(d / 2)
					if h := check(t, c); h.code != codes.ResourceExhausted {
						t.Errorf("round %d: after half the delay (%v of %v): code %v, want ResourceExhausted", round, d/2, d, h.code)
					}
					time.Sleep(d - d/2)
				} else {
					time.Sleep(d)
				}
				if w := check(t, c); w.code != codes.OK {
					t.Errorf("round %d: after waiting RetryInfo's %v: code %v (%s), want OK", round, d, w.code, w.st.Message())
				}
			}
		})
	}
}

// TestTrustedProxies: the default key is the peer address; x-forwarded-for
// (or forwarded) metadata counts only from a trusted proxy, walked from the
// right with package clientip's rules.
func TestTrustedProxies(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	tests := []struct {
		name string
		ip   clientip.Config
		// calls are the metadata of successive calls (pairs), each with the
		// code it must get from a limiter of 1 per hour.
		calls []struct {
			kv   []string
			want codes.Code
		}
	}{
		{
			name: "untrusted: metadata ignored, all calls share the peer's bucket",
			ip:   clientip.Config{},
			calls: []struct {
				kv   []string
				want codes.Code
			}{
				{[]string{"x-forwarded-for", "203.0.113.7"}, codes.OK},
				{[]string{"x-forwarded-for", "203.0.113.8"}, codes.ResourceExhausted},
				{nil, codes.ResourceExhausted},
			},
		},
		{
			name: "trusted: one bucket per forwarded client",
			ip:   clientip.Config{TrustedProxies: loopback},
			calls: []struct {
				kv   []string
				want codes.Code
			}{
				{[]string{"x-forwarded-for", "203.0.113.7"}, codes.OK},
				{[]string{"x-forwarded-for", "203.0.113.7"}, codes.ResourceExhausted},
				{[]string{"x-forwarded-for", "203.0.113.8"}, codes.OK},
				// A forged leftmost entry does not buy a fresh bucket: the
				// proxy appended the real address on the right.
				{[]string{"x-forwarded-for", "198.51.100.1, 203.0.113.7"}, codes.ResourceExhausted},
				// Two metadata values are two header lines, walked as one list.
				{[]string{"x-forwarded-for", "198.51.100.2", "x-forwarded-for", "203.0.113.8"}, codes.ResourceExhausted},
				// IPv6 clients share their /64.
				{[]string{"x-forwarded-for", "2001:db8:1:2::1"}, codes.OK},
				{[]string{"x-forwarded-for", "2001:db8:1:2::ffff"}, codes.ResourceExhausted},
				// No header: the proxy itself is the client.
				{nil, codes.OK},
				{[]string{"x-forwarded-for", "garbage"}, codes.ResourceExhausted},
			},
		},
		{
			name: "trusted, RFC 7239 Forwarded",
			ip:   clientip.Config{TrustedProxies: loopback, Header: clientip.HeaderForwarded},
			calls: []struct {
				kv   []string
				want codes.Code
			}{
				{[]string{"forwarded", "for=203.0.113.7;proto=https"}, codes.OK},
				{[]string{"forwarded", `for="203.0.113.7:4711"`}, codes.ResourceExhausted},
				// Only the configured header is read.
				{[]string{"x-forwarded-for", "203.0.113.9"}, codes.OK},
				{[]string{"x-forwarded-for", "203.0.113.10"}, codes.ResourceExhausted},
			},
		},
	}
	rdb := backends[0].start(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := newLimiter(t, rdb, ratelimit.Config{Name: "per-client", Limit: 1, Period: time.Hour})
			c := dial(t, serve(t, newInterceptor(t, ratelimitgrpc.Config{
				Limiters: []*ratelimit.Limiter{lim}, ClientIP: tt.ip, OnFailure: ratelimit.FailClosed,
			})))
			for i, call := range tt.calls {
				if a := check(t, c, call.kv...); a.code != call.want {
					t.Errorf("call %d with metadata %q: code %v, want %v", i+1, call.kv, a.code, call.want)
				}
			}
		})
	}
}

// TestMethods: an entry for a method beats its service's, which beats
// Limiters; an entry without limiters exempts its method.
func TestMethods(t *testing.T) {
	rdb := backends[0].start(t)
	check1 := newLimiter(t, rdb, ratelimit.Config{Name: "check", Limit: 1, Period: time.Hour})
	service := newLimiter(t, rdb, ratelimit.Config{Name: "service", Limit: 2, Period: time.Hour})
	def := newLimiter(t, rdb, ratelimit.Config{Name: "default", Limit: 1, Period: time.Hour})
	c := dial(t, serve(t, newInterceptor(t, ratelimitgrpc.Config{
		Limiters: []*ratelimit.Limiter{def},
		Methods: map[string][]*ratelimit.Limiter{
			"/grpc.health.v1.Health/Check": {check1},
			"/grpc.health.v1.Health/":      {service},
			"/grpc.health.v1.Health/List":  nil,
		},
		OnFailure: ratelimit.FailClosed,
	})))
	ctx := context.Background()
	codeOf := func(err error) codes.Code { return statusCode(err) }

	if a := check(t, c); a.code != codes.OK {
		t.Errorf("Check 1: %v, want OK", a.code)
	}
	if a := check(t, c); a.code != codes.ResourceExhausted || a.quota()[0].GetSubject() != "check" {
		t.Errorf("Check 2: %v %v, want ResourceExhausted by \"check\"", a.code, a.quota())
	}
	// Watch has no entry of its own: the service's 2 per hour.
	for i, want := range []codes.Code{codes.OK, codes.OK, codes.ResourceExhausted} {
		if a := watch(t, c); a.code != want {
			t.Errorf("Watch %d: %v, want %v", i+1, a.code, want)
		}
	}
	// List is exempt: never limited, and no metadata.
	for i := 0; i < 5; i++ {
		if _, err := c.List(ctx, &healthgrpc.HealthListRequest{}); codeOf(err) != codes.OK {
			t.Fatalf("List %d: %v, want OK", i+1, err)
		}
	}
	// The default limiter decided nothing.
	if r, err := def.Peek(ctx, "127.0.0.1"); err != nil || r.Remaining != 1 {
		t.Errorf("default limiter: Peek = %+v, %v, want Remaining 1 (untouched)", r, err)
	}
}

// TestSeveralLimitersRefund: when a later limiter denies, the earlier ones
// get their units back; a global limiter keyed by ConstantKey and hidden from
// the metadata still limits, with RetryInfo but no QuotaFailure.
func TestSeveralLimitersRefund(t *testing.T) {
	onBackends(t, func(t *testing.T, rdb redis.Scripter) {
		perClient := newLimiter(t, rdb, ratelimit.Config{Name: "per-client", Limit: 10, Period: time.Hour})
		global := newLimiter(t, rdb, ratelimit.Config{Name: "global", Limit: 2, Period: time.Hour})
		c := dial(t, serve(t, newInterceptor(t, ratelimitgrpc.Config{
			Limiters:   []*ratelimit.Limiter{perClient, global},
			Keys:       map[string]ratelimitgrpc.KeyFunc{"global": ratelimitgrpc.ConstantKey("all")},
			NoMetadata: []string{"global"},
			OnFailure:  ratelimit.FailClosed,
		})))
		for i := 0; i < 2; i++ {
			a := check(t, c)
			if a.code != codes.OK {
				t.Fatalf("call %d: %v, want OK", i+1, a.code)
			}
			if g := a.header.Get(ratelimitgrpc.MetadataRemaining); len(g) != 1 || g[0] != strconv.Itoa(9-i) {
				t.Errorf("call %d: remaining %q, want per-client's [%d]", i+1, g, 9-i)
			}
		}
		for i := 0; i < 3; i++ {
			a := check(t, c)
			if a.code != codes.ResourceExhausted || a.retry() <= 0 {
				t.Fatalf("denied call %d: %v, RetryInfo %v, want ResourceExhausted with a delay", i+1, a.code, a.retry())
			}
			if len(a.quota()) != 0 || len(a.header.Get(ratelimitgrpc.MetadataRemaining)) != 0 {
				t.Errorf("denied by the hidden limiter: QuotaFailure %v, metadata %v, want neither", a.quota(), a.header)
			}
		}
		r, err := perClient.Peek(context.Background(), "127.0.0.1")
		if err != nil || r.Remaining != 8 {
			t.Errorf("per-client after 2 admitted and 3 denied: Peek = %+v, %v, want Remaining 8 (denied calls refunded)", r, err)
		}
	})
}

// TestInvalidCost: a cost outside 0..Burst is InvalidArgument, observed as
// ErrInvalidCost, and the earlier limiters get their units back.
func TestInvalidCost(t *testing.T) {
	rdb := backends[0].start(t)
	big := newLimiter(t, rdb, ratelimit.Config{Name: "big", Limit: 100, Period: time.Hour})
	small := newLimiter(t, rdb, ratelimit.Config{Name: "small", Limit: 5, Period: time.Hour})
	obs := &recorder{}
	c := dial(t, serve(t, newInterceptor(t, ratelimitgrpc.Config{
		Limiters: []*ratelimit.Limiter{big, small},
		Cost: func(_ context.Context, call ratelimitgrpc.Call) int {
			if v := call.Metadata.Get("x-cost"); len(v) == 1 {
				n, _ := strconv.Atoi(v[0])
				return n
			}
			return 1
		},
		OnFailure: ratelimit.FailOpen,
		Observer:  obs,
	})))
	for _, tt := range []struct {
		cost string
		want codes.Code
	}{{"5", codes.OK}, {"6", codes.InvalidArgument}, {"-1", codes.InvalidArgument}, {"0", codes.OK}, {"1", codes.ResourceExhausted}} {
		if a := check(t, c, "x-cost", tt.cost); a.code != tt.want {
			t.Errorf("cost %s: %v (%s), want %v", tt.cost, a.code, a.st.Message(), tt.want)
		}
	}
	if n := obs.count(ratelimit.OutcomeError); n != 2 || !obs.hasErr(ratelimit.ErrInvalidCost) {
		t.Errorf("Observer: %d OutcomeError events (ErrInvalidCost seen: %v), want 2", n, obs.hasErr(ratelimit.ErrInvalidCost))
	}
	// big took 5 for the admitted call, and gave back the 6 and the 1 it
	// took for the calls that small refused (-1 is refused before any limiter
	// takes; 0 only checks).
	if r, err := big.Peek(context.Background(), "127.0.0.1"); err != nil || r.Remaining != 95 {
		t.Errorf("big: Peek = %+v, %v, want Remaining 95", r, err)
	}
}

// TestRates: per-call rates (a plan from the metadata) through
// Limiter.With; a customer who changes plan keeps its count; invalid rates
// are Internal; a failing plan lookup follows OnFailure.
func TestRates(t *testing.T) {
	plans := map[string][]ratelimit.Rate{
		"free": {ratelimit.PerHour(2)},
		"gold": {ratelimit.PerHour(5), ratelimit.PerMinute(4)},
		"bad":  {{Limit: 0, Period: time.Hour}},
	}
	errLookup := errors.New("plan store down")
	onBackends(t, func(t *testing.T, rdb redis.Scripter) {
		for _, policy := range []ratelimit.FailurePolicy{ratelimit.FailOpen, ratelimit.FailClosed} {
			t.Run(policy.String(), func(t *testing.T) {
				lim := newLimiter(t, rdb, ratelimit.Config{Name: "api", Algorithm: ratelimit.SlidingWindow, Limit: 3, Period: time.Hour})
				obs := &recorder{}
				c := dial(t, serve(t, newInterceptor(t, ratelimitgrpc.Config{
					Limiters: []*ratelimit.Limiter{lim},
					KeyFunc: func(_ context.Context, call ratelimitgrpc.Call) (string, error) {
						return "customer:" + first(call.Metadata.Get("x-customer")), nil
					},
					Rates: map[string]func(context.Context, ratelimitgrpc.Call) ([]ratelimit.Rate, error){
						"api": func(_ context.Context, call ratelimitgrpc.Call) ([]ratelimit.Rate, error) {
							p := first(call.Metadata.Get("x-plan"))
							if p == "down" {
								return nil, errLookup
							}
							return plans[p], nil // nil: the limiter's own 3 per hour
						},
					},
					OnFailure: policy,
					Observer:  obs,
				})))
				calls := func(customer, plan string, n int) map[codes.Code]int {
					got := map[codes.Code]int{}
					for range n {
						got[check(t, c, "x-customer", customer, "x-plan", plan).code]++
					}
					return got
				}
				if got := calls("a", "free", 4); got[codes.OK] != 2 {
					t.Errorf("free (2/h): %v, want 2 OK", got)
				}
				if got := calls("b", "", 5); got[codes.OK] != 3 {
					t.Errorf("own rate (3/h): %v, want 3 OK", got)
				}
				// gold is 5/h and 4/min: the minute binds first.
				if got := calls("c", "gold", 6); got[codes.OK] != 4 {
					t.Errorf("gold (5/h, 4/min): %v, want 4 OK", got)
				}
				if a := check(t, c, "x-customer", "c", "x-plan", "gold"); a.header.Get(ratelimitgrpc.MetadataLimit)[0] != "4/min" {
					t.Errorf("gold denied: %s = %q, want the binding 4/min", ratelimitgrpc.MetadataLimit, a.header.Get(ratelimitgrpc.MetadataLimit))
				}
				// a moves from free to gold: its 2 used stay counted in the
				// hour (5 - 2 = 3 left), the minute starts fresh (new Period).
				if got := calls("a", "gold", 5); got[codes.OK] != 3 {
					t.Errorf("a upgraded to gold after using 2: %v, want 3 OK", got)
				}
				if a := check(t, c, "x-customer", "d", "x-plan", "bad"); a.code != codes.Internal {
					t.Errorf("invalid plan rates: %v (%s), want Internal", a.code, a.st.Message())
				}
				if !obs.hasErr(ratelimit.ErrInvalidConfig) {
					t.Errorf("invalid plan rates not reported to the Observer")
				}
				want := codes.OK
				if policy == ratelimit.FailClosed {
					want = codes.Unavailable
				}
				if a := check(t, c, "x-customer", "e", "x-plan", "down"); a.code != want {
					t.Errorf("plan lookup error under %v: %v, want %v", policy, a.code, want)
				}
				if !obs.hasErr(errLookup) {
					t.Errorf("plan lookup error not reported to the Observer")
				}
			})
		}
	})
}

// TestShadow: a limiter in shadow mode serves what it would deny; its
// Observer counts those calls as shadow_denied.
func TestShadow(t *testing.T) {
	onBackends(t, func(t *testing.T, rdb redis.Scripter) {
		obs := &recorder{}
		lim := newLimiter(t, rdb, ratelimit.Config{Name: "new-limit", Limit: 1, Period: time.Hour, Shadow: true, Observer: obs})
		c := dial(t, serve(t, newInterceptor(t, ratelimitgrpc.Config{Limiters: []*ratelimit.Limiter{lim}, OnFailure: ratelimit.FailClosed})))
		for i := 0; i < 3; i++ {
			if a := check(t, c); a.code != codes.OK {
				t.Fatalf("call %d: %v, want OK (shadow mode never denies)", i+1, a.code)
			}
		}
		if a, s := obs.count(ratelimit.OutcomeAllowed), obs.count(ratelimit.OutcomeShadowDenied); a != 1 || s != 2 {
			t.Errorf("Observer: %d allowed, %d shadow_denied, want 1 and 2", a, s)
		}
	})
}

// TestRedisStopped: Redis killed mid-test. The interceptor's FailOpen serves
// and reports failed_open; FailClosed answers Unavailable with a RetryInfo;
// a limiter's own FailClosed does too, with its Timeout as the delay. After a
// restart, calls are decided again.
func TestRedisStopped(t *testing.T) {
	for _, tt := range []struct {
		name      string
		own       ratelimit.FailurePolicy // the limiter's
		policy    ratelimit.FailurePolicy // the interceptor's
		want      codes.Code
		retry     time.Duration
		outcome   ratelimit.Outcome // what the interceptor's Observer sees
		streaming bool
	}{
		{"interceptor FailOpen", ratelimit.FailError, ratelimit.FailOpen, codes.OK, -1, ratelimit.OutcomeFailedOpen, false},
		{"interceptor FailOpen stream", ratelimit.FailError, ratelimit.FailOpen, codes.OK, -1, ratelimit.OutcomeFailedOpen, true},
		{"interceptor FailClosed", ratelimit.FailError, ratelimit.FailClosed, codes.Unavailable, time.Second, ratelimit.OutcomeFailedClosed, false},
		{"interceptor FailClosed stream", ratelimit.FailError, ratelimit.FailClosed, codes.Unavailable, time.Second, ratelimit.OutcomeFailedClosed, true},
		{"limiter FailClosed", ratelimit.FailClosed, ratelimit.FailOpen, codes.Unavailable, 300 * time.Millisecond, 0, false},
		{"limiter FailOpen", ratelimit.FailOpen, ratelimit.FailClosed, codes.OK, -1, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.Start(t)
			own := &recorder{}
			lim := newLimiter(t, srv.Client(t), ratelimit.Config{
				Name: "api", Limit: 100, Period: time.Hour, Timeout: 300 * time.Millisecond, OnFailure: tt.own, Observer: own,
			})
			obs := &recorder{}
			c := dial(t, serve(t, newInterceptor(t, ratelimitgrpc.Config{Limiters: []*ratelimit.Limiter{lim}, OnFailure: tt.policy, Observer: obs})))
			call := check
			if tt.streaming {
				call = watch
			}
			if a := call(t, c); a.code != codes.OK {
				t.Fatalf("before the outage: %v, want OK", a.code)
			}
			srv.Kill()
			for i := 0; i < 3; i++ {
				a := call(t, c)
				if a.code != tt.want {
					t.Fatalf("Redis down, call %d: %v (%s), want %v", i+1, a.code, a.st.Message(), tt.want)
				}
				if r := a.retry(); r != tt.retry {
					t.Errorf("Redis down, call %d: RetryInfo %v, want %v", i+1, r, tt.retry)
				}
				if len(a.header.Get(ratelimitgrpc.MetadataRemaining)) != 0 {
					t.Errorf("Redis down, call %d: metadata %v, want none (nothing was decided)", i+1, a.header)
				}
			}
			if tt.outcome != 0 {
				if n := obs.count(tt.outcome); n != 3 {
					t.Errorf("interceptor Observer: %d %v events, want 3", n, tt.outcome)
				}
			} else if n := obs.count(ratelimit.OutcomeFailedOpen) + obs.count(ratelimit.OutcomeFailedClosed); n != 0 {
				t.Errorf("interceptor Observer: %d failure events, want 0 (the limiter's own policy decided)", n)
			}
			if own.count(ratelimit.OutcomeError)+own.count(ratelimit.OutcomeFailedOpen)+own.count(ratelimit.OutcomeFailedClosed) != 3 {
				t.Errorf("limiter Observer: %v, want the 3 failed calls counted", own.counts)
			}
			srv.Restart(t)
			deadline := time.Now().Add(5 * time.Second)
			for a := call(t, c); a.code != codes.OK || len(a.header.Get(ratelimitgrpc.MetadataRemaining)) == 0; a = call(t, c) {
				if time.Now().After(deadline) {
					t.Fatalf("after restart: %v %v, want OK with metadata", a.code, a.header)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// TestSkipAndCanceled: Skip bypasses the limiters; a call whose context is
// already canceled is not a Redis failure.
func TestSkip(t *testing.T) {
	rdb := backends[0].start(t)
	lim := newLimiter(t, rdb, ratelimit.Config{Name: "api", Limit: 1, Period: time.Hour})
	c := dial(t, serve(t, newInterceptor(t, ratelimitgrpc.Config{
		Limiters: []*ratelimit.Limiter{lim},
		Skip: func(_ context.Context, call ratelimitgrpc.Call) bool {
			return first(call.Metadata.Get("x-internal")) == "yes"
		},
		OnFailure: ratelimit.FailClosed,
	})))
	for i := 0; i < 3; i++ {
		if a := check(t, c, "x-internal", "yes"); a.code != codes.OK || len(a.header.Get(ratelimitgrpc.MetadataRemaining)) != 0 {
			t.Errorf("skipped call %d: %v %v, want OK without metadata", i+1, a.code, a.header)
		}
	}
	if a := check(t, c); a.code != codes.OK {
		t.Errorf("first limited call: %v, want OK", a.code)
	}
	if a := check(t, c); a.code != codes.ResourceExhausted {
		t.Errorf("second limited call: %v, want ResourceExhausted", a.code)
	}
}

// TestNewErrors: every problem is reported at once, naming its field.
func TestNewErrors(t *testing.T) {
	rdb := backends[0].start(t)
	a := newLimiter(t, rdb, ratelimit.Config{Name: "a", Limit: 1, Period: time.Second})
	a2 := newLimiter(t, rdb, ratelimit.Config{Name: "a", Limit: 2, Period: time.Second})
	tests := []struct {
		name string
		cfg  ratelimitgrpc.Config
		want []string
	}{
		{"empty", ratelimitgrpc.Config{}, []string{"hold no limiter", "Config.OnFailure = error"}},
		{"FailLocal", ratelimitgrpc.Config{Limiters: []*ratelimit.Limiter{a}, OnFailure: ratelimit.FailLocal}, []string{"Config.OnFailure = local"}},
		{"nil and duplicate", ratelimitgrpc.Config{Limiters: []*ratelimit.Limiter{a, nil, a2}, OnFailure: ratelimit.FailOpen},
			[]string{"Config.Limiters[1] is nil", `Config.Limiters[2] has Name "a"`}},
		{"bad patterns", ratelimitgrpc.Config{Methods: map[string][]*ratelimit.Limiter{
			"grpc.health.v1.Health/Check": {a}, "/a/b/c": {a}, "/": {a}, "//x": {a},
		}, OnFailure: ratelimit.FailOpen},
			[]string{`Config.Methods["grpc.health.v1.Health/Check"]`, `Config.Methods["/a/b/c"]`, `Config.Methods["/"]`, `Config.Methods["//x"]`}},
		{"names", ratelimitgrpc.Config{Limiters: []*ratelimit.Limiter{a}, OnFailure: ratelimit.FailOpen,
			Keys:       map[string]ratelimitgrpc.KeyFunc{"b": ratelimitgrpc.ConstantKey("x"), "a": nil},
			Rates:      map[string]func(context.Context, ratelimitgrpc.Call) ([]ratelimit.Rate, error){"c": nil},
			NoMetadata: []string{"d"}},
			[]string{`Config.Keys["b"] names no limiter`, `Config.Keys["a"] is nil`, `Config.Rates["c"] names no limiter`, `Config.Rates["c"] is nil`, `Config.NoMetadata[0] = "d"`}},
		{"client ip", ratelimitgrpc.Config{Limiters: []*ratelimit.Limiter{a}, OnFailure: ratelimit.FailOpen,
			ClientIP: clientip.Config{Header: "X-Real-IP", IPv6Prefix: 200}},
			[]string{"Config.ClientIP: clientip: Config.Header", "Config.ClientIP: clientip: Config.IPv6Prefix"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ratelimitgrpc.New(tt.cfg)
			if err == nil {
				t.Fatalf("New = nil error, want %q", tt.want)
			}
			if !errors.Is(err, ratelimit.ErrInvalidConfig) {
				t.Errorf("New error %v does not wrap ErrInvalidConfig", err)
			}
			for _, w := range tt.want {
				if !contains(err.Error(), w) {
					t.Errorf("New error %q does not say %q", err, w)
				}
			}
		})
	}
	// A method entry may reuse a limiter of Limiters, or a view of it.
	view, err := a.With(ratelimit.PerMinute(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ratelimitgrpc.New(ratelimitgrpc.Config{Limiters: []*ratelimit.Limiter{a}, Methods: map[string][]*ratelimit.Limiter{"/s/M": {view}, "/s/": {a}}, OnFailure: ratelimit.FailOpen}); err != nil {
		t.Errorf("New with shared limiters: %v", err)
	}
}
