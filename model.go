package ratelimit

// model is a pure-Go, in-memory copy of one identity's keys (its lock and
// one state per rate), computing exactly what the Lua scripts compute, path
// for path (gcra.step, window.step), and giving the same raw reply
// (rateSet.decode reads both). Time is a millisecond clock, like the key
// expiry the scripts read with PTTL. The differential tests drive a model
// and a script with the same calls and compare every reply and the stored
// state; FailLocal runs one model per identity on this host's clock. A model
// is not safe for concurrent use.
type model struct {
	lock  keyState
	st    []keyState // one per rate, in the rate set's order
	block int64      // lockout after a denial in ms; 0: none
}

// keyState is one Redis key of the model: whether it exists, its integer and
// its expiry (ms on the model's clock).
type keyState struct {
	has bool
	v   int64
	e   int64
}

// pttl is what PTTL answers at now: the ms until the key expires, or -2 when
// there is no key (Redis keeps a key up to and including its expiry ms).
func (k *keyState) pttl(now int64) int64 {
	if k.has && k.e >= now {
		return k.e - now
	}
	return -2
}

// set is SET with PX ms at now.
func (k *keyState) set(now, v, ms int64) { k.has, k.v, k.e = true, v, now+ms }

func newModel(rates int, block int64) *model {
	return &model{st: make([]keyState, rates), block: block}
}

// step answers one call of cost n at now (ms) in the given mode, returning
// the script's raw reply.
func (m *model) step(rs *rateSet, now, n int64, op Op) any {
	return rs.alg.step(m, rs.shapes, now, n, op)
}

// lockFor locks the identity for ms from now, as Lock does.
func (m *model) lockFor(now, ms int64) { m.lock.set(now, 1, ms) }

// lockReply is a script's reply while locked.
func lockReply(leftMicros, started int64) []any { return []any{"lock", leftMicros, started} }

// rateReply is a script's reply from its per-rate replies: the one reply
// itself for one rate.
func rateReply(out []any) any {
	if len(out) == 1 {
		return out[0]
	}
	return out
}

// ceilDiv is a/b rounded up, for a >= 0 and b > 0.
func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }
