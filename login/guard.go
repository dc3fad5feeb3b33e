package login

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit"
)

// Scope names one of a Guard's budgets.
type Scope uint8

// Scopes. The zero value, ScopeNone, means no budget refused the attempt.
const (
	// ScopeNone means the attempt was not refused.
	ScopeNone Scope = iota
	// ScopeIP is the budget per client key (Config.IP).
	ScopeIP
	// ScopeUser is the budget per username (Config.User).
	ScopeUser
	// ScopePair is the budget per (username, client key) (Config.Pair).
	ScopePair
)

var scopeNames = [...]string{"none", "ip", "user", "pair"}

// String returns "none", "ip", "user" or "pair".
func (s Scope) String() string {
	if int(s) < len(scopeNames) {
		return scopeNames[s]
	}
	return fmt.Sprintf("Scope(%d)", uint8(s))
}

// Decision is Begin's answer. A refusal is a Decision with Allowed false, not
// an error.
type Decision struct {
	// Allowed reports whether the attempt may go on to verify the password.
	Allowed bool
	// Scope is the budget that refused the attempt; ScopeNone when Allowed.
	Scope Scope
	// Outcome is how the deciding limiter answered: OutcomeAllowed or
	// OutcomeFailedOpen when Allowed; otherwise OutcomeDenied (budget spent, no
	// lockout configured), OutcomeLockedOut or OutcomeFailedClosed (Redis could
	// not decide).
	Outcome ratelimit.Outcome
	// RetryAfter is 0 when Allowed; otherwise the time until an attempt in the
	// refusing scope could be allowed if nothing else happened, rounded up (the
	// rest of the lockout, escalation included).
	RetryAfter time.Duration
	// Known reports whether the (username, IP) pair was known (Config.KnownFor),
	// so the per-username budget was not applied.
	Known bool
}

// Guard protects a login against password guessing with three budgets, per
// username, per client IP and per (username, IP), kept in Redis so that every
// server behind a load balancer shares them. A Guard is safe for concurrent
// use. Create it with New.
type Guard struct {
	cfg     Config
	ip      *ratelimit.Limiter
	user    *ratelimit.Limiter
	pair    *ratelimit.Limiter
	strikes *ratelimit.Limiter // nil: no scope escalates
	known   *ratelimit.Limiter // nil: Config.KnownFor < 0
}

// New returns a Guard that keeps its state in Redis through client, under
// five core limiters named Name+".ip", ".user", ".pair" (the budgets),
// ".strikes" (lockouts remembered for escalation) and ".known" (pairs that
// logged in). client must meet ratelimit.New's requirements (for go-redis:
// MaxRetries: -1 and ContextTimeoutEnabled: true).
//
// New checks cfg and returns every problem at once, each naming the field and
// wrapping ratelimit.ErrInvalidConfig. New does not contact Redis.
func New(client redis.Scripter, cfg Config) (*Guard, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	policy := cfg.OnFailure
	core := func(suffix string, alg ratelimit.Algorithm, l Limit, onFailure ratelimit.FailurePolicy) ratelimit.Config {
		return ratelimit.Config{
			Name:      cfg.Name + "." + suffix,
			Algorithm: alg,
			Limit:     l.Limit,
			Period:    l.Period,
			BlockFor:  l.BlockFor,
			KeyPrefix: cfg.KeyPrefix,
			Timeout:   cfg.Timeout,
			OnFailure: onFailure,
			Observer:  cfg.Observer,
		}
	}
	g := &Guard{cfg: cfg}
	var errs []error
	seen := map[string]bool{}
	newLimiter := func(c ratelimit.Config) *ratelimit.Limiter {
		l, err := ratelimit.New(client, c)
		// The limiters share the client and most settings: report each
		// problem once, not once per limiter.
		for _, e := range unjoin(err) {
			if !seen[e.Error()] {
				seen[e.Error()] = true
				errs = append(errs, fmt.Errorf("login: %w", e))
			}
		}
		return l
	}
	g.ip = newLimiter(core("ip", ratelimit.TokenBucket, cfg.IP, policy))
	g.user = newLimiter(core("user", ratelimit.TokenBucket, cfg.User, policy))
	g.pair = newLimiter(core("pair", ratelimit.TokenBucket, cfg.Pair, policy))
	if cfg.IP.escalates() || cfg.User.escalates() || cfg.Pair.escalates() {
		// One strike per lockout; Remaining tells how many lockouts the
		// sliding window holds. Errors fall back to the base lockout.
		g.strikes = newLimiter(core("strikes", ratelimit.SlidingWindow,
			Limit{Limit: maxStrikes, Period: cfg.EscalationMemory}, ratelimit.FailError))
	}
	if cfg.KnownFor > 0 {
		// Only Lock (remember) and Peek (Result.Locked: known) are used; the
		// rate is irrelevant. Errors mean "not known".
		g.known = newLimiter(core("known", ratelimit.TokenBucket,
			Limit{Limit: 1, Period: cfg.KnownFor}, ratelimit.FailError))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return g, nil
}

// unjoin lists the errors errors.Join joined in err (err itself otherwise).
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// Config returns the Guard's configuration with defaults filled in.
func (g *Guard) Config() Config { return g.cfg }

// Begin starts a login attempt for username from the client key ip, before the
// password is verified, and takes one unit from each budget: the IP's, then
// the username's (unless the pair is known), then the pair's. If a budget
// refuses, Begin gives back the units it already took, returns a nil Attempt
// and a Decision saying which budget refused and for how long: the password
// must not be checked. Otherwise the caller verifies the password and reports
// the result with exactly one of the Attempt's methods; an Attempt never
// reported counts as a failure.
//
// Because units are taken before verification, N concurrent attempts can
// verify at most as many passwords as the smallest budget allows, however
// fast they arrive.
//
// username is any string, untrusted input included: it is normalised
// (Config.Normalize, then NormalizeUsername for the per-username budget) and
// hashed, never stored. Begin never asks
// whether the user exists: known and unknown usernames cost the same work and
// get the same answers. ip is the client key, an address or prefix as
// middleware.ClientIP.Key returns; it is hashed too.
//
// Begin ends within one Config.Timeout in all, however many Redis calls it
// makes (up to four, and the refunds of a refusal).
//
// err != nil means no decision could be made because ctx ended; a Redis
// failure gives a refusal with Outcome OutcomeFailedClosed (or, with
// Config.OnFailure FailOpen, an allowed Attempt) and no error, reported to
// the Observer.
func (g *Guard) Begin(ctx context.Context, username, ip string) (*Attempt, Decision, error) {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, g.timeout())
	defer cancel()
	a := g.attempt(username, ip)
	if g.known != nil {
		r, err := g.known.Peek(ctx, a.pairKey)
		if err != nil && parent.Err() != nil {
			return nil, Decision{}, parent.Err()
		}
		a.known = err == nil && r.Locked()
	}
	dec := Decision{Allowed: true, Outcome: ratelimit.OutcomeAllowed, Known: a.known}
	for _, s := range [...]Scope{ScopeIP, ScopeUser, ScopePair} {
		lim, key, l := g.scope(a, s)
		if s == ScopeUser && a.known {
			// Same number of round trips as for an unknown pair, nothing taken.
			if _, err := lim.Peek(ctx, key); err != nil && parent.Err() != nil {
				a.giveBack(context.WithoutCancel(ctx))
				return nil, Decision{}, parent.Err()
			}
			continue
		}
		r, err := lim.Allow(ctx, key)
		if err != nil && parent.Err() != nil {
			a.giveBack(ctx)
			return nil, Decision{}, parent.Err()
		}
		if err != nil {
			// Begin's own deadline (one Timeout for every call) passed: Redis
			// is too slow to decide, and the failure policy answers.
			if g.cfg.OnFailure == ratelimit.FailOpen {
				dec.Outcome = ratelimit.OutcomeFailedOpen
				continue
			}
			a.giveBack(ctx)
			return nil, Decision{Scope: s, Outcome: ratelimit.OutcomeFailedClosed, RetryAfter: g.timeout(), Known: a.known}, nil
		}
		if !r.Allowed {
			a.giveBack(ctx)
			d := Decision{Scope: s, Outcome: r.Outcome, RetryAfter: r.RetryAfter, Known: a.known}
			if l.escalates() && r.LockStarted {
				d.RetryAfter = g.escalate(ctx, s, lim, key, l)
			}
			return nil, d, nil
		}
		if r.Outcome == ratelimit.OutcomeFailedOpen {
			dec.Outcome = ratelimit.OutcomeFailedOpen
		}
		a.took[s] = true
	}
	return a, dec, nil
}

// timeout is Config.Timeout with its default.
func (g *Guard) timeout() time.Duration {
	if g.cfg.Timeout > 0 {
		return g.cfg.Timeout
	}
	return ratelimit.DefaultTimeout
}

