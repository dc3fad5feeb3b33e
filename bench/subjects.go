package main

import (
	"context"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"github.com/seed68425060/ratelimit"
	"github.com/throttled/throttled/v2"
	goredisstore "github.com/throttled/throttled/v2/store/goredisstore.v9"
	"github.com/ulule/limiter/v3"
	ululeredis "github.com/ulule/limiter/v3/drivers/store/redis"
)

// decideFunc makes one decision for key. For the floors, "allowed" is true
// whenever the command succeeded.
type decideFunc func(ctx context.Context, key string) (allowed bool, err error)

// limitSpec is the limit every rate limiter is configured with: Limit events
// per Period, with a burst of Limit.
type limitSpec struct {
	Limit  int
	Period time.Duration
}

// Subject kinds.
const (
	kindFloor = "floor"
	kindOurs  = "ours"
	kindPeer  = "peer"
)

// subject is one thing measured: a rate limiter, or a floor of one round trip.
type subject struct {
	Name      string
	Kind      string
	Algorithm string
	// Keyless subjects (PING) ignore the key, so the hot-key cells and the
	// bytes per key do not apply.
	Keyless bool
	// Stateless subjects write nothing (the EVALSHA floor).
	Stateless bool
	// Commands are the commands whose INFO commandstats usec_per_call is the
	// subject's script time per call.
	Commands []string
	// Variant marks this library's configurations beyond the three
	// algorithms at their defaults (coalescing off, two rates, per-call
	// rates, two limiters and a refund): measured in the throughput cells,
	// not by path.
	Variant bool
	// New builds a decider on client for lim.
	New func(ctx context.Context, client *redis.Client, lim limitSpec) (decideFunc, error)
}

// byPath reports whether the subject's script time is measured by path: the
// rate limiters that keep state, one decision per call (not the floors, not
// this library's variants).
func (s subject) byPath() bool {
	return s.Kind != kindFloor && !s.Keyless && !s.Stateless && !s.Variant
}

// floorScript is the EVALSHA floor: a script that only returns 1.
const floorScript = "return 1"

func subjects() []subject {
	s := []subject{
		{Name: "PING", Kind: kindFloor, Algorithm: "-", Keyless: true, Stateless: true, Commands: []string{"ping"},
			New: func(ctx context.Context, c *redis.Client, _ limitSpec) (decideFunc, error) {
				return func(ctx context.Context, _ string) (bool, error) {
					return true, c.Ping(ctx).Err()
				}, nil
			}},
		{Name: "INCR", Kind: kindFloor, Algorithm: "-", Commands: []string{"incr"},
			New: func(ctx context.Context, c *redis.Client, _ limitSpec) (decideFunc, error) {
				return func(ctx context.Context, key string) (bool, error) {
					return true, c.Incr(ctx, "incr:"+key).Err()
				}, nil
			}},
		{Name: "EVALSHA return 1", Kind: kindFloor, Algorithm: "-", Stateless: true, Commands: []string{"evalsha", "eval"},
			New: func(ctx context.Context, c *redis.Client, _ limitSpec) (decideFunc, error) {
				sha, err := c.ScriptLoad(ctx, floorScript).Result()
				if err != nil {
					return nil, err
				}
				keys := make([]string, 1)
				return func(ctx context.Context, key string) (bool, error) {
					// One []string per call, as every script-based limiter has.
					return true, c.EvalSha(ctx, sha, append(keys[:0:0], key)).Err()
				}, nil
			}},
		{Name: pipelinedFloor, Kind: kindFloor, Algorithm: "-", Stateless: true, Commands: []string{"evalsha", "eval"},
			New: newPipelinedFloor},
		ours("ours TokenBucket", "tb", ratelimit.TokenBucket, 0),
		ours("ours LeakyBucket", "lb", ratelimit.LeakyBucket, 0),
		ours("ours SlidingWindow", "sw", ratelimit.SlidingWindow, 0),
		variant(ours(pipelineOff, "to", ratelimit.TokenBucket, -1)),
		variant(subject{Name: twoRates, Kind: kindOurs, Algorithm: "TokenBucket", Commands: []string{"evalsha", "eval"},
			New: func(ctx context.Context, c *redis.Client, lim limitSpec) (decideFunc, error) {
				rs := twoRatesOf(lim)
				l, err := ratelimit.New(c, ratelimit.Config{Name: "t2", Limit: rs[0].Limit, Period: rs[0].Period, Rates: rs[1:], Timeout: 3 * time.Second})
				if err != nil {
					return nil, err
				}
				return allowOf(l), nil
			}}),
		variant(subject{Name: twoLimiters, Kind: kindOurs, Algorithm: "TokenBucket", Commands: []string{"evalsha", "eval"},
			New: func(ctx context.Context, c *redis.Client, lim limitSpec) (decideFunc, error) {
				rs := twoRatesOf(lim)
				a, err := ratelimit.New(c, ratelimit.Config{Name: "ta", Limit: rs[0].Limit, Period: rs[0].Period, Timeout: 3 * time.Second})
				if err != nil {
					return nil, err
				}
				b, err := ratelimit.New(c, ratelimit.Config{Name: "tb2", Limit: rs[1].Limit, Period: rs[1].Period, Timeout: 3 * time.Second})
				if err != nil {
					return nil, err
				}
				// The way to check two windows before rates per call: both
				// limiters, and a refund of the first when the second denies.
				return func(ctx context.Context, key string) (bool, error) {
					r, err := a.Allow(ctx, key)
					if err != nil || !r.Allowed {
						return false, err
					}
					if r, err = b.Allow(ctx, key); err == nil && !r.Allowed {
						_, err = a.Refund(ctx, key, 1)
					}
					return r.Allowed, err
				}, nil
			}}),
		variant(subject{Name: perCallRate, Kind: kindOurs, Algorithm: "TokenBucket", Commands: []string{"evalsha", "eval"},
			New: func(ctx context.Context, c *redis.Client, lim limitSpec) (decideFunc, error) {
				l, err := ratelimit.New(c, ratelimit.Config{Name: "tv", Limit: 1, Period: time.Second, Timeout: 3 * time.Second})
				if err != nil {
					return nil, err
				}
				rate := ratelimit.Rate{Limit: lim.Limit, Period: lim.Period}
				// The rate comes with every call (a plan looked up per
				// request): With on each call, which returns its kept view.
				return func(ctx context.Context, key string) (bool, error) {
					v, err := l.With(rate)
					if err != nil {
						return false, err
					}
					r, err := v.Allow(ctx, key)
					return r.Allowed, err
				}, nil
			}}),
		{Name: "redis_rate", Kind: kindPeer, Algorithm: "GCRA", Commands: []string{"evalsha", "eval"},
			New: func(ctx context.Context, c *redis.Client, lim limitSpec) (decideFunc, error) {
				rl := redis_rate.NewLimiter(c)
				l := redis_rate.Limit{Rate: lim.Limit, Burst: lim.Limit, Period: lim.Period}
				return func(ctx context.Context, key string) (bool, error) {
					res, err := rl.Allow(ctx, key, l)
					if err != nil {
						return false, err
					}
					return res.Allowed > 0, nil
				}, nil
			}},
		{Name: "throttled", Kind: kindPeer, Algorithm: "GCRA (CAS)", Commands: []string{"eval", "evalsha"},
			New: func(ctx context.Context, c *redis.Client, lim limitSpec) (decideFunc, error) {
				store, err := goredisstore.NewCtx(c, "throttled:")
				if err != nil {
					return nil, err
				}
				q := throttled.RateQuota{MaxRate: throttled.PerDuration(lim.Limit, lim.Period), MaxBurst: lim.Limit - 1}
				gcra, err := throttled.NewGCRARateLimiterCtx(store, q)
				if err != nil {
					return nil, err
				}
				return func(ctx context.Context, key string) (bool, error) {
					limited, _, err := gcra.RateLimitCtx(ctx, key, 1)
					return err == nil && !limited, err
				}, nil
			}},
		{Name: "ulule", Kind: kindPeer, Algorithm: "fixed window", Commands: []string{"evalsha", "eval"},
			New: func(ctx context.Context, c *redis.Client, lim limitSpec) (decideFunc, error) {
				store, err := ululeredis.NewStoreWithOptions(c, limiter.StoreOptions{Prefix: "limiter"})
				if err != nil {
					return nil, err
				}
				l := limiter.New(store, limiter.Rate{Period: lim.Period, Limit: int64(lim.Limit)})
				return func(ctx context.Context, key string) (bool, error) {
					res, err := l.Get(ctx, key)
					return err == nil && !res.Reached, err
				}, nil
			}},
	}
	return s
}

