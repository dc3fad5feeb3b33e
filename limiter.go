package ratelimit

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed tokenbucket.lua
	tokenBucketLua string
	//go:embed leakybucket.lua
	leakyBucketLua string
	//go:embed slidingwindow.lua
	slidingWindowLua string
)

// resetLua deletes a limiter key. KEYS[1]: the key. Reply: the number of keys deleted.
const resetLua = "return redis.call('DEL', KEYS[1])"

// lockLua locks a limiter key: every algorithm reads a value of 2^59 or more
// (lockValue) as a lock that lasts as long as the key. KEYS[1]: the key.
// ARGV[1]: lock length in ms (>= 1). Reply: OK.
const lockLua = "return redis.call('SET', KEYS[1], '1152921504606846976', 'PX', ARGV[1])"

// Result is the answer to one call. A denial is a Result with Allowed false,
// not an error.
type Result struct {
	// Allowed reports whether the call was admitted.
	Allowed bool
	// Outcome says how the call was decided; it tells a lockout and a failure
	// policy apart from a plain admission or denial.
	Outcome Outcome
	// Remaining is how many more units a call could take right now, after this
	// one, rounded down. Zero while locked out.
	Remaining int
	// RetryAfter is 0 when Allowed. Otherwise it is the time until the same call
	// would be admitted if nothing else happened, rounded up (never early); while
	// locked out, it is the rest of the lock.
	RetryAfter time.Duration
	// ResetAfter is the time until the key's state is as fresh as an unused key.
	ResetAfter time.Duration
	// Delay is, for LeakyBucket, how long the work queued ahead of this call
	// takes to drain: callers that wait Delay before acting produce an evenly
	// spaced flow. It is zero for the other algorithms and for denied calls.
	Delay time.Duration
	// Locked reports whether the key is locked out (Config.BlockFor or Lock).
	Locked bool
	// LockStarted reports whether this call's denial started the lockout (as
	// opposed to meeting one that an earlier call started).
	LockStarted bool
}

// Limiter makes rate-limit decisions in Redis, atomically, so that any number
// of processes sharing one Redis share every limit. A Limiter is safe for
// concurrent use. Create it with New.
type Limiter struct {
	client  redis.Scripter
	cfg     Config
	keyHead string // KeyPrefix + Name + ":{"
	script  *script
	reset   *script
	lock    *script
	shape   shape
	unitArg string // ARGV[1] of SlidingWindow: the period in ms, hexadecimal
	capArg  string // ARGV[2]: Burst × interval in µs (buckets) or Limit (window), hexadecimal
	block   string // BlockFor in ms for ARGV, or "" without lockout
	allow1  []any  // ARGV for Allow: boxed once, shared read-only by every call
	maxCost int
	co      *coalescer    // nil unless Config.Pipeline
	denied  *denyCache    // nil unless Config.DenyCache
	local   *localLimiter // nil unless FailLocal
	epochs  epochs        // the calls' shared deadlines (see deadline)

	pttl func(rk string) int64 // tests: the PTTL a script uses for rk; nil asks Redis
}

