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

// Admin scripts, on an identity's keys (see Limiter.keys): KEYS[1] is the
// lock, KEYS[2...] the rates' state.
const (
	// resetLua deletes every key. Reply: the number of state keys deleted
	// (the lock is not counted: a lock alone tells nothing about the rates).
	resetLua = "redis.call('DEL', KEYS[1]) if #KEYS < 2 then return 0 end return redis.call('DEL', unpack(KEYS, 2))"
	// lockLua locks the identity for ARGV[1] ms (>= 1, hexadecimal as every
	// numeric argument). Reply: OK.
	lockLua = "return redis.call('SET', KEYS[1], '1', 'PX', string.format('%d', tonumber(ARGV[1], 16)))"
	// unlockLua deletes the lock only. Reply: 1 if there was one, else 0.
	unlockLua = "return redis.call('DEL', KEYS[1])"
	// existsLua reports the keys that exist. Reply: their number.
	existsLua = "return redis.call('EXISTS', unpack(KEYS))"
)

// Result is the answer to one call. A denial is a Result with Allowed false,
// not an error.
type Result struct {
	// Allowed reports whether the call was admitted (in shadow mode, also a
	// call that would have been denied: see Outcome).
	Allowed bool
	// Outcome says how the call was decided: it tells a lockout, shadow mode
	// and a failure policy apart from a plain admission or denial.
	Outcome Outcome
	// Limit is the rate that bound the decision: the one that denied the call
	// (the longest wait, when several did), or the one with the least left.
	// Remaining and RetryAfter are that rate's.
	Limit Rate
	// Remaining is how many more units a call could take right now, after this
	// one, rounded down. Zero while locked out.
	Remaining int
	// RetryAfter is 0 when admitted. Otherwise it is the time until the same
	// call fits in every rate if nothing else happened, rounded up to Redis's
	// millisecond (never early); while locked out, it is the rest of the lock.
	// In shadow mode a would-be denial keeps it, for information.
	RetryAfter time.Duration
	// ResetAfter is the time until the key's state is as fresh as an unused
	// key; while locked out, it is the rest of the lock (the state kept under
	// the lock may take longer).
	ResetAfter time.Duration
	// Delay is, for LeakyBucket, how long the work queued ahead of this call
	// takes to drain: callers that wait Delay before acting produce an evenly
	// spaced flow. It is zero for the other algorithms and for denied calls.
	Delay time.Duration
	// LockStarted reports whether this call's denial started the lockout (as
	// opposed to meeting one that an earlier call started).
	LockStarted bool
}

// Locked reports whether the call met a lockout (Config.BlockFor or Lock).
func (r Result) Locked() bool { return r.Outcome == OutcomeLockedOut }

// Limiter makes rate-limit decisions in Redis, atomically, so that any number
// of processes sharing one Redis share every limit. A Limiter is safe for
// concurrent use. Create it with New; With gives a view with other rates.
type Limiter struct {
	*core
	rates *rateSet // what each call is checked against
	local *rateSet // FailLocal's rates: rates divided among the instances
}

