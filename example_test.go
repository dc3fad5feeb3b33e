package ratelimit_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit"
)

// newRedis starts an in-memory Redis (miniredis) with its clock frozen, and a
// client configured for a limiter.
func newRedis() (*miniredis.Miniredis, *redis.Client) {
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	mr.SetTime(time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC))
	// A limiter's client must not retry (a retried script charges one call
	// twice) and must honour context deadlines.
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true})
	return mr, rdb
}

func ExampleNew() {
	mr, rdb := newRedis()
	defer mr.Close()

	lim, err := ratelimit.New(rdb, ratelimit.Config{
		Name:   "api",
		Limit:  3,
		Period: time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for i := 0; i < 4; i++ {
		r, err := lim.Allow(context.Background(), "203.0.113.7")
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(r.Allowed, r.Remaining, r.RetryAfter)
	}
	// Output:
	// true 2 0s
	// true 1 0s
	// true 0 0s
	// false 0 334ms
}

func ExampleNew_invalidConfig() {
	_, err := ratelimit.New(redis.NewClient(&redis.Options{MaxRetries: -1, ContextTimeoutEnabled: true}), ratelimit.Config{
		Name:  "Login Form",
		Limit: 5,
	})
	fmt.Println(err)
	// Output:
	// ratelimit: Config.Name = "Login Form", must match [a-z0-9][a-z0-9_.-]* and be at most 64 bytes: invalid config
	// ratelimit: Config.Period = 0s, must be > 0: invalid config
}

func ExampleLimiter_Allow_lockout() {
	mr, rdb := newRedis()
	defer mr.Close()

	// Five attempts per 15 minutes; the sixth locks the key for an hour.
	lim, _ := ratelimit.New(rdb, ratelimit.Config{
		Name:     "login.user",
		Limit:    5,
		Period:   15 * time.Minute,
		BlockFor: time.Hour,
	})
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		lim.Allow(ctx, "alice")
	}
	r, _ := lim.Allow(ctx, "alice")
	fmt.Println(r.Allowed, r.Outcome, r.RetryAfter)
	r, _ = lim.Peek(ctx, "alice")
	fmt.Println(r.Locked(), r.RetryAfter)
	// Output:
	// false locked_out 1h0m0s
	// true 1h0m0s
}

func ExampleLimiter_Peek() {
	mr, rdb := newRedis()
	defer mr.Close()

	lim, _ := ratelimit.New(rdb, ratelimit.Config{Name: "api", Limit: 10, Period: time.Minute})
	ctx := context.Background()
	lim.AllowN(ctx, "key", 4)
	r, _ := lim.Peek(ctx, "key") // consumes nothing
	fmt.Println(r.Allowed, r.Remaining)
	r, _ = lim.Peek(ctx, "key")
	fmt.Println(r.Allowed, r.Remaining)
	// Output:
	// true 6
	// true 6
}

func ExampleLimiter_Refund() {
	mr, rdb := newRedis()
	defer mr.Close()

	lim, _ := ratelimit.New(rdb, ratelimit.Config{Name: "login.ip", Limit: 10, Period: time.Hour})
	ctx := context.Background()
	// Reserve an attempt before checking the password...
	r, _ := lim.Allow(ctx, "203.0.113.7")
	fmt.Println(r.Remaining)
	// ...and give it back when the login succeeded.
	r, _ = lim.Refund(ctx, "203.0.113.7", 1)
	fmt.Println(r.Remaining)
	// Output:
	// 9
	// 10
}

func ExampleLeakyBucket() {
	mr, rdb := newRedis()
	defer mr.Close()

	// Five jobs per second, up to three queued: callers that wait Delay before
	// starting leave evenly spaced, like nginx limit_req.
	lim, _ := ratelimit.New(rdb, ratelimit.Config{
		Name:      "jobs",
		Algorithm: ratelimit.LeakyBucket,
		Limit:     5,
		Period:    time.Second,
		Burst:     3,
	})
	for i := 0; i < 4; i++ {
		r, _ := lim.Allow(context.Background(), "queue")
		fmt.Println(r.Allowed, r.Delay)
	}
	// Output:
	// true 0s
	// true 200ms
	// true 400ms
	// false 0s
}

func ExampleSlidingWindow() {
	mr, rdb := newRedis()
	defer mr.Close()

	lim, _ := ratelimit.New(rdb, ratelimit.Config{
		Name:      "search",
		Algorithm: ratelimit.SlidingWindow,
		Limit:     2,
		Period:    time.Minute,
	})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		r, _ := lim.Allow(ctx, "user-42")
		fmt.Println(r.Allowed, r.Remaining, r.RetryAfter)
	}
	// Both events happened at the start of the window, but the estimate assumes
	// the previous window's events were spread evenly: the next one fits once
	// half of them have slid out, 1m30s from now (a true rolling window: 1m).
	// Output:
	// true 1 0s
	// true 0 0s
	// false 0 1m30s
}

