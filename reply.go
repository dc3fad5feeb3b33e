package ratelimit

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// shape is what a Limiter's script computes with, and so what its reply is
// read with (see the contract atop each .lua).
type shape struct {
	alg   Algorithm
	unit  int64 // buckets: µs per unit (the interval); SlidingWindow: the period in ms
	limit int64 // buckets: Burst; SlidingWindow: Limit
	block int64 // lockout after a denial in ms; 0 means none
	// packed: a SlidingWindow reply is one integer (see windowFits), not the
	// string "v rest".
	packed bool
}

func newShape(alg Algorithm, limit, burst int, period, blockFor time.Duration) shape {
	s := shape{alg: alg, limit: int64(burst), unit: intervalMicros(limit, period), block: ceilMillis(blockFor)}
	if alg == SlidingWindow {
		s.limit, s.unit = int64(limit), ceilMillis(period)
		s.packed = windowFits(s.unit, s.limit)
	}
	return s
}

// windowFits reports whether a SlidingWindow of the given period (ms) and
// limit packs its reply into one integer below 2^53 (see slidingwindow.lua).
func windowFits(period, limit int64) bool {
	base := float64(limit + 1)
	return float64(period+1)*base*base < math.Exp2(53)
}

// capacity is the buckets' Burst × interval in µs.
func (s shape) capacity() int64 { return s.limit * s.unit }

// decode checks and converts a script's reply to the Result of a call of
// cost n, or returns an error wrapping ErrUnexpectedReply.
func (s shape) decode(reply any, n int64, op Op) (Result, error) {
	switch v := reply.(type) {
	case int64:
		if s.alg == SlidingWindow {
			if !s.packed {
				break
			}
			ok := v >= 0
			if !ok {
				v = -1 - v
			}
			bb := (s.limit + 1) * (s.limit + 1)
			return s.window(ok, v%bb, v/bb, n, op)
		}
		return s.bucket(v, n, op)
	case string:
		if s.alg == SlidingWindow && !s.packed {
			vs, rs, found := strings.Cut(v, " ")
			x, err1 := strconv.ParseInt(vs, 10, 64)
			rest, err2 := strconv.ParseInt(rs, 10, 64)
			if found && err1 == nil && err2 == nil && rest >= 0 {
				ok := x >= 0
				if !ok {
					x = -1 - x
				}
				return s.window(ok, x, rest, n, op)
			}
		}
	case []any:
		// A lock: {the rest of the lock in µs, 1 if this call started it}.
		var f [2]int64
		for i, x := range v {
			if i >= len(f) {
				break
			}
			var isInt bool
			if f[i], isInt = x.(int64); !isInt || f[i] < 0 {
				return Result{}, fmt.Errorf("%w: element %d is %T %v", ErrUnexpectedReply, i, x, x)
			}
		}
		if len(v) == 2 && f[1] <= 1 {
			left := time.Duration(f[0]) * time.Microsecond
			return Result{Outcome: OutcomeLockedOut, RetryAfter: left, ResetAfter: left, Locked: true, LockStarted: f[1] == 1}, nil
		}
	}
	return Result{}, fmt.Errorf("%w: %T %v", ErrUnexpectedReply, reply, reply)
}

// bucket reads a bucket script's integer reply r (the debt or level d, as
// -1 - d when denied).
func (s shape) bucket(r, n int64, op Op) (Result, error) {
	c, capa := n*s.unit, s.capacity()
	ok := r >= 0
	d := r
	if !ok {
		d = -1 - r
	}
	if d > capa {
		return Result{}, fmt.Errorf("%w: %d is beyond the capacity %d", ErrUnexpectedReply, r, capa)
	}
	us := func(x int64) time.Duration { return time.Duration(x) * time.Microsecond }
	switch {
	case op == OpRefund:
		return Result{Allowed: true, Outcome: OutcomeAllowed, Remaining: int((capa - d) / s.unit), ResetAfter: us(d)}, nil
	case ok:
		after := d
		if op == OpAllow {
			after += c
		}
		if after > capa {
			return Result{}, fmt.Errorf("%w: %d admitted beyond the capacity %d", ErrUnexpectedReply, r, capa)
		}
		r := Result{Allowed: true, Outcome: OutcomeAllowed, Remaining: int((capa - after) / s.unit), ResetAfter: us(after)}
		if s.alg == LeakyBucket {
			r.Delay = us(d)
		}
		return r, nil
	}
	return Result{Outcome: OutcomeDenied, Remaining: int((capa - d) / s.unit), RetryAfter: us(d + c - capa), ResetAfter: us(d)}, nil
}

// window reads a SlidingWindow reply: the counts v = prev*(limit+1) + cur
// and the ms left in the current window.
func (s shape) window(ok bool, v, rest, n int64, op Op) (Result, error) {
	period, limit := s.unit, s.limit
	base := limit + 1
	prev, cur := v/base, v%base
	if prev > limit || rest > period {
		return Result{}, fmt.Errorf("%w: window state %d with %dms left", ErrUnexpectedReply, v, rest)
	}
	ms := func(x int64) time.Duration { return time.Duration(x) * time.Millisecond }
	r := Result{Allowed: ok, Outcome: OutcomeAllowed}
	r.Remaining = int(max(0, limit-cur-int64(math.Ceil(float64(prev)*float64(rest)/float64(period)))))
	switch {
	case cur > 0:
		r.ResetAfter = ms(rest + period)
	case prev > 0:
		r.ResetAfter = ms(rest)
	}
	if ok {
		return r, nil
	}
	// Denied: the earliest time the same call fits, never earlier.
	r.Outcome = OutcomeDenied
	room, elapsed := limit-cur-n, period-rest
	var retry int64
	if room >= 0 {
		// Within this window, once enough of prev has slid out (prev > 0 here).
		e := period - int64(math.Floor(float64(room)*float64(period)/float64(prev)))
		if float64(prev)*float64(period-e) > float64(room)*float64(period) {
			e++
		}
		retry = e - elapsed
	} else {
		// In the next window, where cur becomes the previous count.
		room2 := limit - n
		e := int64(0)
		if cur > room2 {
			e = period - int64(math.Floor(float64(room2)*float64(period)/float64(cur)))
			if float64(cur)*float64(period-e) > float64(room2)*float64(period) {
				e++
			}
		}
		retry = rest + e
	}
	r.RetryAfter = ms(retry)
	return r, nil
}

// ceilMillis is d in whole milliseconds, rounded up.
func ceilMillis(d time.Duration) int64 {
	ms := int64(d / time.Millisecond)
	if d%time.Millisecond != 0 {
		ms++
	}
	return ms
}
