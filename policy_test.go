package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestMultiRateScenarios: a call is admitted iff it fits in every rate, is
// then charged to every rate, and a call one rate denies is charged to none.
func TestMultiRateScenarios(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		steps []step
	}{
		{
			name: "token bucket: 2 per second and 3 per minute",
			cfg:  Config{Algorithm: TokenBucket, Limit: 2, Period: time.Second, Rates: []Rate{{Limit: 3, Period: time.Minute}}},
			steps: []step{
				{at: 0, n: 1, want: reply{allowed: true, remaining: 1, reset: 20_000_000}},
				{at: 0, n: 1, want: reply{allowed: true, remaining: 0, reset: 40_000_000}},
				// The second rate would admit it; the first denies: charged to none.
				{at: 0, n: 1, want: reply{remaining: 0, retry: 500_000, reset: 40_000_000}},
				{at: 1000, n: 1, want: reply{allowed: true, remaining: 0, reset: 59_000_000}},
				// Now the minute binds: it denies, the second would admit.
				{at: 2000, n: 1, want: reply{remaining: 0, retry: 18_000_000, reset: 58_000_000}},
				{at: 2000, n: 1, op: OpRefund, want: reply{allowed: true, remaining: 1, reset: 38_000_000}},
			},
		},
		{
			name: "sliding windows: 2 per second and 3 per 10 seconds",
			cfg:  Config{Algorithm: SlidingWindow, Limit: 2, Period: time.Second, Rates: []Rate{{Limit: 3, Period: 10 * time.Second}}},
			steps: []step{
				{at: 0, n: 2, want: reply{allowed: true, remaining: 0, reset: 20_000_000}},
				// The second denies; 1.4s is when half of the full second has slid out.
				{at: 100, n: 1, want: reply{retry: 1_400_000, reset: 19_900_000}},
				{at: 2000, n: 1, want: reply{allowed: true, remaining: 0, reset: 18_000_000}},
				// Now the 10 seconds bind: 3 in the open window, a third of it must slide out.
				{at: 4000, n: 1, want: reply{retry: 9_334_000, reset: 16_000_000}},
			},
		},
		{
			name: "a denial by one rate locks, and the state under the lock is kept",
			cfg:  Config{Algorithm: LeakyBucket, Limit: 1, Period: time.Second, BlockFor: 100 * time.Millisecond, Rates: []Rate{{Limit: 10, Period: time.Hour}}},
			steps: []step{
				{at: 0, n: 1, want: reply{allowed: true, remaining: 0, reset: 360_000_000}},
				{at: 1, n: 1, want: reply{locked: true, lockStarted: true, retry: 100_000, reset: 100_000}},
				// The hour's level was kept under the lock: its queue ahead is the Delay.
				{at: 1000, n: 1, want: reply{allowed: true, remaining: 0, reset: 719_000_000, delay: 359_000_000}},
				{at: 1000, n: 1, op: OpPeek, want: reply{retry: 1_000_000, reset: 719_000_000}},
			},
		},
	}
	for _, b := range backends(t) {
		for i, tt := range tests {
			t.Run(b.name+"/"+tt.name, func(t *testing.T) {
				cfg := tt.cfg
				cfg.Name = fmt.Sprintf("multi%d", i)
				v := newVirtual(t, b, mustNew(t, b.client, cfg))
				for j, s := range tt.steps {
					v.now = s.at
					if got := replyOf(v.call(s.n, s.op)); got != s.want {
						t.Errorf("step %d (at +%dms, %s n=%d) = %+v, want %+v", j, s.at, s.op, s.n, got, s.want)
					}
				}
			})
		}
	}
}

