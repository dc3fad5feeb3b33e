package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/seed68425060/ratelimit"
)

const inspectUsage = `Usage:
  ratelimit inspect -redis URL -name NAME -limit COUNT/PERIOD [-algorithm A] [-burst N] [-prefix P] -key KEY

Shows what the limiter NAME would answer now for KEY, without consuming
anything and without writing to Redis: admitted or not, remaining units,
retry after, and whether the key is locked out and until when. Give the same
name, algorithm, limit, burst and prefix the application uses.

Examples:
  # the demo server's per-IP API limit
  ratelimit inspect -redis redis://127.0.0.1:6379 -name api -limit 100/1m -key 127.0.0.1
  # a login limiter with lockouts
  ratelimit inspect -redis redis://127.0.0.1:6379 -name login-user -limit 5/15m -key alice
`

const resetUsage = `Usage:
  ratelimit reset -redis URL -name NAME [-prefix P] -key KEY

Deletes KEY's state in the limiter NAME, lockout included: the key is fresh
again (unlock a user). Only -name, -prefix and -key choose the Redis key; give
-limit and -algorithm too to see the state afterwards as the app sees it.

Examples:
  ratelimit reset -redis redis://127.0.0.1:6379 -name login-user -key alice
  REDIS_URL=redis://127.0.0.1:6379 ratelimit reset -name api -key 203.0.113.7
`

// keyFlags are the flags of inspect and reset: a Redis, a limiter and a key.
type keyFlags struct {
	redis     redisFlags
	name      string
	algorithm algorithmFlag
	limit     limitFlag
	burst     int
	prefix    string
	key       string
	keySet    bool
}

func (k *keyFlags) register(fs *flag.FlagSet) {
	k.redis.register(fs)
	fs.StringVar(&k.name, "name", "", "limiter `name` (Config.Name), e.g. api (required)")
	fs.Var(&k.algorithm, "algorithm", "`algorithm`: token_bucket (default), leaky_bucket or sliding_window")
	fs.Var(&k.limit, "limit", "the limiter's rate, `count/period`, e.g. 100/1m or 5/15m (required for inspect)")
	fs.IntVar(&k.burst, "burst", 0, "the limiter's burst (Config.Burst); 0 means the count of -limit")
	fs.StringVar(&k.prefix, "prefix", ratelimit.DefaultKeyPrefix, "Redis key `prefix` (Config.KeyPrefix)")
	fs.Func("key", "the `key` to look at, e.g. a client IP or a username (required)", func(s string) error {
		k.key, k.keySet = s, true
		return nil
	})
}

// check reports missing required flags; needLimit is true for inspect.
func (k *keyFlags) check(needLimit bool) error {
	var errs []error
	if k.name == "" {
		errs = append(errs, errors.New("-name is required"))
	}
	if !k.keySet {
		errs = append(errs, errors.New("-key is required"))
	}
	if k.limit.limit == 0 {
		errs = append(errs, errors.New("-limit is required, e.g. -limit 100/1m: the limit's Period is part of the key's name"))
	}
	return errors.Join(errs...)
}

// limiter builds the limiter the flags describe.
func (k *keyFlags) limiter(c *conn) (*ratelimit.Limiter, error) {
	cfg := ratelimit.Config{
		Name:      k.name,
		Algorithm: k.algorithm.a,
		Limit:     k.limit.limit,
		Period:    k.limit.period,
		Burst:     k.burst,
		KeyPrefix: k.prefix,
		Timeout:   2 * time.Second,
	}
	return ratelimit.New(c.client, cfg)
}

func runInspect(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runKeyCommand(ctx, "inspect", args, stdout, stderr)
}

func runReset(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runKeyCommand(ctx, "reset", args, stdout, stderr)
}

func runKeyCommand(ctx context.Context, name string, args []string, stdout, stderr io.Writer) int {
	var k keyFlags
	fs := newFlagSet(name)
	k.register(fs)
	if code, ok := parseFlags(fs, name, args, stdout, stderr); !ok {
		return code
	}
	if err := k.check(name == "inspect"); err != nil {
		return usageError(stderr, name, err)
	}
	if !k.redis.configured() {
		return usageError(stderr, name, errors.New("no Redis: give -redis redis://host:port, set "+redisURLEnv+", or give -cluster host:port,..."))
	}
	c, err := k.redis.connect(ctx, false)
	if err != nil {
		return failure(stderr, name, err)
	}
	defer c.Close()
	lim, err := k.limiter(c)
	if err != nil {
		return usageError(stderr, name, err)
	}
	if name == "reset" {
		found, err := lim.Reset(ctx, k.key)
		if err != nil {
			return failure(stderr, name, err)
		}
		if !found {
			fmt.Fprintf(stderr, "reset: no state found for key %q of limiter %q: nothing was changed (a wrong -name, -prefix, -algorithm or -period?)\n", k.key, k.name)
			return exitFail
		}
		fmt.Fprintf(stdout, "reset: key %q of limiter %q is fresh again (lockout, if any, lifted)\n", k.key, k.name)
		if k.limit.limit == 0 {
			return exitOK
		}
	}
	if name == "inspect" {
		// A limiter of another Name, prefix, algorithm or Period names other
		// keys: say so rather than print a fresh state that was never read.
		exists, err := lim.Exists(ctx, k.key)
		if err != nil {
			return failure(stderr, name, err)
		}
		if !exists {
			fmt.Fprintf(stderr, "inspect: no state for key %q of limiter %q (%s, %s, prefix %q): the key is unused or fresh again, or the flags name another limiter (check -name, -prefix, -algorithm and the Period of -limit)\n",
				k.key, k.name, k.algorithm.a, k.limit.String(), lim.Config().KeyPrefix)
			return exitFail
		}
	}
	res, err := lim.Peek(ctx, k.key)
	if err != nil {
		return failure(stderr, name, err)
	}
	printState(stdout, lim.Config(), k.key, res, time.Now())
	return exitOK
}

// printState writes a Peek result for people.
func printState(w io.Writer, cfg ratelimit.Config, key string, r ratelimit.Result, now time.Time) {
	yesNo := map[bool]string{true: "yes", false: "no"}
	fmt.Fprintf(w, "limiter      %s (%s, %s, burst %d, prefix %q)\n", cfg.Name, cfg.Algorithm, ratelimit.FormatLimit(cfg.Limit, cfg.Period), cfg.Burst, cfg.KeyPrefix)
	fmt.Fprintf(w, "key          %q\n", key)
	fmt.Fprintf(w, "admitted now %s\n", yesNo[r.Allowed])
	fmt.Fprintf(w, "remaining    %d of %d\n", r.Remaining, cfg.Burst)
	fmt.Fprintf(w, "retry after  %v\n", r.RetryAfter)
	fmt.Fprintf(w, "fresh after  %v\n", r.ResetAfter)
	if r.Locked() {
		until := now.Add(r.RetryAfter).UTC().Format(time.RFC3339)
		fmt.Fprintf(w, "locked       yes, until %s (%v from now); unlock with: go run ./cmd/ratelimit reset -name %s -limit %s -key %q\n", until, r.RetryAfter, cfg.Name, ratelimit.FormatLimit(cfg.Limit, cfg.Period), key)
	} else {
		fmt.Fprintf(w, "locked       no\n")
	}
}
