package ratelimit

import "strconv"

// lockValue is the stored value of a locked key (2^60); the scripts read any
// value at or above lockFloor (2^59) as a lock, so a lock survives an INCRBY.
const (
	lockValue = 1 << 60
	lockFloor = 1 << 59
)

// model is a pure-Go, in-memory copy of one key of one algorithm, computing
// exactly what the Lua scripts compute, path for path, and giving the same raw
// reply (shape.decode reads both). Time is a millisecond clock, like the key
// expiry the scripts read with PTTL. The differential tests drive a model and
// a script with the same calls and compare every reply and the stored state;
// FailLocal runs one model per key on this host's clock. A model is not safe
// for concurrent use.
type model struct {
	shape
	has bool
	v   int64 // the stored integer (see the script's contract)
	e   int64 // the key's expiry, ms on the model's clock
}

// pttl is what PTTL answers at now: the ms until the key expires, or -2 when
// there is no key (Redis keeps a key up to and including its expiry ms).
func (m *model) pttl(now int64) int64 {
	if m.has && m.e >= now {
		return m.e - now
	}
	return -2
}

// set is SET with PX ms at now.
func (m *model) set(now, v, ms int64) { m.has, m.v, m.e = true, v, now+ms }

// lock locks the key for ms from now, as Lock does.
func (m *model) lock(now, ms int64) { m.set(now, lockValue, ms) }

// step answers one call of cost n at now (ms) in the given mode, returning the
// script's raw reply.
func (m *model) step(now, n int64, op Op) any {
	if m.alg == SlidingWindow {
		return m.window(now, n, op)
	}
	return m.bucket(now, n, op)
}

func locked(left, started int64) []any { return []any{left, started} }

func (m *model) bucket(now, n int64, op Op) any {
	c, capa := n*m.unit, m.capacity()
	p := m.pttl(now)
	if op != OpAllow {
		d := int64(0)
		if p > 0 {
			if op == OpRefund {
				m.v -= c
			}
			v := m.v
			if v >= lockFloor {
				if op == OpRefund {
					m.v += c
				}
				return locked(1000*p, 0)
			}
			d = v + 1000*p
		}
		d = min(max(d, 0), capa)
		if op == OpRefund {
			if d == 0 && p > 0 {
				m.has = false
			}
			return d
		}
		if d+c <= capa {
			return d
		}
		return -1 - d
	}
	var x, d0 int64
	if p > 0 {
		m.v += c
		x = m.v
		if x >= lockFloor {
			m.v -= c
			return locked(1000*p, 0)
		}
		d0 = x - c + 1000*p
	}
	if p <= 0 || d0 < 0 {
		if p > 0 && 1000*p >= c {
			m.v = c - 1000*p
		} else {
			ms := ceilDiv(c+capa, 1000)
			m.set(now, c-1000*ms, ms)
		}
		return int64(0)
	}
	repaired := d0 > capa
	if repaired {
		ms := ceilDiv(2*capa, 1000)
		m.set(now, capa-1000*ms, ms)
		d0 = capa
	}
	if d0+c > capa {
		if m.block > 0 {
			m.lock(now, m.block)
			return locked(1000*m.block, 1)
		}
		if !repaired {
			m.v -= c
		}
		return -1 - d0
	}
	if x > 0 {
		ms := ceilDiv(x+capa, 1000)
		m.set(now, x-1000*ms, p+ms)
	}
	return d0
}

func (m *model) window(now, n int64, op Op) any {
	period, limit := m.unit, m.limit
	base := limit + 1
	reply := func(ok bool, v, rest int64) any {
		if m.packed {
			r := rest*base*base + v
			if ok {
				return r
			}
			return -1 - r
		}
		if !ok {
			v = -1 - v
		}
		return strconv.FormatInt(v, 10) + " " + strconv.FormatInt(rest, 10)
	}
	deny := func(v, rest int64) any {
		if op == OpAllow && m.block > 0 {
			m.lock(now, m.block)
			return locked(1000*m.block, 1)
		}
		return reply(false, v, rest)
	}
	p := m.pttl(now)
	var v int64
	if p > period && op == OpAllow {
		m.v += n
		v = m.v
	} else if p > 0 {
		v = m.v
	}
	if p <= 0 {
		if op != OpAllow {
			return reply(true, 0, 0)
		}
		m.set(now, n, 2*period)
		return reply(true, n, period)
	}
	if v >= lockFloor {
		if op == OpAllow && p > period {
			m.v -= n
		}
		return locked(1000*p, 0)
	}
	if p > 2*period {
		p = 2 * period
		if op != OpPeek {
			m.e = now + p
		}
	}
	if p > period {
		rest := p - period
		if op == OpAllow {
			v -= n
		}
		cur := v % base
		prev := (v - cur) / base
		if op == OpRefund {
			back := min(cur, n)
			prev = max(0, prev-(n-back))
			nv := prev*base + cur - back
			if nv == 0 {
				m.has = false
			} else {
				m.v = nv
			}
			return reply(true, nv, rest)
		}
		if float64(prev)*float64(rest) <= float64(limit-cur-n)*float64(period) {
			if op == OpAllow {
				return reply(true, v+n, rest)
			}
			return reply(true, v, rest)
		}
		if op == OpAllow {
			m.v -= n
		}
		return deny(v, rest)
	}
	prev := v % base
	if op == OpRefund {
		left := max(0, prev-n)
		if left == 0 {
			m.has = false
		} else {
			m.v += left - prev
		}
		return reply(true, left*base, p)
	}
	if float64(prev)*float64(p) <= float64(limit-n)*float64(period) {
		if op == OpAllow {
			m.set(now, prev*base+n, p+period)
			return reply(true, prev*base+n, p)
		}
		return reply(true, prev*base, p)
	}
	return deny(prev*base, p)
}

// ceilDiv is a/b rounded up, for a >= 0 and b > 0.
func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }
