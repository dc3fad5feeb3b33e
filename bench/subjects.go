package main

import (
	"context"
	"fmt"
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
	// Pipeline is this library's Config.Pipeline (0: none).
	Pipeline int
	// New builds a decider on client for lim.
	New func(ctx context.Context, client *redis.Client, lim limitSpec) (decideFunc, error)
}

// byPath reports whether the subject's script time is measured by path: the
// rate limiters that keep state, one decision per call (not the floors, not
// automatic pipelining).
func (s subject) byPath() bool {
	return s.Kind != kindFloor && !s.Keyless && !s.Stateless && s.Pipeline == 0
}

// floorScript is the EVALSHA floor: a script that only returns 1.
const floorScript = "return 1"

func subjects(pipeline int) []subject {
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
		ours("ours TokenBucket", "tb", ratelimit.TokenBucket, 0),
		ours("ours LeakyBucket", "lb", ratelimit.LeakyBucket, 0),
		ours("ours SlidingWindow", "sw", ratelimit.SlidingWindow, 0),
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
	if pipeline > 0 {
		s = append(s, ours(fmt.Sprintf("ours TokenBucket, Pipeline=%d", pipeline), "tp", ratelimit.TokenBucket, pipeline))
	}
	return s
}

// ours measures this library; limiterName keeps each algorithm's keys apart.
func ours(name, limiterName string, alg ratelimit.Algorithm, pipeline int) subject {
	return subject{Name: name, Kind: kindOurs, Algorithm: alg.String(), Commands: []string{"evalsha", "eval"}, Pipeline: pipeline,
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
			return func(ctx context.Context, key string) (bool, error) {
				r, err := l.Allow(ctx, key)
				return r.Allowed, err
			}, nil
		}}
}