// TestMultiRateDifferential drives several rates and per-call rates (views
// that change Limit and Burst under the same Periods, as a customer changing
// plan does) against the model, step by step.
func TestMultiRateDifferential(t *testing.T) {
	const steps = 1_500
	configs := []struct {
		cfg   Config
		plans [][]Rate // views the walk switches between
	}{
		{cfg: Config{Algorithm: TokenBucket, Limit: 5, Period: time.Second, Rates: []Rate{{Limit: 20, Period: time.Minute, Burst: 8}}},
			plans: [][]Rate{{{Limit: 50, Period: time.Second}, {Limit: 200, Period: time.Minute, Burst: 30}}, {{Limit: 1, Period: time.Second, Burst: 2}}}},
		{cfg: Config{Algorithm: LeakyBucket, Limit: 3, Period: time.Second, BlockFor: 300 * time.Millisecond, Rates: []Rate{{Limit: 30, Period: time.Minute}}}},
		{cfg: Config{Algorithm: SlidingWindow, Limit: 4, Period: time.Second, Rates: []Rate{{Limit: 10, Period: 5 * time.Second}, {Limit: 30, Period: time.Minute}}},
			plans: [][]Rate{{{Limit: 8, Period: time.Second}, {Limit: 15, Period: 5 * time.Second}, {Limit: 2, Period: time.Minute}}}},
		{cfg: Config{Algorithm: SlidingWindow, Limit: 3, Period: time.Second, BlockFor: 200 * time.Millisecond, Rates: []Rate{{Limit: 2_000_000, Period: 100 * 24 * time.Hour}}}},
		// Three rates: the buckets' loop (two rates run unrolled).
		{cfg: Config{Algorithm: TokenBucket, Limit: 4, Period: time.Second, Burst: 3, BlockFor: 250 * time.Millisecond, Rates: []Rate{{Limit: 12, Period: 10 * time.Second}, {Limit: 30, Period: time.Minute, Burst: 10}}},
			plans: [][]Rate{{{Limit: 9, Period: time.Second}, {Limit: 40, Period: 10 * time.Second, Burst: 6}, {Limit: 60, Period: time.Minute}}}},
	}
	for _, b := range backends(t) {
		for i, c := range configs {
			t.Run(fmt.Sprintf("%s/%s/%d", b.name, c.cfg.Algorithm, i), func(t *testing.T) {
				t.Parallel()
				cfg := c.cfg
				cfg.Name = fmt.Sprintf("mdiff%d", i)
				l := mustNew(t, b.client, cfg)
				v := newVirtual(t, b, l)
				views := []*Limiter{l}
				for _, p := range c.plans {
					w, err := l.With(p...)
					if err != nil {
						t.Fatal(err)
					}
					views = append(views, w)
				}
				rng := rand.New(rand.NewPCG(uint64(i), 7))
				v.now = rng.Int64N(int64(time.Hour / time.Millisecond))
				var allowed, denied, locked, switched int
				for s := 0; s < steps; s++ {
					if len(views) > 1 && rng.IntN(50) == 0 {
						w := views[rng.IntN(len(views))]
						if w.rates != v.l.rates {
							v.l = w
							switched++
						}
					}
					switch k := rng.IntN(20); {
					case k < 14:
						v.now += rng.Int64N(400)
					case k < 19:
						v.now += rng.Int64N(3)
					default:
						v.now += rng.Int64N(60_000)
					}
					op := OpAllow
					switch rng.IntN(10) {
					case 0:
						op = OpPeek
					case 1:
						op = OpRefund
					}
					n := 1
					if rng.IntN(4) == 0 {
						n = rng.IntN(v.l.rates.maxCost + 1)
					}
					if op == OpPeek {
						n = 1
					}
					got := v.call(n, op)
					switch {
					case got.Locked():
						locked++
					case got.Allowed:
						allowed++
					default:
						denied++
					}
				}
				if allowed == 0 || denied == 0 || (cfg.BlockFor > 0 && locked == 0) || (len(views) > 1 && switched == 0) {
					t.Errorf("walk too narrow: %d allowed, %d denied, %d locked, %d plan changes", allowed, denied, locked, switched)
				}
			})
		}
	}
}