// attempt is an Attempt's keys for username from ip: the per-username budget
// under the coarse fold of the account (NormalizeUsername of Normalize), the
// pair (and its being known) under the account itself.
func (g *Guard) attempt(username, ip string) *Attempt {
	account := g.cfg.Normalize(username)
	a := &Attempt{g: g, userKey: g.id('u', NormalizeUsername(account)), ipKey: g.id('i', ip)}
	a.pairKey = g.id('a', account) + ":" + a.ipKey
	return a
}

// Trust marks the pair (username, ip) as known for Config.KnownFor, as a
// successful login does: its attempts skip the per-username budget. Call it
// when the client proved who it is some other way (a password-reset link, a
// second factor), so the owner of an account under attack gets a way in. It
// does nothing when Config.KnownFor is negative.
func (g *Guard) Trust(ctx context.Context, username, ip string) error {
	if g.known == nil {
		return nil
	}
	return g.known.Lock(ctx, g.attempt(username, ip).pairKey, g.cfg.KnownFor)
}

// Unlock is the operator's unlock: it clears the username's budget, lockout
// and escalation history, and for each address in ips (as Begin receives them)
// the pair's. Pairs with addresses not given keep their state (they cannot be
// listed: keys are hashed), and so do the addresses' own budgets. found
// reports whether there was anything to clear: false means the username (and
// pairs) had no state, or the Guard's Name, KeyPrefix or Secret differ from
// the application's (its keys are not these).
func (g *Guard) Unlock(ctx context.Context, username string, ips ...string) (found bool, err error) {
	var errs []error
	reset := func(l *ratelimit.Limiter, key string) {
		f, err := l.Reset(ctx, key)
		found = found || f
		errs = append(errs, err)
	}
	a := g.attempt(username, "")
	reset(g.user, a.userKey)
	if g.strikes != nil {
		reset(g.strikes, scopeNames[ScopeUser]+":"+a.userKey)
	}
	for _, ip := range ips {
		pair := g.attempt(username, ip).pairKey
		reset(g.pair, pair)
		if g.strikes != nil {
			reset(g.strikes, scopeNames[ScopePair]+":"+pair)
		}
	}
	return found, errors.Join(errs...)
}

func (g *Guard) scope(a *Attempt, s Scope) (*ratelimit.Limiter, string, Limit) {
	switch s {
	case ScopeIP:
		return g.ip, a.ipKey, g.cfg.IP
	case ScopeUser:
		return g.user, a.userKey, g.cfg.User
	}
	return g.pair, a.pairKey, g.cfg.Pair
}

// escalate counts a lockout that just started in scope s and, if it is not
// the first within Config.EscalationMemory, lengthens it. It returns the lock
// length in force; on a Redis error, the base BlockFor.
func (g *Guard) escalate(ctx context.Context, s Scope, lim *ratelimit.Limiter, key string, l Limit) time.Duration {
	r, err := g.strikes.Allow(ctx, scopeNames[s]+":"+key)
	if err != nil {
		return l.BlockFor
	}
	k := maxStrikes - r.Remaining
	if !r.Allowed {
		k = maxStrikes
	}
	d := l.lockFor(k)
	if d > l.BlockFor {
		if err := lim.Lock(ctx, key, d); err != nil {
			return l.BlockFor
		}
	}
	return d
}

// id is the key of a username ('u') or client key ('i'): 128 bits of
// HMAC-SHA256(Secret) or SHA-256, base64url, so the core uses it verbatim.
func (g *Guard) id(kind byte, s string) string {
	var h hash.Hash
	if len(g.cfg.Secret) > 0 {
		h = hmac.New(sha256.New, g.cfg.Secret)
	} else {
		h = sha256.New()
	}
	h.Write([]byte{'l', 'o', 'g', 'i', 'n', 0, kind, 0})
	h.Write([]byte(s))
	var sum [sha256.Size]byte
	return base64.RawURLEncoding.EncodeToString(h.Sum(sum[:0])[:16])
}

// Attempt is a login attempt that Begin allowed. Report its result with
// exactly one of Succeeded, Failed or Cancel; later calls do nothing and
// return nil. An Attempt that is never reported counts as a failure. An
// Attempt is safe for concurrent use.
type Attempt struct {
	g                       *Guard
	userKey, ipKey, pairKey string
	known                   bool
	took                    [4]bool // indexed by Scope: units taken by Begin
	done                    atomic.Bool
}

// Succeeded reports that the password was right. It gives back the units
// this attempt took from the IP's and the username's budgets, and clears the
// pair's failures, lockouts and lockout history, as NIST SP 800-63B asks
// (disregard earlier failed attempts after a success) for the pair that
// proved itself. It never clears the username's budget: an attacker guessing
// one account from other addresses must not get fresh guesses each time the
// owner logs in (the owner gains nothing from it either: a known pair skips
// the username's budget). Nor does it clear the IP's failures (an attacker
// who owns one account must not refill an address's budget by logging into
// it between guesses) or the username's lockouts for escalation. It marks the
// pair known (Config.KnownFor), for this account only (Config.Normalize).
//
// Use a context that outlives the client's request (context.WithoutCancel):
// a failed call leaves the failures counted, which errs on the safe side.
func (a *Attempt) Succeeded(ctx context.Context) error {
	if !a.done.CompareAndSwap(false, true) {
		return nil
	}
	g := a.g
	var errs []error
	for _, s := range [...]Scope{ScopeIP, ScopeUser} {
		if a.took[s] {
			lim, key, _ := g.scope(a, s)
			if _, err := lim.Refund(ctx, key, 1); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if _, err := g.pair.Reset(ctx, a.pairKey); err != nil {
		errs = append(errs, err)
	}
	if g.strikes != nil && g.cfg.Pair.escalates() {
		if _, err := g.strikes.Reset(ctx, scopeNames[ScopePair]+":"+a.pairKey); err != nil {
			errs = append(errs, err)
		}
	}
	if g.known != nil {
		errs = append(errs, g.known.Lock(ctx, a.pairKey, g.cfg.KnownFor))
	}
	return errors.Join(errs...)
}

// Failed reports that the password was wrong (or the user does not exist):
// the units Begin took stay spent, so the failure counts in every budget. It
// makes no Redis call and always returns nil.
func (a *Attempt) Failed(ctx context.Context) error {
	a.done.Store(true)
	return nil
}

// Cancel reports that the attempt neither succeeded nor failed (the request
// was malformed, the password store was down): every unit Begin took is given
// back and nothing is cleared. Cancel only what did not verify a password;
// a cancelled wrong password is a free guess.
func (a *Attempt) Cancel(ctx context.Context) error {
	if !a.done.CompareAndSwap(false, true) {
		return nil
	}
	return a.giveBack(ctx)
}

// giveBack refunds the units Begin took.
func (a *Attempt) giveBack(ctx context.Context) error {
	var errs []error
	for _, s := range [...]Scope{ScopeIP, ScopeUser, ScopePair} {
		if !a.took[s] {
			continue
		}
		lim, key, _ := a.g.scope(a, s)
		if _, err := lim.Refund(ctx, key, 1); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// NormalizeUsername returns the form of username that a Guard limits: leading
// and trailing white space (unicode.IsSpace) removed and every character
// replaced by a canonical member of its simple case-folding orbit (the
// lowercase one where there is one), so that two usernames normalise alike
// exactly when strings.EqualFold says they are equal after trimming: " Alice "
// and "ALICE" are "alice", the Kelvin sign K is k.
//
// It does no Unicode normalisation (NFC/NFKC: a precomposed "é" and "e" with
// a combining accent stay different), no full case folding ("ß" is not "ss"),
// and does not map look-alike characters; applications that need these
// should apply golang.org/x/text/secure/precis (UsernameCaseMapped) before
// calling the Guard. Bytes that are not valid UTF-8 are kept as they are.
// Work and allocation are linear in len(username).
func NormalizeUsername(username string) string {
	s := strings.TrimSpace(username)
	ascii := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || ('A' <= c && c <= 'Z') {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 {
			b.WriteByte(s[i])
			i++
			continue
		}
		b.WriteRune(foldRune(r))
		i += n
	}
	return b.String()
}

// foldRune returns the smallest lowercase member of r's simple case-folding
// orbit, or the smallest member if none is lowercase: the same rune for every
// member of an orbit, and a different one for every other orbit.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}
	low, least := rune(-1), r
	f := r
	for {
		if f < least {
			least = f
		}
		if unicode.IsLower(f) && (low < 0 || f < low) {
			low = f
		}
		if f = unicode.SimpleFold(f); f == r {
			break
		}
	}
	if low >= 0 {
		return low
	}
	return least
}

// Locked reports whether the attempt was refused by a lockout.
func (d Decision) Locked() bool { return d.Outcome == ratelimit.OutcomeLockedOut }
