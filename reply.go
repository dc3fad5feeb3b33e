package ratelimit

import (
	"fmt"
	"time"
)

// algorithm is one family of scripts. Each implementation keeps, beside its
// script, the script's source, the shape a rate takes in it, the decoding of
// one rate's reply and the model of the whole script (bucket.go, window.go).
type algorithm interface {
	source() string
	shape(r Rate) shape
	args(s shape) (any, any)
	decode(s *shape, reply any, n int64, op Op, all bool) (Result, error)
	step(m *model, shapes []shape, now, n int64, op Op) any
}

// algorithms maps each Algorithm to its implementation.
var algorithms = [...]algorithm{TokenBucket: gcra{}, LeakyBucket: gcra{leaky: true}, SlidingWindow: window{}}

// shape is one rate as its script computes with it (see the contract atop
// each .lua).
type shape struct {
	rate  Rate
	unit  int64 // buckets: µs per event (the interval); SlidingWindow: the period in ms
	limit int64 // buckets: Burst; SlidingWindow: Limit
	// packed: a SlidingWindow reply is one integer (see windowFits), not the
	// string "v rest".
	packed bool
}

// capacity is the buckets' Burst × interval in µs.
func (s shape) capacity() int64 { return s.limit * s.unit }

// maxMicros bounds every duration decoded from a reply (100 years).
const maxMicros = int64(maxSpan / time.Microsecond)

// decode checks and converts a script's reply to the Result of a call of
// cost n, or returns an error wrapping ErrUnexpectedReply. Several rates
// combine: the call is admitted iff every rate admits it; the binding rate
// (Result.Limit) is the one that denied with the longest wait, or the one
// with the least left; RetryAfter is when the call fits in every rate.
func (rs *rateSet) decode(reply any, n int64, op Op) (Result, error) {
	if v, ok := reply.([]any); ok && len(v) == 3 && v[0] == "lock" {
		left, ok1 := v[1].(int64)
		started, ok2 := v[2].(int64)
		if !ok1 || !ok2 || left < 0 || started < 0 || started > 1 {
			return Result{}, fmt.Errorf("%w: lock reply %v", ErrUnexpectedReply, v)
		}
		d := time.Duration(min(left, maxMicros)) * time.Microsecond
		d = max(d, time.Millisecond) // Redis locks in whole ms: never less
		return Result{Limit: rs.rates[0], Outcome: OutcomeLockedOut, RetryAfter: d, ResetAfter: d, LockStarted: started == 1}, nil
	}
	if len(rs.shapes) == 1 {
		return rs.alg.decode(&rs.shapes[0], reply, n, op, fits(reply))
	}
	parts, ok := reply.([]any)
	if !ok || len(parts) != len(rs.shapes) {
		return Result{}, fmt.Errorf("%w: %T %v for %d rates", ErrUnexpectedReply, reply, reply, len(rs.shapes))
	}
	all := true
	for _, p := range parts {
		all = all && fits(p)
	}
	var res Result
	for i := range rs.shapes {
		r, err := rs.alg.decode(&rs.shapes[i], parts[i], n, op, all)
		if err != nil {
			return Result{}, fmt.Errorf("rate %d: %w", i, err)
		}
		switch {
		case i == 0:
			res = r
		case all && r.Remaining < res.Remaining:
			res.Limit, res.Remaining = r.Limit, r.Remaining
		case !all && !r.Allowed && (res.Allowed || r.RetryAfter > res.RetryAfter):
			res.Limit, res.Remaining, res.RetryAfter, res.Outcome, res.Allowed = r.Limit, r.Remaining, r.RetryAfter, r.Outcome, false
		}
		res.ResetAfter = max(res.ResetAfter, r.ResetAfter)
		res.Delay = max(res.Delay, r.Delay)
	}
	return res, nil
}

// fits reports whether one rate's reply says the call fits (replies are
// written -1 - x when it does not).
func fits(reply any) bool {
	switch v := reply.(type) {
	case int64:
		return v >= 0
	case string:
		return len(v) > 0 && v[0] != '-'
	}
	return false
}

// ceilMs is x µs rounded up to the millisecond, as a Duration: Redis's clock
// moves in whole milliseconds, so a wait is never shorter.
func ceilMs(x int64) time.Duration {
	return time.Duration(ceilDiv(min(max(x, 0), maxMicros), 1000)) * time.Millisecond
}

// ceilMillis is d in whole milliseconds, rounded up.
func ceilMillis(d time.Duration) int64 {
	ms := int64(d / time.Millisecond)
	if d%time.Millisecond != 0 {
		ms++
	}
	return ms
}