// TestMultiRateExactness: many clients at once on one key with two rates:
// never more than either rate admits, and a denied call charged to none (the
// looser rate's state counts exactly the admissions).
func TestMultiRateExactness(t *testing.T) {
	const clients, workers, calls = 4, 12, 10
	for _, b := range realBackends(t) {
		for _, alg := range []Algorithm{TokenBucket, LeakyBucket, SlidingWindow} {
			for _, pipeline := range []int{-1, 0} { // off, and the default
				t.Run(fmt.Sprintf("%s/%s/pipeline=%d", b.name, alg, pipeline), func(t *testing.T) {
					cfg := Config{Name: fmt.Sprintf("mexact-%s-%d", alg, pipeline), Algorithm: alg, Limit: 200, Period: 24 * time.Hour,
						Rates: []Rate{{Limit: 37, Period: time.Hour}}, Pipeline: pipeline}
					var allowed atomic.Int64
					var wg sync.WaitGroup
					for c := 0; c < clients; c++ {
						l := mustNew(t, b.newClient(t), cfg)
						for w := 0; w < workers; w++ {
							wg.Add(1)
							go func() {
								defer wg.Done()
								for i := 0; i < calls; i++ {
									r, err := l.Allow(context.Background(), "hot")
									if err != nil {
										t.Error(err)
										return
									}
									if r.Allowed {
										allowed.Add(1)
									} else if r.Limit.Period != time.Hour {
										t.Errorf("denied by %v, want the hourly rate", r.Limit)
									}
								}
							}()
						}
					}
					wg.Wait()
					if got := allowed.Load(); got != 37 {
						t.Fatalf("admitted %d, want exactly 37 (the tighter rate)", got)
					}
					// The daily rate was charged for the admissions only.
					day, err := mustNew(t, b.client, Config{Name: cfg.Name, Algorithm: alg, Limit: 200, Period: 24 * time.Hour}).Peek(context.Background(), "hot")
					if err != nil {
						t.Fatal(err)
					}
					if day.Remaining != 200-37 {
						t.Errorf("the daily rate has %d left, want %d: denied calls were charged", day.Remaining, 200-37)
					}
				})
			}
		}
	}
}

// TestSameNameRedeploy: limiters with one Name but another algorithm or
// Limit (a rolling deploy) never read each other's state as a free pass.
func TestSameNameRedeploy(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			count := func(l *Limiter, key string, calls int) int {
				n := 0
				for i := 0; i < calls; i++ {
					r, err := l.Allow(ctx, key)
					if err != nil {
						t.Fatal(err)
					}
					if r.Allowed {
						n++
					}
				}
				return n
			}
			bucket := mustNew(t, b.client, Config{Name: "deploy", Algorithm: TokenBucket, Limit: 100, Period: time.Minute})
			window := mustNew(t, b.client, Config{Name: "deploy", Algorithm: SlidingWindow, Limit: 100, Period: time.Minute})
			count(bucket, "k", 150)
			if got := count(window, "k", 300); got > 100 {
				t.Errorf("the window admitted %d after the bucket, against a limit of 100", got)
			}
			wide := mustNew(t, b.client, Config{Name: "deploy2", Algorithm: SlidingWindow, Limit: 1000, Period: time.Minute})
			narrow := mustNew(t, b.client, Config{Name: "deploy2", Algorithm: SlidingWindow, Limit: 10, Period: time.Minute})
			count(wide, "k", 5)
			if got := count(narrow, "k", 50); got != 5 {
				t.Errorf("the 10/min window admitted %d after 5 of the 1000/min one, want 5", got)
			}
			if got := count(wide, "k", 2000); got != 1000-10 {
				t.Errorf("the 1000/min window admitted %d more, want %d", got, 1000-10)
			}
		})
	}
}

