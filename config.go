package ratelimit

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Algorithm selects how a Limiter counts. The zero value is TokenBucket.
type Algorithm uint8

// Algorithms. Each is one Lua script at the module root with the same name.
const (
	// TokenBucket holds up to Burst tokens and refills them continuously at Limit
	// per Period. AllowN admits iff at least n tokens are left; a denied call
	// changes nothing. Script: tokenbucket.lua.
	TokenBucket Algorithm = iota
	// LeakyBucket is a meter and queue like nginx limit_req: the level drains at
	// Limit per Period, and a call is admitted iff level + n fits in Burst.
	// Result.Delay is how long the work queued ahead of the call takes to drain;
	// callers that wait Delay before acting produce an evenly spaced flow.
	// Script: leakybucket.lua.
	LeakyBucket
	// SlidingWindow admits at most Limit events per rolling Period, estimated from
	// two adjacent fixed windows with the previous one weighted by how much of it
	// still overlaps the rolling window. O(1) state per key. Burst must be zero
	// or Limit. Script: slidingwindow.lua.
	SlidingWindow
)

var algorithmNames = [...]string{"token_bucket", "leaky_bucket", "sliding_window"}

// String returns the algorithm's name in snake case, e.g. "token_bucket".
func (a Algorithm) String() string {
	if int(a) < len(algorithmNames) {
		return algorithmNames[a]
	}
	return fmt.Sprintf("Algorithm(%d)", uint8(a))
}

// FailurePolicy says what a Limiter answers when Redis cannot decide (an error,
// a timeout, an unexpected reply). The zero value is FailError.
type FailurePolicy uint8

// Failure policies.
const (
	// FailError returns the error and no decision; the caller chooses.
	FailError FailurePolicy = iota
	// FailOpen admits the call (Result.Outcome == OutcomeFailedOpen) and returns no error.
	FailOpen
	// FailClosed denies the call (Result.Outcome == OutcomeFailedClosed) and returns
	// no error. Result.RetryAfter is Config.Timeout, so clients back off a little.
	FailClosed
	// FailLocal decides in this process (Result.Outcome == OutcomeFailedLocal)
	// with the same algorithm, Limit and Burst divided by Config.LocalInstances,
	// on this host's clock, and returns no error. State is per process and
	// starts fresh: it keeps the total near the limit while Redis is away, not
	// exactly at it.
	FailLocal
)

var policyNames = [...]string{"error", "open", "closed", "local"}

// String returns the policy's name: "error", "open", "closed" or "local".
func (p FailurePolicy) String() string {
	if int(p) < len(policyNames) {
		return policyNames[p]
	}
	return fmt.Sprintf("FailurePolicy(%d)", uint8(p))
}

// Defaults for zero Config fields.
const (
	// DefaultKeyPrefix is the KeyPrefix used when Config.KeyPrefix is empty.
	DefaultKeyPrefix = "rl:"
	// DefaultTimeout is the per-call deadline used when Config.Timeout is zero.
	DefaultTimeout = 500 * time.Millisecond
	// DefaultLocalKeys is the number of keys FailLocal keeps when
	// Config.LocalKeys is zero.
	DefaultLocalKeys = 10_000
	// DefaultPipeline is the number of pipelines in flight per client when
	// Config.Pipeline is zero (see Config.Pipeline).
	DefaultPipeline = 4
)

// Limits on Config values, so that every number a script handles stays an exact
// integer in a Lua double (2^53) and every key stays short.
const (
	maxSpan      = 100 * 365 * 24 * time.Hour // Period, BlockFor, Burst×interval
	maxPrefixLen = 64
	maxNameLen   = 64
	// maxWindowLimit keeps SlidingWindow's counts below windowBase (2^26), so
	// that prev*2^26 + cur stays below 2^52.
	maxWindowLimit = 47_453_131
)