// The names of the subjects the targets compare.
const (
	pipelinedFloor = "EVALSHA return 0, pipelined"
	pipelineOff    = "ours TokenBucket, Pipeline off"
	twoRates       = "ours TokenBucket, 2 rates in one call"
	twoLimiters    = "ours 2 limiters + Refund"
	perCallRate    = "ours TokenBucket, rate per call"
)

func variant(s subject) subject {
	s.Variant = true
	return s
}

// twoRatesOf is lim and a second rate that admits as much (half the period,
// the same burst), so that every throughput call is admitted by both.
func twoRatesOf(lim limitSpec) []ratelimit.Rate {
	return []ratelimit.Rate{{Limit: lim.Limit, Period: lim.Period}, {Limit: lim.Limit, Period: lim.Period / 2}}
}

// newPipelinedFloor is the pipelined floor: this library's default limiter
// (so its coalescer, keys, arguments and reply decoding) on a client of its
// own whose hook rewrites every script call to the script "return 0" (an
// empty bucket's reply), so that only the script differs from "ours
// TokenBucket".
func newPipelinedFloor(ctx context.Context, c *redis.Client, lim limitSpec) (decideFunc, error) {
	sha, err := c.ScriptLoad(ctx, floorZero).Result()
	if err != nil {
		return nil, err
	}
	o := ratelimit.ClientOptions(c.Options())
	o.MinIdleConns = 0 // no dials in the background while AddHook runs
	fc := redis.NewClient(o)
	fc.AddHook(floorHook{sha: sha})
	l, err := ratelimit.New(fc, ratelimit.Config{Name: "fl", Limit: lim.Limit, Period: lim.Period, Timeout: 3 * time.Second})
	if err != nil {
		return nil, err
	}
	return allowOf(l), nil
}

// floorZero is the pipelined floor's script.
const floorZero = "return 0"

// floorHook rewrites EVALSHA and EVAL commands to run floorZero.
type floorHook struct{ sha string }

func (h floorHook) rewrite(cmd redis.Cmder) {
	args := cmd.Args()
	switch cmd.Name() {
	case "evalsha":
		args[1] = h.sha
	case "eval":
		args[1] = floorZero
	}
}

func (h floorHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h floorHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.rewrite(cmd)
		return next(ctx, cmd)
	}
}
func (h floorHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			h.rewrite(c)
		}
		return next(ctx, cmds)
	}
}

// ours measures this library; limiterName keeps each algorithm's keys apart.
func ours(name, limiterName string, alg ratelimit.Algorithm, pipeline int) subject {
	return subject{Name: name, Kind: kindOurs, Algorithm: alg.String(), Commands: []string{"evalsha", "eval"},
		New: func(ctx context.Context, c *redis.Client, lim limitSpec) (decideFunc, error) {
			cfg := ratelimit.Config{
				Name:      limiterName,
				Algorithm: alg,
				Limit:     lim.Limit,
				Period:    lim.Period,
				Timeout:   3 * time.Second, // as go-redis's default ReadTimeout, which bounds the peers
				Pipeline:  pipeline,
			}
			l, err := ratelimit.New(c, cfg)
			if err != nil {
				return nil, err
			}
			return allowOf(l), nil
		}}
}

// allowOf decides with l.Allow.
func allowOf(l *ratelimit.Limiter) decideFunc {
	return func(ctx context.Context, key string) (bool, error) {
		r, err := l.Allow(ctx, key)
		return r.Allowed, err
	}
}