// core is what a Limiter and its views (With) share.
type core struct {
	client  redis.Scripter
	cfg     Config
	keyHead string // KeyPrefix + Name + ":{"
	script  *script
	reset   *script
	lock    *script
	unlock  *script
	exists  *script
	block   string        // BlockFor in ms for ARGV, or "" without lockout
	co      *coalescer    // the client's (coalescerFor), nil when Pipeline is off
	denied  *denyCache    // nil unless Config.DenyCache
	locals  *localLimiter // nil unless FailLocal
	epochs  epochs        // the calls' shared deadlines (see deadline)
	views   views         // the views With made
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
	err := cfg.normalize()
	var rs *rateSet
	if err == nil {
		rs, err = newRateSet(cfg.Algorithm, cfg.rates(), cfg.rateField)
	}
	if err := errors.Join(err, checkClientOptions(client)); err != nil {
		return nil, err
	}
	c := &core{
		client:  client,
		cfg:     cfg,
		keyHead: cfg.KeyPrefix + cfg.Name + ":{",
		script:  newScript(rs.alg.source()),
		reset:   newScript(resetLua),
		lock:    newScript(lockLua),
		unlock:  newScript(unlockLua),
		exists:  newScript(existsLua),
	}
	if cfg.BlockFor > 0 {
		c.block = strconv.FormatInt(ceilMillis(cfg.BlockFor), 16)
	}
	c.epochs.init(cfg.Timeout)
	l := &Limiter{core: c, rates: rs}
	rs.prepare(c.block)
	if cfg.OnFailure == FailLocal {
		c.locals = newLocalLimiter(cfg)
		l.local = c.locals.divide(rs)
	}
	if cfg.DenyCache > 0 {
		c.denied = newDenyCache(cfg.DenyCache)
	}
	if cfg.Pipeline > 0 {
		if c.co = coalescerFor(client); c.co != nil {
			c.co.raise(cfg.Pipeline)
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
// so, in every rate. key is any string, untrusted input included: long or
// unusual keys are hashed (see the README, key layout). n = 0 consumes nothing
// and writes nothing; n < 0 and n > the smallest Burst return ErrInvalidCost
// without calling Redis.
//
// A denial is a Result with Allowed false and err nil. err != nil means no
// decision could be made (Redis error, timeout, canceled context) and
// Config.OnFailure is FailError, or the caller's own context ended.
func (l *Limiter) AllowN(ctx context.Context, key string, n int) (Result, error) {
	if err := l.checkCost("cost", n); err != nil {
		return Result{}, err
	}
	keys := l.keys(key)
	if n == 0 {
		return l.call(ctx, keys, n, OpPeek)
	}
	if l.denied != nil {
		if r, ok := l.denied.get(keys[0], n, time.Now()); ok {
			r.Limit = l.rates.rates[0]
			r = l.shadow(r)
			l.observe(Event{Outcome: r.Outcome, Op: OpAllow, Cached: true})
			return r, nil
		}
	}
	var r Result
	var err error
	if l.co != nil {
		r, err = l.co.allow(ctx, l, keys, n)
	} else {
		r, err = l.call(ctx, keys, n, OpAllow)
	}
	// Shadow mode's would-be denials are not cached: every call goes to Redis.
	if l.denied != nil && err == nil && r.RetryAfter > 0 && (r.Outcome == OutcomeDenied || r.Outcome == OutcomeLockedOut) {
		l.denied.put(keys[0], n, time.Now().Add(r.RetryAfter), r.Outcome == OutcomeLockedOut)
	}
	return r, err
}

// checkCost returns ErrInvalidCost, naming what (cost, refund), unless
// 0 <= n <= the smallest Burst.
func (l *Limiter) checkCost(what string, n int) error {
	if n < 0 || n > l.rates.maxCost {
		return fmt.Errorf("ratelimit: %s: %s n = %d, must be between 0 and Burst (%d): %w", l.cfg.Name, what, n, l.rates.maxCost, ErrInvalidCost)
	}
	return nil
}

// Peek reports what Allow would answer now for key without consuming anything
// and without writing to Redis (it never starts a lockout).
func (l *Limiter) Peek(ctx context.Context, key string) (Result, error) {
	return l.call(ctx, l.keys(key), 1, OpPeek)
}

// Refund gives back n units that earlier calls on key consumed, in every
// rate, for work that turned out not to count (a login attempt reserved
// before the password check that then succeeded, say). It never lifts a
// lockout and never leaves more than a fresh key has. The Result reports the
// state after the refund. Config.OnFailure does not apply: a failed Refund
// returns its error.
func (l *Limiter) Refund(ctx context.Context, key string, n int) (Result, error) {
	if err := l.checkCost("refund", n); err != nil {
		return Result{}, err
	}
	keys := l.keys(key)
	if l.denied != nil {
		l.denied.forget(keys[0])
	}
	return l.call(ctx, keys, n, OpRefund)
}

// Reset deletes key's state in every rate of the limiter (or view) and its
// lock: the key is fresh again. found reports whether there was state in
// any rate (a lock alone does not count): false means the key was fresh
// already, or the limiter is not the one that wrote it (another Name,
// KeyPrefix, Algorithm or Period names other keys).
func (l *Limiter) Reset(ctx context.Context, key string) (found bool, err error) {
	n, err := l.admin(ctx, "reset", l.reset, key, false)
	return n > 0, err
}

// Unlock lifts key's lockout (Config.BlockFor or Lock) and leaves its state
// as it is. found reports whether there was a lock.
func (l *Limiter) Unlock(ctx context.Context, key string) (found bool, err error) {
	n, err := l.admin(ctx, "unlock", l.unlock, key, true)
	return n > 0, err
}

// Exists reports whether Redis holds any state or lock for key in this
// limiter (or view): a key that was never used, or that has become fresh
// again and expired, has none.
func (l *Limiter) Exists(ctx context.Context, key string) (bool, error) {
	n, err := l.admin(ctx, "exists", l.exists, key, false)
	return n > 0, err
}

// admin runs an admin script on key's keys (only its lock when lockOnly)
// and returns its integer reply. Any script but exists changes the key, so
// the key leaves the deny cache.
func (l *Limiter) admin(ctx context.Context, what string, s *script, key string, lockOnly bool, args ...any) (int64, error) {
	keys := l.keys(key)
	if l.denied != nil && s != l.exists {
		l.denied.forget(keys[0])
	}
	if lockOnly {
		keys = keys[:1]
	}
	ctx, cancel := l.deadline(ctx, time.Now())
	defer cancel()
	reply, _, err := s.run(ctx, l.client, keys, args...)
	if err != nil {
		return 0, fmt.Errorf("ratelimit: %s: %s: %w", l.cfg.Name, what, err)
	}
	n, _ := reply.(int64)
	return n, nil
}

// Lock locks key for d, rounded up to the millisecond, replacing any lock:
// every call is denied until the lock ends, with RetryAfter set to the rest
// of it. The state under the lock is kept: it refills as usual, and after
// the lock the key has what it would have had without it (a lock never
// raises what a key is admitted). It serves operator bans and lockouts whose
// length the caller computes (escalating lockouts). d must be between 1µs
// and 100 years.
func (l *Limiter) Lock(ctx context.Context, key string, d time.Duration) error {
	if d < time.Microsecond || d > maxSpan {
		return fmt.Errorf("ratelimit: %s: lock duration %v, must be between 1µs and %v: %w", l.cfg.Name, d, maxSpan, ErrInvalidConfig)
	}
	_, err := l.admin(ctx, "lock", l.lock, key, true, strconv.FormatInt(ceilMillis(d), 16))
	return err
}

// Wait is shorthand for WaitN(ctx, key, 1).
func (l *Limiter) Wait(ctx context.Context, key string) error {
	return l.WaitN(ctx, key, 1)
}

// WaitN blocks until n events are admitted for key, or ctx ends. Like
// golang.org/x/time/rate, it gives up at once with ErrWouldExceedDeadline when
// ctx's deadline comes before the time the call would need. For LeakyBucket it
// also waits Result.Delay after admission, so waiters leave evenly spaced.
// Other callers may take the budget while WaitN sleeps; it then tries again,
// never sooner than 1ms later (Redis's clock step), so it never spins.
func (l *Limiter) WaitN(ctx context.Context, key string, n int) error {
	for {
		r, err := l.AllowN(ctx, key, n)
		if err != nil {
			return err
		}
		d := max(r.RetryAfter, time.Millisecond)
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

// call runs the algorithm's script on an identity's keys (see keys).
func (l *Limiter) call(ctx context.Context, keys []string, n int, op Op) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	start := time.Now()
	rctx, cancel := l.deadline(ctx, start)
	reply, reloaded, err := l.script.run(rctx, l.client, keys, l.args(n, op)...)
	var took time.Duration
	if l.cfg.Observer != nil {
		took = time.Since(start)
	}
	cancel()
	return l.finish(ctx, keys, n, op, reply, err, reloaded, took)
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

// args are the script's ARGV for a call (see the contract atop each .lua).
func (l *Limiter) args(n int, op Op) []any {
	if n == 1 && op == OpAllow {
		return l.rates.allow1
	}
	block := ""
	if op == OpAllow {
		block = l.block
	}
	a := make([]any, 0, 3+len(l.rates.args))
	a = append(a, modeArg[op], strconv.FormatInt(int64(n), 16), block)
	return append(a, l.rates.args...)
}

// finish decodes a script reply, applies shadow mode and the failure policy,
// and tells the observer. ctx is the caller's context.
func (l *Limiter) finish(ctx context.Context, keys []string, n int, op Op, reply any, err error, reloaded bool, took time.Duration) (Result, error) {
	var res Result
	if err == nil {
		res, err = l.rates.decode(reply, int64(n), op)
	}
	if err != nil {
		err = fmt.Errorf("ratelimit: %s: %w", l.cfg.Name, err)
		if op != OpRefund {
			res = l.onFailure(ctx, keys, n, op)
		}
	} else if op == OpAllow {
		res = l.shadow(res)
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

// shadow turns a denial into an admission marked OutcomeShadowDenied when
// Config.Shadow is set.
func (l *Limiter) shadow(r Result) Result {
	if l.cfg.Shadow && (r.Outcome == OutcomeDenied || r.Outcome == OutcomeLockedOut) {
		r.Allowed, r.Outcome = true, OutcomeShadowDenied
	}
	return r
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
func (l *Limiter) onFailure(ctx context.Context, keys []string, n int, op Op) Result {
	if ctx.Err() != nil {
		return Result{}
	}
	switch l.cfg.OnFailure {
	case FailLocal:
		return l.locals.decide(l.local, keys[1], n, op)
	case FailOpen:
		return Result{Allowed: true, Outcome: OutcomeFailedOpen, Limit: l.rates.rates[0]}
	case FailClosed:
		return Result{Outcome: OutcomeFailedClosed, RetryAfter: l.cfg.Timeout, Limit: l.rates.rates[0]}
	}
	return Result{}
}