// Config configures a Limiter. The zero value is not valid: Name, Limit and
// Period are required. New copies the Config; changing it later has no effect.
type Config struct {
	// Name identifies the limiter in Redis keys and in Events (metrics). It must
	// match [a-z0-9][a-z0-9_.-]* and be at most 64 bytes. Required.
	Name string

	// Algorithm selects the counting algorithm. The zero value is TokenBucket.
	Algorithm Algorithm

	// Limit and Period set the sustained rate: Limit events per Period. Both are
	// required and must be positive; Period/Limit must be at least 1µs. The
	// buckets space events Period/Limit apart, rounded up to the microsecond, so
	// the rate is never faster than configured. SlidingWindow needs a whole
	// number of milliseconds for Period.
	//
	// The scripts read time from Redis's millisecond clock (a key's expiry), so
	// every decision is exact on that clock and may be up to 1ms late on a
	// finer one: never early, never more admissions than the limit.
	Limit  int
	Period time.Duration

	// Burst is the capacity: how many events can be admitted at once after a
	// quiet spell (TokenBucket, LeakyBucket). If zero, Burst is Limit. A
	// bucket must hold at least 1ms of events (Burst × Period/Limit >= 1ms),
	// since time moves in whole milliseconds. For SlidingWindow it must be
	// zero or equal to Limit.
	Burst int

	// Rates are more rates that every call must fit in, beside Limit per
	// Period: 10 per second AND 10,000 per day, say. A call is admitted iff it
	// fits in every rate, and is then charged to every rate; a call that one
	// rate denies is charged to none. One script, one round trip, atomic (all
	// of an identity's keys share one hash tag). Each rate is checked like
	// Limit, Period and Burst (Burst 0 means its Limit); no two rates may
	// have the same Period; at most 8 rates in all.
	Rates []Rate

	// BlockFor, if positive, locks a key for BlockFor, rounded up to the
	// millisecond, after a denied call: every call on the key is denied until
	// the lock ends, with RetryAfter set to the rest of the lock. The lock is
	// a key of its own: the state under it is kept and refills as usual, so a
	// lock never raises what a key is admitted afterwards, and a call on a
	// locked key writes nothing. Zero means no lockout. Peek never starts a
	// lock.
	BlockFor time.Duration

	// Shadow turns enforcement off, to roll out a new limit: every call is
	// decided and charged exactly as it would be (lockouts included), but a
	// call that would be denied is admitted with Outcome OutcomeShadowDenied,
	// which Observers, metrics and the middleware see. Result.RetryAfter and
	// Remaining still say what the limit would have answered.
	Shadow bool

	// KeyPrefix starts every Redis key of this limiter. If empty, it is
	// DefaultKeyPrefix ("rl:"). It may not contain '{' or '}' (the hash tag
	// belongs to the user key) and is at most 64 bytes.
	KeyPrefix string

	// Timeout bounds every call's time in Redis, on top of the caller's context.
	// If zero, it is DefaultTimeout (500ms). It is honoured only by clients with
	// ContextTimeoutEnabled (New checks go-redis clients). A call's deadline is
	// the caller's when that comes sooner; otherwise it is taken from a context
	// the limiter shares among the calls of each Timeout/64, so it falls at
	// most Timeout/64 before Timeout. Canceling the caller's context stops a
	// call from starting, not one in flight, which ends within Timeout (go-redis
	// itself never interrupts I/O on cancellation; it only stops waiting for a
	// pooled connection or a dial).
	Timeout time.Duration

	// OnFailure says what to answer when Redis cannot decide. The zero value,
	// FailError, returns the error.
	OnFailure FailurePolicy

	// LocalInstances is, for FailLocal, how many app servers share the limit:
	// each decides locally with Limit/LocalInstances and Burst/LocalInstances
	// (at least 1). Required with FailLocal.
	LocalInstances int

	// LocalKeys bounds the keys FailLocal keeps in memory (least recently used
	// dropped first). If zero, it is DefaultLocalKeys (10,000).
	LocalKeys int

	// Observer, if not nil, receives an Event for every decision.
	Observer Observer

	// Pipeline is how many pipelines of concurrent Allow and AllowN calls may
	// be in flight at once. Calls are coalesced: a call that finds a free slot
	// and nobody waiting goes straight out as one script (a lone caller pays
	// nothing), and calls made while the slots are busy wait and go out
	// together as one pipeline when a slot frees, so that under load one round
	// trip carries many decisions. Every limiter on one client value shares
	// its pipelines (the middleware's limiters, the login guard's scopes, the
	// API limiter), with as many slots as the largest Pipeline among them.
	// Each call still ends within Timeout and is charged at most once. Peek,
	// Refund, Lock and Reset are sent on their own.
	//
	// If zero, it is DefaultPipeline. A negative value turns coalescing off
	// for this limiter (one round trip per call, as AllowN is written). It
	// needs a client with a Pipeline method (every go-redis client); otherwise
	// it is ignored.
	Pipeline int

	// DenyCache, if positive, turns on a local deny cache of at most DenyCache
	// keys (least recently used dropped first): a denial or lockout Redis
	// returned with RetryAfter d is remembered for d, and calls on that key
	// are denied locally, with no Redis round trip (Event.Cached), so a flood
	// on a denied key costs Redis nearly nothing. A denial answers only calls
	// at least as costly; a lockout answers every call. Staleness: a Reset or
	// Refund from another instance is seen here at most d later; this
	// instance's own Reset, Refund and Lock drop the key at once. Zero means off.
	DenyCache int
}