// TestPlanChangeKeepsState: a customer who changes plan keeps its state.
func TestPlanChangeKeepsState(t *testing.T) {
	for _, b := range backends(t) {
		for _, alg := range []Algorithm{TokenBucket, SlidingWindow} {
			t.Run(b.name+"/"+alg.String(), func(t *testing.T) {
				ctx := context.Background()
				l := mustNew(t, b.client, Config{Name: "plans-" + alg.String(), Algorithm: alg, Limit: 10, Period: time.Minute})
				small, big := l, must(l.With(PerMinute(1000)))
				for i := 0; i < 10; i++ {
					if r, _ := small.Allow(ctx, "cust"); !r.Allowed {
						t.Fatalf("call %d on 10/min denied", i)
					}
				}
				r, err := big.Peek(ctx, "cust")
				if err != nil {
					t.Fatal(err)
				}
				if alg == SlidingWindow && r.Remaining != 990 {
					t.Errorf("moving up: %d left of 1000, want 990 (the 10 used are kept)", r.Remaining)
				}
				if alg == TokenBucket && r.Remaining != 0 {
					// Burst 1000 at 60ms a token; the 10/min bucket's debt is a full
					// minute of refill: the customer keeps it, paid back at the new rate.
					t.Errorf("moving up: %d left, want 0 (a full minute of debt kept)", r.Remaining)
				}
				if r.Limit != (Rate{Limit: 1000, Period: time.Minute, Burst: 1000}) {
					t.Errorf("Result.Limit = %v, want 1000/min", r.Limit)
				}
				for i := 0; i < 20; i++ {
					big.Allow(ctx, "cust")
				}
				if r, _ := small.Allow(ctx, "cust"); r.Allowed {
					t.Errorf("moving down after using the big plan: %+v, want denied (not a fresh bucket)", r)
				}
			})
		}
	}
}

func must(l *Limiter, err error) *Limiter {
	if err != nil {
		panic(err)
	}
	return l
}

// TestRateErrors: bad rates fail at construction, naming the field.
func TestRateErrors(t *testing.T) {
	l := mustNew(t, &fakeScripter{}, Config{Name: "r", Algorithm: SlidingWindow, Limit: 10, Period: time.Second})
	for _, tt := range []struct {
		rates []Rate
		want  string
	}{
		{nil, "no rates"},
		{[]Rate{{Limit: 0, Period: time.Second}}, "rates[0].Limit = 0"},
		{[]Rate{PerSecond(1), {Limit: 5, Period: time.Second}}, "rates[1].Period = 1s is also rates[0].Period"},
		{[]Rate{{Limit: 5, Period: 1500 * time.Microsecond}}, "rates[0].Period = 1.5ms, must be a whole number of milliseconds"},
		{[]Rate{{Limit: 5, Period: time.Second, Burst: 3}}, "rates[0].Burst = 3, must be 0 or Limit"},
	} {
		_, err := l.With(tt.rates...)
		if err == nil || !errors.Is(err, ErrInvalidConfig) || !contains(err.Error(), tt.want) {
			t.Errorf("With(%v) = %v, want an error containing %q", tt.rates, err, tt.want)
		}
	}
	_, err := New(&fakeScripter{}, Config{Name: "r", Limit: 10, Period: time.Second, Rates: []Rate{{Limit: -1, Period: time.Minute}}})
	if err == nil || !contains(err.Error(), "Config.Rates[0].Limit = -1") {
		t.Errorf("New with a bad rate = %v, want Config.Rates[0].Limit named", err)
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// TestShadow: decided and charged as usual, never denied, and seen.
func TestShadow(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			rec := newRecorder(t)
			l := mustNew(t, b.client, Config{Name: "shadow", Limit: 3, Period: time.Hour, Shadow: true, Observer: rec, BlockFor: time.Minute})
			var shadowed int
			for i := 0; i < 10; i++ {
				r, err := l.Allow(ctx, "k")
				if err != nil || !r.Allowed {
					t.Fatalf("call %d = %+v, %v; shadow mode never denies", i, r, err)
				}
				if r.Outcome == OutcomeShadowDenied {
					shadowed++
					if r.RetryAfter <= 0 {
						t.Errorf("call %d: a would-be denial says RetryAfter %v", i, r.RetryAfter)
					}
				}
			}
			if shadowed != 7 {
				t.Errorf("%d shadow denials, want 7", shadowed)
			}
			var seen int
			for _, e := range rec.drain() {
				if e.Outcome == OutcomeShadowDenied {
					seen++
				}
			}
			if seen != 7 {
				t.Errorf("the observer saw %d shadow denials, want 7", seen)
			}
			// Charged as usual: the same limiter enforcing sees the key locked.
			enforcing := mustNew(t, b.client, Config{Name: "shadow", Limit: 3, Period: time.Hour, BlockFor: time.Minute})
			if r, _ := enforcing.Allow(ctx, "k"); r.Allowed || !r.Locked() {
				t.Errorf("enforcing after shadow = %+v, want locked out (state charged as usual)", r)
			}
		})
	}
}

