package ratelimit

import (
	_ "embed"
	"fmt"
	"strconv"
	"time"
)

// TokenBucket and LeakyBucket: one algorithm (GCRA), written once in
// tokenbucket.lua; leakybucket.lua names it for LeakyBucket, whose script is
// that header followed by the same code. This file holds the Go side of
// both: the arguments, the reply decoding and the model step.

var (
	//go:embed tokenbucket.lua
	tokenBucketLua string
	//go:embed leakybucket.lua
	leakyBucketHeader string
)

// gcra is the buckets' algorithm; leaky reads a reply's debt as the level
// ahead of the call (Result.Delay).
type gcra struct {
	leaky bool
}

func (g gcra) source() string {
	if g.leaky {
		return leakyBucketHeader + tokenBucketLua
	}
	return tokenBucketLua
}

func (gcra) shape(r Rate) shape {
	return shape{rate: r, unit: intervalMicros(r.Limit, r.Period), limit: int64(r.Burst)}
}

// args is a rate's ARGV: interval and capacity in µs, hexadecimal.
func (gcra) args(s shape) (any, any) {
	return strconv.FormatInt(s.unit, 16), strconv.FormatInt(s.capacity(), 16)
}

// decode reads one rate's integer reply r (the debt or level d before the
// call, as -1 - d when this rate denies it) for a call of cost n; all
// reports whether every rate admits the call (so a consuming call was
// charged here).
func (g gcra) decode(s *shape, reply any, n int64, op Op, all bool) (Result, error) {
	charged := all && op == OpAllow
	r, isInt := reply.(int64)
	if !isInt {
		return Result{}, fmt.Errorf("%w: %T %v", ErrUnexpectedReply, reply, reply)
	}
	c, capa := n*s.unit, s.capacity()
	fits := r >= 0
	d := r
	if !fits {
		d = -1 - r
	}
	if d > capa {
		return Result{}, fmt.Errorf("%w: %d is beyond the capacity %d", ErrUnexpectedReply, r, capa)
	}
	res := Result{Limit: s.rate, Outcome: OutcomeAllowed, Allowed: true}
	switch {
	case op == OpRefund:
		res.Remaining, res.ResetAfter = int((capa-d)/s.unit), ceilMs(d)
	case fits:
		after := d
		if op == OpAllow && charged {
			after += c
		}
		if after > capa {
			return Result{}, fmt.Errorf("%w: %d admitted beyond the capacity %d", ErrUnexpectedReply, r, capa)
		}
		res.Remaining, res.ResetAfter = int((capa-after)/s.unit), ceilMs(after)
		if g.leaky && all {
			res.Delay = time.Duration(d) * time.Microsecond
		}
	default:
		// Redis's clock moves in whole ms: the call fits once d has shrunk by
		// d + c - cap µs, which takes that many µs rounded up to the ms.
		res = Result{Limit: s.rate, Outcome: OutcomeDenied, Remaining: int((capa - d) / s.unit), RetryAfter: ceilMs(d + c - capa), ResetAfter: ceilMs(d)}
	}
	return res, nil
}

// step is tokenbucket.lua on the model, path for path (the comments name
// the script's paths). The script writes the consume three times more, for
// speed: one rate without tables, two rates unrolled, more rates in a loop,
// the last two in one read pass that writes only where a rate needs it; they
// take the same steps, and the virtual clock tests hold every path against
// this one.
func (gcra) step(m *model, shapes []shape, now, n int64, op Op) any {
	if p := m.lock.pttl(now); p > 0 {
		return lockReply(1000*p, 0)
	}
	k := len(shapes)
	var d, raw, x, p [maxRates]int64
	var hasX [maxRates]bool
	ok := true
	// Read every rate (an optimistic INCRBY when consuming).
	for i, s := range shapes {
		st := &m.st[i]
		c, capa := n*s.unit, s.capacity()
		pi, di := st.pttl(now), int64(-1)
		if pi > 0 {
			var v int64
			if op == OpAllow {
				st.v += c
				x[i], hasX[i] = st.v, true
				v = st.v - c
			} else {
				v = st.v
			}
			if v > 1<<52 || v < -(1<<52) {
				hasX[i] = false // beyond exact arithmetic: unreadable
			} else {
				di = v + 1000*pi
			}
		} else {
			pi = 0
		}
		p[i], raw[i], d[i] = pi, di, min(di, capa)
		if op != OpRefund && max(d[i], 0)+c > capa {
			ok = false
		}
	}
	out := make([]any, k)
	if op == OpRefund {
		for i, s := range shapes {
			st := &m.st[i]
			di := max(d[i], 0)
			if p[i] > 0 && raw[i] >= 0 {
				after := max(di-n*s.unit, 0)
				if after == 0 {
					st.has = false
				} else {
					st.v += after - raw[i]
				}
				di = after
			}
			out[i] = di
		}
		return rateReply(out)
	}
	for i, s := range shapes {
		st := &m.st[i]
		c, capa := n*s.unit, s.capacity()
		di := max(d[i], 0)
		if op == OpAllow {
			pi, xi := p[i], x[i]
			switch {
			case !ok:
				if raw[i] > capa {
					// Rewrite the full debt on this clock.
					ms := ceilDiv(capa+ceilDiv(capa, 16), 1000)
					st.set(now, capa-1000*ms, ms)
				} else if hasX[i] {
					st.v -= c
				}
			case d[i] < 0:
				// Fresh, or full again: TAT = now + c.
				if hasX[i] && 1000*pi >= c {
					st.v = c - 1000*pi
				} else {
					ms := ceilDiv(c+ceilDiv(capa, 16), 1000)
					st.set(now, c-1000*ms, ms)
				}
			case xi > 0:
				// TAT passed the expiry: move the expiry to TAT + cap/16.
				ms := ceilDiv(xi+ceilDiv(capa, 16), 1000)
				st.set(now, xi-1000*ms, pi+ms)
			}
		}
		if di+c <= capa {
			out[i] = di
		} else {
			out[i] = -1 - di
		}
	}
	if !ok && op == OpAllow && m.block > 0 {
		m.lock.set(now, 1, m.block)
		return lockReply(1000*m.block, 1)
	}
	return rateReply(out)
}
