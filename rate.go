package ratelimit

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// Rate is one limit: Limit events per Period, with a capacity of Burst.
//
// A Limiter checks Config's own rate (Config.Limit, Period, Burst) and every
// rate of Config.Rates; Limiter.With makes a view with rates chosen per call
// (a customer's plan). A call is admitted iff it fits in every rate, and is
// then charged to every rate; a call that one rate denies is charged to none.
//
// Each rate of an identity keeps its own state in Redis, in a key named by
// the algorithm and the rate's Period: the same key under a new Limit or
// Burst keeps its state (see Limiter.With for what that means per algorithm),
// and the Periods of one set must differ.
type Rate struct {
	// Limit and Period set the sustained rate: Limit events per Period. Both
	// must be positive, and Period/Limit at least 1µs. SlidingWindow needs a
	// whole number of milliseconds for Period.
	Limit  int
	Period time.Duration
	// Burst is the capacity of a bucket (TokenBucket, LeakyBucket): how many
	// events can be admitted at once after a quiet spell. If zero, Burst is
	// Limit. A bucket must hold at least 1ms of events. For SlidingWindow it
	// must be zero or Limit.
	Burst int
}

// PerSecond returns a Rate of n events per second.
func PerSecond(n int) Rate { return Rate{Limit: n, Period: time.Second} }

// PerMinute returns a Rate of n events per minute.
func PerMinute(n int) Rate { return Rate{Limit: n, Period: time.Minute} }

// PerHour returns a Rate of n events per hour.
func PerHour(n int) Rate { return Rate{Limit: n, Period: time.Hour} }

// PerDay returns a Rate of n events per 24 hours (a rolling day, not a
// calendar day).
func PerDay(n int) Rate { return Rate{Limit: n, Period: 24 * time.Hour} }

// String formats r as ParseLimit reads it: "10/s", "100/1m0s burst 20".
func (r Rate) String() string {
	s := strconv.Itoa(r.Limit) + "/" + periodString(r.Period)
	if r.Burst != 0 && r.Burst != r.Limit {
		s += " burst " + strconv.Itoa(r.Burst)
	}
	return s
}

func periodString(d time.Duration) string {
	switch d {
	case time.Second:
		return "s"
	case time.Minute:
		return "min"
	case time.Hour:
		return "h"
	case 24 * time.Hour:
		return "d"
	}
	return d.String()
}

// check fills in Burst and returns every problem of r, naming field (e.g.
// "Config.Rates[1]") in each message.
func (r *Rate) check(alg Algorithm, field string) []error {
	var errs []error
	if r.Limit < 1 {
		errs = append(errs, configError("%s.Limit = %d, must be >= 1", field, r.Limit))
	}
	switch {
	case r.Period <= 0:
		errs = append(errs, configError("%s.Period = %v, must be > 0", field, r.Period))
	case r.Period > maxSpan:
		errs = append(errs, configError("%s.Period = %v, must be <= %v", field, r.Period, maxSpan))
	case r.Limit >= 1 && r.Period/time.Duration(r.Limit) < time.Microsecond:
		errs = append(errs, configError("%s.Limit = %d per %s.Period = %v is faster than one event per microsecond", field, r.Limit, field, r.Period))
	}
	if alg == SlidingWindow && r.Limit > maxWindowLimit {
		errs = append(errs, configError("%s.Limit = %d, must be <= %d for SlidingWindow", field, r.Limit, maxWindowLimit))
	}
	switch {
	case r.Burst < 0:
		errs = append(errs, configError("%s.Burst = %d, must be >= 0 (0 means Limit)", field, r.Burst))
	case alg == SlidingWindow && r.Burst != 0 && r.Burst != r.Limit:
		errs = append(errs, configError("%s.Burst = %d, must be 0 or Limit (%d) for SlidingWindow", field, r.Burst, r.Limit))
	case r.Burst == 0:
		r.Burst = r.Limit
	}
	if r.Burst > 0 && r.Limit >= 1 && r.Period > 0 && r.Period <= maxSpan {
		iv := intervalMicros(r.Limit, r.Period)
		switch {
		case iv > 0 && int64(r.Burst) > int64(maxSpan/time.Microsecond)/iv:
			errs = append(errs, configError("%s.Burst = %d at one event per %v spans more than %v", field, r.Burst, time.Duration(iv)*time.Microsecond, maxSpan))
		case alg != SlidingWindow && int64(r.Burst)*iv < 1000:
			// Time moves in whole ms (see the scripts): a bucket that fills in
			// less would admit at most Burst per ms, below the configured rate.
			errs = append(errs, configError("%s.Burst = %d at one event per %v holds under 1ms of events, and Redis's clock moves in whole milliseconds: Burst must be at least %d", field, r.Burst, time.Duration(iv)*time.Microsecond, ceilDiv(1000, iv)))
		}
	}
	if alg == SlidingWindow && r.Period > 0 && r.Period%time.Millisecond != 0 {
		errs = append(errs, configError("%s.Period = %v, must be a whole number of milliseconds for SlidingWindow", field, r.Period))
	}
	return errs
}

// maxRates bounds the rates of one call: each is a key and a few Redis calls
// inside one script, which must stay short.
const maxRates = 8

// rateSet is the rates a call is checked against, with what the script and
// the reply decoding need for each, computed once.
type rateSet struct {
	alg    algorithm
	rates  []Rate
	shapes []shape
	// args is the rates' ARGV (two per rate, see the scripts), and suffix
	// each rate's key suffix, ":" + algorithm letter + Period.
	args    []any
	suffix  []string
	maxCost int   // the smallest Burst: a larger cost can never fit
	allow1  []any // ARGV of Allow (cost 1): boxed once, shared read-only
}

// prepare boxes the ARGV of Allow, with block the lockout argument.
func (rs *rateSet) prepare(block string) {
	rs.allow1 = append([]any{"", "1", block}, rs.args...)
}

// newRateSet checks rates (field names the first in messages, e.g.
// "Config", then "Config.Rates[0]"...) and precomputes their arguments.
func newRateSet(alg Algorithm, rates []Rate, fields func(i int) string) (*rateSet, error) {
	var errs []error
	if len(rates) == 0 {
		errs = append(errs, configError("no rates: give at least one Rate"))
	}
	if len(rates) > maxRates {
		errs = append(errs, configError("%d rates, at most %d can be checked in one call", len(rates), maxRates))
	}
	rs := &rateSet{alg: algorithms[alg], rates: make([]Rate, len(rates))}
	copy(rs.rates, rates)
	seen := map[time.Duration]int{}
	for i := range rs.rates {
		r := &rs.rates[i]
		errs = append(errs, r.check(alg, fields(i))...)
		if j, dup := seen[r.Period]; dup {
			errs = append(errs, configError("%s.Period = %v is also %s.Period: the rates of one set need different Periods (each Period has its own key)", fields(i), r.Period, fields(j)))
		}
		seen[r.Period] = i
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	rs.maxCost = rs.rates[0].Burst
	for _, r := range rs.rates {
		s := rs.alg.shape(r)
		rs.shapes = append(rs.shapes, s)
		a1, a2 := rs.alg.args(s)
		rs.args = append(rs.args, a1, a2)
		rs.suffix = append(rs.suffix, ":"+alg.letter()+periodTag(r.Period))
		rs.maxCost = min(rs.maxCost, r.Burst)
	}
	return rs, nil
}

// letter is the algorithm's letter in key suffixes, so that limiters of
// different algorithms with one Name never read each other's state.
func (a Algorithm) letter() string { return [...]string{"t", "l", "w"}[a] }

// periodTag is d in the largest unit that divides it: "1s", "5m", "24h",
// "1500ms", "10us".
func periodTag(d time.Duration) string {
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}, {time.Microsecond, "us"}} {
		if d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(d), 10) + "ns"
}

// With returns a view of l that checks rates instead of l's own: a
// customer's plan, looked up per request. The view shares l's client, keys,
// pipelines, caches, observer and every other setting, and every operation
// works on it. With keeps the views it made, up to 1,024 distinct rate sets
// per limiter (and its views): calling it per request with a plan's rates
// returns the same view each time, without allocating.
//
// The same key under new rates keeps its state, rate by rate, matched by
// Period (the Period is part of a rate's Redis key):
//   - TokenBucket and LeakyBucket keep their debt in time: a bucket that
//     lacked 30s of refill lacks 30s under the new rate too, and then refills
//     at the new rate. A customer who moves up (10/min to 1000/min, same
//     Burst) sees that debt paid back faster; one who moves down keeps what
//     it had used, and a debt beyond the new capacity reads as an empty
//     bucket (never a fresh one).
//   - SlidingWindow keeps its counts: a count above a new, lower Limit reads
//     as that Limit (the window is full).
//   - A rate with a new Period starts fresh, since it has a key of its own.
//
// With returns an error wrapping ErrInvalidConfig naming the bad rate
// ("rates[1].Burst = ..."), for the same rules as Config's.
func (l *Limiter) With(rates ...Rate) (*Limiter, error) {
	var id viewKey
	cacheable := len(rates) <= maxRates
	if cacheable {
		id.n = len(rates)
		copy(id.rates[:], rates)
		l.views.mu.RLock()
		v := l.views.m[id]
		l.views.mu.RUnlock()
		if v != nil {
			return v, nil
		}
	}
	rs, err := newRateSet(l.cfg.Algorithm, rates, func(i int) string { return fmt.Sprintf("rates[%d]", i) })
	if err != nil {
		return nil, fmt.Errorf("ratelimit: %s: With: %w", l.cfg.Name, err)
	}
	rs.prepare(l.block)
	v := &Limiter{core: l.core, rates: rs}
	if l.locals != nil {
		v.local = l.locals.divide(rs)
	}
	if cacheable {
		l.views.mu.Lock()
		if l.views.m == nil {
			l.views.m = make(map[viewKey]*Limiter)
		}
		if len(l.views.m) < maxViews {
			l.views.m[id] = v
		}
		l.views.mu.Unlock()
	}
	return v, nil
}

// maxViews bounds the views With keeps per limiter; past it, With makes a
// view per call.
const maxViews = 1024

// viewKey is a rate set as With receives it, comparable and built without
// allocating.
type viewKey struct {
	n     int
	rates [maxRates]Rate
}

// views are the views With made, shared by a limiter and its views.
type views struct {
	mu sync.RWMutex
	m  map[viewKey]*Limiter
}

// Rates returns the rates the limiter checks, Burst filled in.
func (l *Limiter) Rates() []Rate { return append([]Rate(nil), l.rates.rates...) }