// TestMultiRateDenyCacheAndFailLocal: several rates work with the deny cache
// (a denial by the tighter rate is answered locally) and with FailLocal (the
// local engine holds every rate, divided among the instances).
func TestMultiRateDenyCacheAndFailLocal(t *testing.T) {
	ctx := context.Background()
	for _, b := range realBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			counting := &countingScripter{Scripter: b.client}
			l := mustNew(t, counting, Config{Name: "mdeny", Limit: 100, Period: time.Hour, Rates: []Rate{{Limit: 2, Period: time.Minute}}, DenyCache: 10})
			for i := 0; i < 2; i++ {
				if r, _ := l.Allow(ctx, "k"); !r.Allowed {
					t.Fatalf("call %d denied", i)
				}
			}
			r, _ := l.Allow(ctx, "k")
			if r.Allowed || r.Limit.Period != time.Minute {
				t.Fatalf("third call = %+v, want denied by the minute", r)
			}
			before := counting.calls.Load()
			for i := 0; i < 5; i++ {
				if r, _ := l.Allow(ctx, "k"); r.Allowed {
					t.Fatalf("cached call %d admitted", i)
				}
			}
			if n := counting.calls.Load() - before; n != 0 {
				t.Errorf("%d scripts for denials the cache holds, want 0", n)
			}
		})
	}
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, ContextTimeoutEnabled: true})
	defer down.Close()
	l := mustNew(t, down, Config{Name: "mlocal", Limit: 100, Period: time.Hour, Rates: []Rate{{Limit: 4, Period: time.Minute}},
		OnFailure: FailLocal, LocalInstances: 2})
	admitted := 0
	for i := 0; i < 10; i++ {
		r, err := l.Allow(ctx, "k")
		if err != nil || r.Outcome != OutcomeFailedLocal {
			t.Fatalf("call %d = %+v, %v; want decided locally", i, r, err)
		}
		if r.Allowed {
			admitted++
		}
	}
	if admitted != 2 {
		t.Errorf("FailLocal admitted %d, want 2 (the minute's 4 divided between 2 instances)", admitted)
	}
}

// TestWithKeepsViews: With returns the same view for the same rates, from
// the limiter or any of its views, and makes it without allocating then.
func TestWithKeepsViews(t *testing.T) {
	l := mustNew(t, &fakeScripter{}, Config{Name: "views", Limit: 10, Period: time.Second})
	a := must(l.With(PerMinute(100), PerDay(1000)))
	if b := must(l.With(PerMinute(100), PerDay(1000))); b != a {
		t.Error("With made a second view for the same rates")
	}
	if b := must(a.With(PerMinute(100), PerDay(1000))); b != a {
		t.Error("a view's With made another view for the same rates")
	}
	if b := must(l.With(PerMinute(200))); b == a {
		t.Error("With returned the same view for other rates")
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = l.With(PerMinute(100), PerDay(1000)) }); n != 0 {
		t.Errorf("With of known rates allocates %v times, want 0", n)
	}
	if _, err := l.With(Rate{Limit: -1, Period: time.Second}); err == nil {
		t.Error("With of a bad rate succeeded")
	}
}

// TestNewLeavesRatesAlone: New fills each rate's Burst default in on its own
// copy; the caller's Rates are never written (a slice shared by goroutines
// building limiters at once raced when they were).
func TestNewLeavesRatesAlone(t *testing.T) {
	rates := []Rate{{Limit: 20, Period: time.Minute}}
	l := mustNew(t, &fakeScripter{}, Config{Name: "rates-alone", Limit: 5, Period: time.Second, Rates: rates})
	if rates[0].Burst != 0 {
		t.Errorf("New wrote Burst %d into the caller's Rates", rates[0].Burst)
	}
	if got := l.Config().Rates[0].Burst; got != 20 {
		t.Errorf("the limiter's Rates[0].Burst = %d, want the default 20", got)
	}
}
