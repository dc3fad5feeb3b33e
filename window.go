package ratelimit

import (
	_ "embed"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// SlidingWindow: slidingwindow.lua, and here its arguments, reply decoding
// and model step.

//go:embed slidingwindow.lua
var slidingWindowLua string

// windowBase is the base of a window's stored counts, prev*windowBase + cur
// (2^26, above maxWindowLimit), the same for every Limit.
const windowBase = 1 << 26

type window struct{}

func (window) source() string { return slidingWindowLua }

func (window) shape(r Rate) shape {
	s := shape{rate: r, unit: ceilMillis(r.Period), limit: int64(r.Limit)}
	s.packed = windowFits(s.unit, s.limit)
	return s
}

// windowFits reports whether a SlidingWindow of the given period (ms) and
// limit packs its reply into one integer below 2^53 (see slidingwindow.lua).
func windowFits(period, limit int64) bool {
	base := float64(limit + 1)
	return float64(period+1)*base*base < math.Exp2(53)
}

// args is a rate's ARGV: the period in ms and the limit, hexadecimal.
func (window) args(s shape) (any, any) {
	return strconv.FormatInt(s.unit, 16), strconv.FormatInt(s.limit, 16)
}

// decode reads one rate's reply: packed, or the string "v rest".
func (window) decode(s *shape, reply any, n int64, op Op, all bool) (Result, error) {
	switch v := reply.(type) {
	case int64:
		if s.packed {
			ok := v >= 0
			if !ok {
				v = -1 - v
			}
			bb := (s.limit + 1) * (s.limit + 1)
			return s.window(ok, v%bb, v/bb, n, op)
		}
	case string:
		if !s.packed {
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
	}
	return Result{}, fmt.Errorf("%w: %T %v", ErrUnexpectedReply, reply, reply)
}

// window reads a SlidingWindow reply: the counts v = prev*(limit+1) + cur
// and the ms left in the current window; ok reports whether this rate
// admits the call.
func (s *shape) window(ok bool, v, rest, n int64, op Op) (Result, error) {
	period, limit := s.unit, s.limit
	base := limit + 1
	prev, cur := v/base, v%base
	if prev > limit || rest > period {
		return Result{}, fmt.Errorf("%w: window state %d with %dms left", ErrUnexpectedReply, v, rest)
	}
	ms := func(x int64) time.Duration { return time.Duration(x) * time.Millisecond }
	r := Result{Limit: s.rate, Allowed: true, Outcome: OutcomeAllowed}
	r.Remaining = int(max(0, limit-cur-int64(math.Ceil(float64(prev)*float64(rest)/float64(period)))))
	switch {
	case cur > 0:
		r.ResetAfter = ms(rest + period)
	case prev > 0:
		r.ResetAfter = ms(rest)
	}
	if ok || op == OpRefund {
		return r, nil
	}
	// Denied: the earliest time the same call fits, never earlier.
	r.Allowed, r.Outcome = false, OutcomeDenied
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
	r.RetryAfter = ms(max(retry, 1))
	return r, nil
}

// step is slidingwindow.lua on the model, path for path. The script's one-rate
// and two-rate consumes are written again without tables, for speed; they
// take the same steps, and the virtual clock tests hold every path against
// this one. A
// consuming script reads each count with the INCRBY that counts the call
// and undoes it with DECRBY when the call is denied: the state it leaves is
// the one this step computes.
func (window) step(m *model, shapes []shape, now, n int64, op Op) any {
	if p := m.lock.pttl(now); p > 0 {
		return lockReply(1000*p, 0)
	}
	var x, p, prev, cur [maxRates]int64
	ok := true
	// Read every rate.
	for i, s := range shapes {
		st := &m.st[i]
		period, limit := s.unit, s.limit
		pi, xi := st.pttl(now), int64(0)
		if pi > 0 {
			xi = st.v
			if xi < 0 || xi >= windowBase*windowBase {
				pi, xi = 0, 0 // unreadable: fresh
			}
		} else {
			pi = 0
		}
		if pi > 2*period {
			// An expiry from a faster clock: the current window opens now.
			pi = 2 * period
			if op != OpPeek {
				st.e = now + pi
			}
		}
		var pv, cv int64
		if pi > period {
			cv = xi % windowBase
			pv = (xi - cv) / windowBase
		} else if pi > 0 {
			pv = xi % windowBase
		}
		pv, cv = min(pv, limit), min(cv, limit)
		x[i], p[i], prev[i], cur[i] = xi, pi, pv, cv
		if op != OpRefund && !windowRoom(pi, period, limit, pv, cv, n) {
			ok = false
		}
	}
	if !ok && op == OpAllow && m.block > 0 {
		m.lock.set(now, 1, m.block)
		return lockReply(1000*m.block, 1)
	}
	out := make([]any, len(shapes))
	for i, s := range shapes {
		st := &m.st[i]
		period, limit := s.unit, s.limit
		base := limit + 1
		pi, xi, pv, cv := p[i], x[i], prev[i], cur[i]
		fits, rest := ok, pi
		if pi > period {
			rest = pi - period
		}
		switch {
		case op == OpRefund:
			if pi > period {
				back := min(cv, n)
				pv = max(0, pv-(n-back))
				cv -= back
				if v := pv*windowBase + cv; v == 0 {
					st.has = false
				} else {
					st.v = v
				}
			} else if pi > 0 {
				left := max(0, pv-n)
				if left == 0 {
					st.has = false
				} else {
					st.v += left - xi%windowBase
				}
				pv = left
			}
		case op == OpPeek || !ok:
			// As found; a rate that would admit the call still says so.
			fits = windowRoom(pi, period, limit, pv, cv, n)
		case pi == 0:
			// Fresh: a window starts now.
			st.set(now, n, 2*period)
			cv, rest = n, period
		case pi > period:
			st.v += n
			cv += n
		default:
			// cur's window has closed: this is the next one, prev = the old cur.
			st.set(now, pv*windowBase+n, pi+period)
			cv = n
		}
		v := pv*base + cv
		if s.packed {
			r := rest*base*base + v
			if !fits {
				r = -1 - r
			}
			out[i] = r
		} else {
			if !fits {
				v = -1 - v
			}
			out[i] = strconv.FormatInt(v, 10) + " " + strconv.FormatInt(rest, 10)
		}
	}
	return rateReply(out)
}

// windowRoom reports whether a call of n fits a window found with PTTL pi
// (0: fresh) and counts pv, cv.
func windowRoom(pi, period, limit, pv, cv, n int64) bool {
	if pi == 0 {
		return n <= limit
	}
	rest := pi
	if pi > period {
		rest = pi - period
	}
	return float64(pv)*float64(rest) <= float64(limit-cv-n)*float64(period)
}
