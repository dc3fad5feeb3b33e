package login

import (
	"errors"
	"fmt"
	"time"

	"github.com/seed68425060/ratelimit"
)

// Limit is the budget of one of the Guard's three scopes (username, client IP,
// (username, IP) pair). Only attempts that did not succeed count against it:
// every attempt takes one unit before the password is checked, and a success
// gives it back.
//
// The budget is a token bucket: up to Limit attempts at once, refilled at
// Limit per Period. The first attempt refused for lack of budget starts a
// lockout of BlockFor, during which every attempt in the scope is refused.
// The budget is kept under the lockout and goes on refilling: when the
// lockout ends the scope has what it would have had without it, so a lockout
// never hands out attempts, and an attempt that finds the budget still spent
// starts the next lockout. With MaxBlockFor set, consecutive lockouts
// escalate (see Config.EscalationMemory).
//
// The zero Limit stands for the scope's default (DefaultUser, DefaultIP,
// DefaultPair). A non-zero Limit is used as given and must be valid.
type Limit struct {
	// Limit is how many failed (or unfinished) attempts the scope may have at
	// once; it must be at least 1.
	Limit int
	// Period is how long the bucket takes to refill from empty to Limit; it
	// must be positive.
	Period time.Duration
	// BlockFor is the length of the lockout that starts when an attempt is
	// refused because the budget is spent. Zero means no lockout: attempts are
	// refused only until one unit has refilled (Period/Limit).
	BlockFor time.Duration
	// MaxBlockFor, if greater than BlockFor, turns on escalation: the k-th
	// lockout of the scope within Config.EscalationMemory lasts
	// BlockFor × 2^(k-1), capped at MaxBlockFor. Zero (or a value <= BlockFor)
	// means every lockout lasts BlockFor. Requires BlockFor > 0.
	MaxBlockFor time.Duration
}

// Defaults for zero fields of Config. They follow OWASP and NIST SP 800-63B
// (see the package documentation for the arithmetic).
var (
	// DefaultUser is the per-username budget used when Config.User is zero:
	// 10 failures at once, refilled over 24 hours (one per 2.4 hours), then a
	// 15 minute lockout that doubles with each consecutive lockout up to 24
	// hours. An account under attack from any number of addresses sees at
	// most 10 failures at once and then the refill, at most 10 more a day,
	// however often its owner logs in (TestOwnerSuccessHandsNoGuesses
	// measured 16 in the first day with the owner logging in every 10
	// minutes): well within OWASP ASVS's 100 per hour and NIST SP 800-63B's
	// ceiling of 100 consecutive failures.
	DefaultUser = Limit{Limit: 10, Period: 24 * time.Hour, BlockFor: 15 * time.Minute, MaxBlockFor: 24 * time.Hour}
	// DefaultIP is the per-client budget used when Config.IP is zero: 100
	// failures at once, refilled over an hour, then a one hour lockout, not
	// escalated because one address may be a NAT or proxy shared by many
	// honest users. It slows password spraying (one password, many usernames)
	// from one address; OWASP warns it is not a primary defence.
	DefaultIP = Limit{Limit: 100, Period: time.Hour, BlockFor: time.Hour}
	// DefaultPair is the per-(username, IP) budget used when Config.Pair is
	// zero: 5 failures at once, refilled over 24 hours, then a 15 minute
	// lockout doubling up to 24 hours. It is the only account budget a known
	// pair (see Config.KnownFor) is held to: about 35 failures in the first
	// day and about 5 per day afterwards.
	DefaultPair = Limit{Limit: 5, Period: 24 * time.Hour, BlockFor: 15 * time.Minute, MaxBlockFor: 24 * time.Hour}
)

const (
	// DefaultName is the Name used when Config.Name is empty.
	DefaultName = "login"
	// DefaultEscalationMemory is how long lockouts are remembered for
	// escalation when Config.EscalationMemory is zero.
	DefaultEscalationMemory = 7 * 24 * time.Hour
	// DefaultKnownFor is how long a (username, IP) pair stays known after a
	// successful login when Config.KnownFor is zero.
	DefaultKnownFor = 30 * 24 * time.Hour

	maxNameLen = 64 - len(".strikes") // the longest limiter name suffix
	maxSpan    = 100 * 365 * 24 * time.Hour
	// maxStrikes bounds the strike counter; 2^40 × 1µs exceeds 100 years, so
	// any escalation has reached its cap long before.
	maxStrikes = 48
)

// Config configures a Guard. The zero value is valid: every zero field means
// the documented default. New copies the Config; changing it later has no
// effect.
type Config struct {
	// Name names the Guard's limiters in Redis keys and Events:
	// Name+".user", ".ip", ".pair", ".strikes" and ".known". It must match
	// [a-z0-9][a-z0-9_.-]* and be at most 56 bytes. If empty, it is "login".
	Name string

	// User is the budget per username, whatever the client: the primary
	// defence against guessing one account's password from many addresses.
	// If zero, it is DefaultUser.
	User Limit
	// IP is the budget per client key (an address, or an IPv6 /64 as the HTTP
	// helper builds it), whatever the username: it slows password spraying and
	// enumeration from one source. A success never clears it. If zero, it is
	// DefaultIP.
	IP Limit
	// Pair is the budget per (username, client key): it locks a guesser out of
	// one account from one address before the whole account is locked, and it
	// is the budget a known pair is held to. If zero, it is DefaultPair.
	Pair Limit

	// EscalationMemory is how long a lockout counts towards escalation (Limit.
	// MaxBlockFor): the k in BlockFor × 2^(k-1) is the number of lockouts of the
	// scope that started within the last EscalationMemory, this one included,
	// estimated by a sliding window. A success forgives the pair's lockouts,
	// not the username's or the IP's. If zero, it is DefaultEscalationMemory.
	EscalationMemory time.Duration

	// KnownFor is how long a (username, IP) pair stays known after a success
	// (each success, or Guard.Trust, restarts it). A known pair's attempts skip
	// the per-username budget, so the owner of an account under attack from
	// other addresses can still log in from an address it used before; they
	// are still held to the Pair and IP budgets. If zero, it is DefaultKnownFor
	// (30 days); if negative, no pair is ever known.
	KnownFor time.Duration

	// Secret, if not empty, keys the HMAC-SHA256 that turns usernames and
	// client keys into Redis keys, so that someone who reads Redis can neither
	// recover nor test a username or address. If empty, keys are plain
	// SHA-256 digests: not readable, but a reader can test guesses.
	Secret []byte

	// KeyPrefix starts every Redis key; see ratelimit.Config.KeyPrefix. If
	// empty, it is ratelimit.DefaultKeyPrefix.
	KeyPrefix string

	// Timeout bounds each Redis call; see ratelimit.Config.Timeout. If zero,
	// it is ratelimit.DefaultTimeout.
	Timeout time.Duration

	// OnFailure says what Begin answers when Redis cannot decide, in the
	// root's vocabulary: ratelimit.FailClosed (the default: the zero value,
	// ratelimit.FailError, means FailClosed here) refuses the attempt;
	// ratelimit.FailOpen admits it. Fail open only if an unprotected login is
	// acceptable: an attacker who can make Redis fail or slow (load, a full
	// memory, a network fault) would get unlimited guesses for as long as it
	// lasts. ratelimit.FailLocal is not offered: a login's budgets must be
	// shared by every server to mean anything.
	OnFailure ratelimit.FailurePolicy

	// Normalize returns the application's canonical form of a username: two
	// usernames that Normalize maps alike are one account. It decides what a
	// success credits: a pair becomes known, and is forgiven, only for the
	// account that logged in, so an attacker who owns "ALICE" in an
	// application where "ALICE" and "alice" are different accounts gains
	// nothing for "alice". The per-username budget is kept under the coarser
	// NormalizeUsername of Normalize's result (stricter, and never credited by
	// a success). If nil, it is NormalizeUsername: right for applications
	// whose usernames compare case-insensitively (most, e-mail addresses
	// included). Set it to your own canonical form when yours are case
	// sensitive (strings.TrimSpace, or the identity) or fold differently
	// (strings.ToLower, PRECIS). It must be deterministic and fast.
	Normalize func(string) string

	// Observer, if not nil, receives the Events of every limiter of the Guard
	// (their Limiter field tells them apart). Events never contain keys.
	Observer ratelimit.Observer
}

func configError(format string, args ...any) error {
	return fmt.Errorf("login: "+format+": %w", append(args, ratelimit.ErrInvalidConfig)...)
}

// normalize fills in defaults and checks every field, returning all problems at once.
func (c *Config) normalize() error {
	var errs []error
	if c.Name == "" {
		c.Name = DefaultName
	} else if err := ratelimit.ValidName("Config.Name", c.Name); err != nil {
		errs = append(errs, fmt.Errorf("login: %w", err))
	} else if len(c.Name) > maxNameLen {
		errs = append(errs, configError("Config.Name = %q, must be at most %d bytes (the limiters add %q)", c.Name, maxNameLen, ".strikes"))
	}
	switch c.OnFailure {
	case ratelimit.FailError:
		c.OnFailure = ratelimit.FailClosed
	case ratelimit.FailOpen, ratelimit.FailClosed:
	default:
		errs = append(errs, configError("Config.OnFailure = %v, must be FailClosed (the default) or FailOpen", c.OnFailure))
	}
	if c.Normalize == nil {
		c.Normalize = NormalizeUsername
	}
	for _, s := range []struct {
		field string
		l     *Limit
		def   Limit
	}{{"User", &c.User, DefaultUser}, {"IP", &c.IP, DefaultIP}, {"Pair", &c.Pair, DefaultPair}} {
		if *s.l == (Limit{}) {
			*s.l = s.def
			continue
		}
		errs = append(errs, s.l.check(s.field)...)
	}
	switch {
	case c.EscalationMemory == 0:
		c.EscalationMemory = DefaultEscalationMemory
	case c.EscalationMemory < time.Second || c.EscalationMemory > maxSpan:
		errs = append(errs, configError("Config.EscalationMemory = %v, must be 0 (default %v) or between 1s and %v", c.EscalationMemory, DefaultEscalationMemory, maxSpan))
	}
	switch {
	case c.KnownFor == 0:
		c.KnownFor = DefaultKnownFor
	case c.KnownFor > maxSpan || (c.KnownFor > 0 && c.KnownFor < time.Millisecond):
		errs = append(errs, configError("Config.KnownFor = %v, must be negative (off), 0 (default %v) or between 1ms and %v", c.KnownFor, DefaultKnownFor, maxSpan))
	}
	if c.Timeout < 0 {
		errs = append(errs, configError("Config.Timeout = %v, must be >= 0 (0 means %v)", c.Timeout, ratelimit.DefaultTimeout))
	}
	return errors.Join(errs...)
}

func (l Limit) check(field string) []error {
	var errs []error
	if l.Limit < 1 {
		errs = append(errs, configError("Config.%s.Limit = %d, must be >= 1", field, l.Limit))
	}
	if l.Period <= 0 || l.Period > maxSpan {
		errs = append(errs, configError("Config.%s.Period = %v, must be between 1µs and %v", field, l.Period, maxSpan))
	}
	if l.BlockFor < 0 || l.BlockFor > maxSpan {
		errs = append(errs, configError("Config.%s.BlockFor = %v, must be between 0 (no lockout) and %v", field, l.BlockFor, maxSpan))
	}
	switch {
	case l.MaxBlockFor < 0 || l.MaxBlockFor > maxSpan:
		errs = append(errs, configError("Config.%s.MaxBlockFor = %v, must be between 0 (no escalation) and %v", field, l.MaxBlockFor, maxSpan))
	case l.MaxBlockFor > 0 && l.BlockFor <= 0:
		errs = append(errs, configError("Config.%s.MaxBlockFor = %v needs Config.%s.BlockFor > 0", field, l.MaxBlockFor, field))
	}
	return errs
}

// escalates reports whether lockouts of the scope grow.
func (l Limit) escalates() bool { return l.BlockFor > 0 && l.MaxBlockFor > l.BlockFor }

// lockFor is the length of the k-th consecutive lockout (k >= 1).
func (l Limit) lockFor(k int) time.Duration {
	d := l.BlockFor
	for i := 1; i < k && d < l.MaxBlockFor; i++ {
		d *= 2
	}
	return min(d, max(l.MaxBlockFor, l.BlockFor))
}