// New returns a Limiter that keeps its state in Redis through client, which may
// be a *redis.Client (standalone, or Sentinel failover), a *redis.ClusterClient,
// a *redis.Ring, or anything else that implements redis.Scripter.
//
// New checks cfg and returns every problem at once, each naming the field and
// its value and wrapping ErrInvalidConfig. For go-redis clients it also checks
// two client options, since a limiter cannot keep its promises without them:
// MaxRetries must be -1 (go-redis re-sends a command whose reply was lost, and a
// re-sent script charges one call twice) and ContextTimeoutEnabled must be true
// (or Config.Timeout cannot interrupt a slow Redis). New does not contact Redis.
// ClientOptions (and ClusterOptions, FailoverOptions, RingOptions) fix a client's options in one line.
func New(client redis.Scripter, cfg Config) (*Limiter, error) {
	if client == nil {
		return nil, configError("client is nil")
	}
	if err := errors.Join(cfg.normalize(), checkClientOptions(client)); err != nil {
		return nil, err
	}
	l := &Limiter{
		client:  client,
		cfg:     cfg,
		keyHead: cfg.KeyPrefix + cfg.Name + ":{",
		reset:   newScript(resetLua),
		lock:    newScript(lockLua),
		shape:   newShape(cfg.Algorithm, cfg.Limit, cfg.Burst, cfg.Period, cfg.BlockFor),
		maxCost: cfg.Burst,
	}
	l.epochs.init(cfg.Timeout)
	if l.shape.block > 0 {
		l.block = strconv.FormatInt(l.shape.block, 10)
	}
	switch cfg.Algorithm {
	case TokenBucket:
		l.script = newScript(tokenBucketLua)
	case LeakyBucket:
		l.script = newScript(leakyBucketLua)
	case SlidingWindow:
		l.script = newScript(slidingWindowLua)
	}
	if cfg.Algorithm == SlidingWindow {
		l.unitArg, l.capArg = strconv.FormatInt(l.shape.unit, 16), strconv.FormatInt(l.shape.limit, 16)
		l.allow1 = []any{l.unitArg, l.capArg}
		if l.block != "" {
			l.allow1 = append(l.allow1, "1", l.block)
		}
	} else {
		l.capArg = strconv.FormatInt(l.shape.capacity(), 16)
		l.allow1 = []any{strconv.FormatInt(l.shape.unit, 10), l.capArg}
		if l.block != "" {
			l.allow1 = append(l.allow1, l.block)
		}
	}
	if cfg.OnFailure == FailLocal {
		l.local = newLocalLimiter(cfg)
	}
	if cfg.DenyCache > 0 {
		l.denied = newDenyCache(cfg.DenyCache)
	}
	if cfg.Pipeline > 0 {
		if _, ok := client.(pipeliner); ok {
			l.co = &coalescer{l: l, maxInFlight: cfg.Pipeline}
		}
	}
	return l, nil
}

// Config returns the limiter's configuration with defaults filled in.
func (l *Limiter) Config() Config { return l.cfg }

// Allow is shorthand for AllowN(ctx, key, 1).
func (l *Limiter) Allow(ctx context.Context, key string) (Result, error) {
	return l.AllowN(ctx, key, 1)
}

// AllowN reports whether n events may happen now for key, and consumes them if
// so. key is any string, untrusted input included: long or unusual keys are
// hashed (see the README, key layout). n = 0 consumes nothing and writes
// nothing; n < 0 and n > Burst return ErrInvalidCost without calling Redis.
//
// A denial is a Result with Allowed false and err nil. err != nil means no
// decision could be made (Redis error, timeout, canceled context) and
// Config.OnFailure is FailError, or the caller's own context ended.
func (l *Limiter) AllowN(ctx context.Context, key string, n int) (Result, error) {
	if n < 0 || n > l.maxCost {
		return Result{}, fmt.Errorf("ratelimit: %s: cost n = %d, must be between 0 and Burst (%d): %w", l.cfg.Name, n, l.maxCost, ErrInvalidCost)
	}
	rk := l.redisKey(key)
	if n == 0 {
		return l.call(ctx, rk, n, OpPeek)
	}
	if l.denied != nil {
		if r, ok := l.denied.get(rk, n, time.Now()); ok {
			l.observe(Event{Outcome: r.Outcome, Op: OpAllow, Cached: true})
			return r, nil
		}
	}
	var r Result
	var err error
	if l.co != nil && l.pttl == nil {
		r, err = l.co.allow(ctx, rk, n)
	} else {
		r, err = l.call(ctx, rk, n, OpAllow)
	}
	if l.denied != nil && err == nil && !r.Allowed && r.RetryAfter > 0 && (r.Outcome == OutcomeDenied || r.Outcome == OutcomeLockedOut) {
		l.denied.put(rk, n, time.Now().Add(r.RetryAfter), r.Locked)
	}
	return r, err
}

// Peek reports what Allow would answer now for key without consuming anything
// and without writing to Redis (it never starts a lockout).
func (l *Limiter) Peek(ctx context.Context, key string) (Result, error) {
	return l.call(ctx, l.redisKey(key), 1, OpPeek)
}

