package ratelimit

import "math"

// model is a pure-Go, in-memory copy of one key of one algorithm, computing
// exactly what the Lua scripts compute, operation for operation (integer µs for
// the buckets, the same float64 products for the sliding window). The
// differential tests drive a model and a script with the same calls and compare
// every reply. A model is not safe for concurrent use. Key expiry is not
// modelled: the scripts treat stale state exactly like a missing key, and
// every write sets a TTL no shorter than the state matters.
type model struct {
	alg   Algorithm
	param int64 // µs per unit (buckets) or the window period (SlidingWindow)
	limit int64 // Burst (buckets) or Limit (SlidingWindow)
	block int64 // lockout in µs

	has bool
	v   int64 // the stored integer (see the script's contract)
}

// reply is a decoded script reply, in µs.
type reply struct {
	allowed, locked, lockStarted   bool
	remaining, retry, reset, delay int64
}

func newModel(l *Limiter) *model {
	m := &model{alg: l.cfg.Algorithm, block: ceilMicros(l.cfg.BlockFor), limit: int64(l.cfg.Burst)}
	if m.alg == SlidingWindow {
		m.param = ceilMicros(l.cfg.Period)
	} else {
		m.param = intervalMicros(l.cfg.Limit, l.cfg.Period)
	}
	return m
}

// step answers one call of cost n at time now (µs) in the given mode.
func (m *model) step(now, n int64, op Op) reply {
	if m.alg == SlidingWindow {
		return m.window(now, n, op)
	}
	return m.bucket(now, n, op)
}

// lock locks the key until now + d.
func (m *model) lock(now, d int64) {
	m.has, m.v = true, -(now + d)
}

func (m *model) bucket(now, n int64, op Op) reply {
	interval := m.param
	capacity := m.limit * interval
	write := op == OpAllow && n > 0
	level := int64(0) // tat - now
	if m.has {
		if m.v < 0 {
			if left := -m.v - now; left > 0 {
				return reply{locked: true, retry: left, reset: left}
			}
		} else if m.v > now {
			level = min(m.v-now, capacity)
		}
	}
	if op == OpRefund {
		debt := max(0, level-n*interval)
		if debt > 0 {
			m.has, m.v = true, now+debt
		} else if level > 0 {
			m.has = false
		}
		return reply{allowed: true, remaining: (capacity - debt) / interval, reset: debt}
	}
	delay := int64(0)
	if m.alg == LeakyBucket {
		delay = level
	}
	after := level + n*interval
	if after <= capacity {
		if !write {
			return reply{allowed: true, remaining: (capacity - level) / interval, reset: level, delay: delay}
		}
		m.has, m.v = true, now+after
		return reply{allowed: true, remaining: (capacity - after) / interval, reset: after, delay: delay}
	}
	if m.block > 0 && write {
		m.has, m.v = true, -(now + m.block)
		return reply{locked: true, lockStarted: true, retry: m.block, reset: m.block}
	}
	return reply{remaining: (capacity - level) / interval, retry: after - capacity, reset: level}
}

func (m *model) window(now, n int64, op Op) reply {
	period, limit := m.param, m.limit
	write := op == OpAllow && n > 0
	w := now / period
	elapsed := now - w*period
	rest := period - elapsed
	base := limit + 1
	span := int64(math.Floor(math.Exp2(53) / float64(base*base)))
	var prev, cur int64
	if m.has {
		if m.v < 0 {
			if left := -m.v - now; left > 0 {
				return reply{locked: true, retry: left, reset: left}
			}
		} else {
			sc, sp := m.v%base, m.v/base%base
			switch age := ((w-m.v/(base*base))%span + span) % span; age {
			case 0, span - 1:
				prev, cur = sp, sc
			case 1:
				prev = sc
			}
		}
	}
	pack := func(prev, cur int64) { m.has, m.v = true, (w%span*base+prev)*base+cur }
	resetOf := func(prev, cur int64) int64 {
		switch {
		case cur > 0:
			return (w+2)*period - now
		case prev > 0:
			return rest
		}
		return 0
	}
	remainingOf := func(prev, cur int64) int64 {
		return max(0, limit-cur-int64(math.Ceil(float64(prev)*float64(rest)/float64(period))))
	}
	if op == OpRefund {
		back := min(cur, n)
		cur -= back
		prev = max(0, prev-(n-back))
		reset := resetOf(prev, cur)
		if reset > 0 {
			pack(prev, cur)
		} else {
			m.has = false
		}
		return reply{allowed: true, remaining: remainingOf(prev, cur), reset: reset}
	}
	room := limit - cur - n
	if float64(prev)*float64(rest) <= float64(room)*float64(period) {
		if write {
			cur += n
			pack(prev, cur)
		}
		return reply{allowed: true, remaining: remainingOf(prev, cur), reset: resetOf(prev, cur)}
	}
	if m.block > 0 && write {
		m.has, m.v = true, -(now + m.block)
		return reply{locked: true, lockStarted: true, retry: m.block, reset: m.block}
	}
	var retry int64
	if room >= 0 {
		e := period - int64(math.Floor(float64(room)*float64(period)/float64(prev)))
		if float64(prev)*float64(period-e) > float64(room)*float64(period) {
			e++
		}
		retry = e - elapsed
	} else {
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
	return reply{remaining: remainingOf(prev, cur), retry: retry, reset: resetOf(prev, cur)}
}