func configError(format string, args ...any) error {
	return fmt.Errorf("ratelimit: "+format+": %w", append(args, ErrInvalidConfig)...)
}

// normalize fills in defaults and checks every field, returning all problems at once.
func (c *Config) normalize() error {
	var errs []error
	if err := ValidName("Config.Name", c.Name); err != nil {
		errs = append(errs, err)
	}
	if int(c.Algorithm) >= len(algorithmNames) {
		errs = append(errs, configError("Config.Algorithm = %d, must be TokenBucket, LeakyBucket or SlidingWindow", uint8(c.Algorithm)))
	}
	main := Rate{Limit: c.Limit, Period: c.Period, Burst: c.Burst}
	errs = append(errs, main.check(c.Algorithm, "Config")...)
	c.Burst = main.Burst
	// check fills defaults in: on a copy, so the caller's slice (shared by
	// goroutines building limiters at once, say) is never written.
	c.Rates = slices.Clone(c.Rates)
	for i := range c.Rates {
		errs = append(errs, c.Rates[i].check(c.Algorithm, c.rateField(i+1))...)
	}
	switch {
	case c.BlockFor < 0:
		errs = append(errs, configError("Config.BlockFor = %v, must be >= 0", c.BlockFor))
	case c.BlockFor > maxSpan:
		errs = append(errs, configError("Config.BlockFor = %v, must be <= %v", c.BlockFor, maxSpan))
	case c.BlockFor > 0 && c.BlockFor < time.Microsecond:
		errs = append(errs, configError("Config.BlockFor = %v, must be 0 or at least 1µs", c.BlockFor))
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultKeyPrefix
	} else if len(c.KeyPrefix) > maxPrefixLen || strings.ContainsAny(c.KeyPrefix, "{}") {
		errs = append(errs, configError("Config.KeyPrefix = %q, must be at most %d bytes without '{' or '}'", c.KeyPrefix, maxPrefixLen))
	}
	switch {
	case c.Timeout < 0:
		errs = append(errs, configError("Config.Timeout = %v, must be >= 0 (0 means %v)", c.Timeout, DefaultTimeout))
	case c.Timeout == 0:
		c.Timeout = DefaultTimeout
	}
	if c.DenyCache < 0 {
		errs = append(errs, configError("Config.DenyCache = %d, must be >= 0 (0 means off)", c.DenyCache))
	}
	if c.Pipeline == 0 {
		c.Pipeline = DefaultPipeline
	}
	if c.OnFailure > FailLocal {
		errs = append(errs, configError("Config.OnFailure = %d, must be FailError, FailOpen, FailClosed or FailLocal", uint8(c.OnFailure)))
	}
	if c.OnFailure == FailLocal && c.LocalInstances < 1 {
		errs = append(errs, configError("Config.LocalInstances = %d, must be >= 1 with FailLocal (the number of app servers sharing the limit)", c.LocalInstances))
	}
	if c.LocalInstances < 0 || c.LocalKeys < 0 {
		errs = append(errs, configError("Config.LocalInstances = %d and Config.LocalKeys = %d, must be >= 0", c.LocalInstances, c.LocalKeys))
	}
	return errors.Join(errs...)
}

// rates is the Config's rate set: its own rate, then Rates.
func (c *Config) rates() []Rate {
	return append([]Rate{{Limit: c.Limit, Period: c.Period, Burst: c.Burst}}, c.Rates...)
}

// rateField names rate i of rates() in messages.
func (c *Config) rateField(i int) string {
	if i == 0 {
		return "Config"
	}
	return fmt.Sprintf("Config.Rates[%d]", i-1)
}

// ValidName returns nil if name is a valid Config.Name (it matches
// [a-z0-9][a-z0-9_.-]* and is at most 64 bytes), and otherwise an error that
// says so, naming field, and wraps ErrInvalidConfig. Packages that build
// limiter names from a name of their own (login) check it with ValidName.
func ValidName(field, name string) error {
	if name == "" {
		return configError("%s is empty, must match [a-z0-9][a-z0-9_.-]*", field)
	}
	if !validName(name) {
		return configError("%s = %q, must match [a-z0-9][a-z0-9_.-]* and be at most %d bytes", field, name, maxNameLen)
	}
	return nil
}

func validName(s string) bool {
	if len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case b >= 'a' && b <= 'z', b >= '0' && b <= '9':
		case i > 0 && (b == '_' || b == '.' || b == '-'):
		default:
			return false
		}
	}
	return true
}

// intervalMicros is Period/Limit in whole microseconds, rounded up.
func intervalMicros(limit int, period time.Duration) int64 {
	p := int64(period / time.Microsecond)
	if period%time.Microsecond != 0 {
		p++
	}
	return (p + int64(limit) - 1) / int64(limit)
}