// Refund gives back n units that earlier calls on key consumed, for work that
// turned out not to count (a login attempt reserved before the password check
// that then succeeded, say). It never lifts a lockout and never leaves more
// than a fresh key has. The Result reports the state after the refund.
// Config.OnFailure does not apply: a failed Refund returns its error.
func (l *Limiter) Refund(ctx context.Context, key string, n int) (Result, error) {
	if n < 0 || n > l.maxCost {
		return Result{}, fmt.Errorf("ratelimit: %s: refund n = %d, must be between 0 and Burst (%d): %w", l.cfg.Name, n, l.maxCost, ErrInvalidCost)
	}
	rk := l.redisKey(key)
	if l.denied != nil {
		l.denied.forget(rk)
	}
	return l.call(ctx, rk, n, OpRefund)
}

// Reset deletes key's state, lockout included: the key is fresh again.
func (l *Limiter) Reset(ctx context.Context, key string) error {
	rk := l.redisKey(key)
	if l.denied != nil {
		l.denied.forget(rk)
	}
	ctx, cancel := l.deadline(ctx, time.Now())
	defer cancel()
	_, _, err := l.reset.run(ctx, l.client, rk)
	if err != nil {
		return fmt.Errorf("ratelimit: %s: reset: %w", l.cfg.Name, err)
	}
	return nil
}

// Lock locks key for d, rounded up to the millisecond, replacing its state and
// any lock: every call is denied until the lock ends, with RetryAfter set to
// the rest of it, and the key is fresh afterwards. It serves operator bans and
// lockouts whose length the caller computes (escalating lockouts). d must be
// between 1µs and 100 years.
func (l *Limiter) Lock(ctx context.Context, key string, d time.Duration) error {
	if d < time.Microsecond || d > maxSpan {
		return fmt.Errorf("ratelimit: %s: lock duration %v, must be between 1µs and %v: %w", l.cfg.Name, d, maxSpan, ErrInvalidConfig)
	}
	rk := l.redisKey(key)
	if l.denied != nil {
		l.denied.forget(rk)
	}
	ctx, cancel := l.deadline(ctx, time.Now())
	defer cancel()
	if _, _, err := l.lock.run(ctx, l.client, rk, strconv.FormatInt(ceilMillis(d), 10)); err != nil {
		return fmt.Errorf("ratelimit: %s: lock: %w", l.cfg.Name, err)
	}
	return nil
}

// Wait is shorthand for WaitN(ctx, key, 1).
func (l *Limiter) Wait(ctx context.Context, key string) error {
	return l.WaitN(ctx, key, 1)
}

// WaitN blocks until n events are admitted for key, or ctx ends. Like
// golang.org/x/time/rate, it gives up at once with ErrWouldExceedDeadline when
// ctx's deadline comes before the time the call would need. For LeakyBucket it
// also waits Result.Delay after admission, so waiters leave evenly spaced.
// Other callers may take the budget while WaitN sleeps; it then tries again.
func (l *Limiter) WaitN(ctx context.Context, key string, n int) error {
	for {
		r, err := l.AllowN(ctx, key, n)
		if err != nil {
			return err
		}
		d := r.RetryAfter
		if r.Allowed {
			if r.Delay <= 0 {
				return nil
			}
			d = r.Delay
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
			if r.Allowed {
				return nil // admitted; the deadline only cuts the pacing delay short
			}
			return fmt.Errorf("ratelimit: %s: WaitN(n=%d) needs %v: %w", l.cfg.Name, n, d, ErrWouldExceedDeadline)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		if r.Allowed {
			return nil
		}
	}
}

// modeArg is the scripts' mode argument for each Op.
var modeArg = [...]string{OpAllow: "", OpPeek: "p", OpRefund: "r"}

// call runs the algorithm's script on the Redis key rk (see redisKey).
func (l *Limiter) call(ctx context.Context, rk string, n int, op Op) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	start := time.Now()
	rctx, cancel := l.deadline(ctx, start)
	reply, reloaded, err := l.script.run(rctx, l.client, rk, l.args(rk, n, op)...)
	var took time.Duration
	if l.cfg.Observer != nil {
		took = time.Since(start)
	}
	cancel()
	return l.finish(ctx, rk, n, op, reply, err, reloaded, took)
}