// A customer's plan decides its rate: one Limiter serves every plan, and a
// customer who changes plan keeps its state.
func ExampleLimiter_With() {
	mr, rdb := newRedis()
	defer mr.Close()

	lim, err := ratelimit.New(rdb, ratelimit.Config{Name: "api", Algorithm: ratelimit.SlidingWindow, Limit: 2, Period: time.Minute})
	if err != nil {
		fmt.Println(err)
		return
	}
	plans := map[string][]ratelimit.Rate{
		"free": {ratelimit.PerMinute(2)},
		"pro":  {ratelimit.PerMinute(5), ratelimit.PerDay(1000)},
	}
	views := map[string]*ratelimit.Limiter{}
	for name, rates := range plans {
		if views[name], err = lim.With(rates...); err != nil {
			fmt.Println(err)
			return
		}
	}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		r, _ := views["free"].Allow(ctx, "customer-42")
		fmt.Println("free", r.Allowed, r.Remaining, r.Limit)
	}
	// The customer upgrades: the 2 calls admitted above still count in the
	// minute, and the day starts counting (a rate of its own).
	r, _ := views["pro"].Allow(ctx, "customer-42")
	fmt.Println("pro", r.Allowed, r.Remaining, r.Limit)
	// Output:
	// free true 1 2/min
	// free true 0 2/min
	// free false 0 2/min
	// pro true 2 5/min
}

// Several windows in one atomic call: 3 per second and 5 per minute. A call
// is admitted only if it fits in both, and a call one of them denies is
// charged to none.
func ExampleConfig_rates() {
	mr, rdb := newRedis()
	defer mr.Close()

	lim, err := ratelimit.New(rdb, ratelimit.Config{
		Name:      "search",
		Algorithm: ratelimit.SlidingWindow,
		Limit:     3,
		Period:    time.Second,
		Rates:     []ratelimit.Rate{ratelimit.PerMinute(5)},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		r, _ := lim.Allow(ctx, "alice")
		fmt.Println(r.Allowed, r.Remaining, r.Limit, r.RetryAfter)
	}
	// Output:
	// true 2 3/s 0s
	// true 1 3/s 0s
	// true 0 3/s 0s
	// false 0 3/s 1.334s
}

// Shadow mode rolls out a new limit: calls are decided and counted as usual,
// but a call that would be denied is admitted with OutcomeShadowDenied, which
// metrics and logs show before the limit is turned on.
func ExampleConfig_shadow() {
	mr, rdb := newRedis()
	defer mr.Close()

	lim, err := ratelimit.New(rdb, ratelimit.Config{Name: "new-limit", Limit: 2, Period: time.Minute, Shadow: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	for i := 0; i < 3; i++ {
		r, _ := lim.Allow(context.Background(), "203.0.113.7")
		fmt.Println(r.Allowed, r.Outcome)
	}
	// Output:
	// true allowed
	// true allowed
	// true shadow_denied
}