// noCancel is deadline's CancelFunc when it made no context.
func noCancel() {}

// deadline bounds a call that starts at now by Config.Timeout. A caller's
// context whose own deadline comes sooner serves as it is. Any other gets the
// deadline context shared by the calls of this epoch (see epochs), with the
// caller's values: a context, a timer and a channel per call would cost more
// client CPU than the rest of the limiter. The caller's cancellation then
// does not cut short a call in flight, which ends within Timeout anyway:
// go-redis watches a context's Done only while waiting for a pooled
// connection or dialing, never during I/O, which only its deadline bounds.
func (l *Limiter) deadline(ctx context.Context, now time.Time) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && dl.Sub(now) <= l.cfg.Timeout {
		return ctx, noCancel
	}
	if e := l.epochs.get(now); e != nil {
		if ctx == context.Background() || ctx == context.TODO() {
			return e, noCancel
		}
		return &withValues{Context: e, values: ctx}, noCancel
	}
	return context.WithDeadline(ctx, now.Add(l.cfg.Timeout))
}

// args are the script's ARGV for a call on the Redis key rk (see the
// contract atop each .lua).
func (l *Limiter) args(rk string, n int, op Op) []any {
	if n == 1 && op == OpAllow && l.pttl == nil {
		return l.allow1
	}
	a := make([]any, 0, 6)
	if l.cfg.Algorithm == SlidingWindow {
		a = append(a, l.unitArg, l.capArg, strconv.Itoa(n))
	} else {
		a = append(a, strconv.FormatInt(int64(n)*l.shape.unit, 10), l.capArg)
	}
	block := ""
	if op == OpAllow {
		block = l.block
	}
	if block != "" || op != OpAllow || l.pttl != nil {
		a = append(a, block, modeArg[op])
	}
	if l.pttl != nil {
		a = append(a, strconv.FormatInt(l.pttl(rk), 10))
	}
	return a
}

// finish decodes a script reply, applies the failure policy and tells the
// observer. ctx is the caller's context.
func (l *Limiter) finish(ctx context.Context, rk string, n int, op Op, reply any, err error, reloaded bool, took time.Duration) (Result, error) {
	var res Result
	if err == nil {
		res, err = l.shape.decode(reply, int64(n), op)
	}
	if err != nil {
		err = fmt.Errorf("ratelimit: %s: %w", l.cfg.Name, err)
		if op != OpRefund {
			res = l.onFailure(ctx, rk, n, op)
		}
	}
	l.observe(Event{
		Outcome:        res.Outcome,
		Op:             op,
		LockStarted:    res.LockStarted,
		ScriptReloaded: reloaded,
		Duration:       took,
		Err:            err,
	})
	if res.Outcome == OutcomeError {
		return Result{}, err
	}
	return res, nil
}

// observe fills in the limiter's name and algorithm and tells the Observer.
func (l *Limiter) observe(e Event) {
	if o := l.cfg.Observer; o != nil {
		e.Limiter, e.Algorithm = l.cfg.Name, l.cfg.Algorithm
		o.Observe(e)
	}
}

// onFailure is the Result the failure policy gives when Redis could not decide.
// A caller whose own context ended gets its error back whatever the policy.
func (l *Limiter) onFailure(ctx context.Context, rk string, n int, op Op) Result {
	if ctx.Err() != nil {
		return Result{}
	}
	switch l.cfg.OnFailure {
	case FailLocal:
		return l.local.decide(rk, n, op)
	case FailOpen:
		return Result{Allowed: true, Outcome: OutcomeFailedOpen}
	case FailClosed:
		return Result{Outcome: OutcomeFailedClosed, RetryAfter: l.cfg.Timeout}
	}
	return Result{}
}
