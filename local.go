package ratelimit

import "time"

// localLimiter decides in this process, with the limiter's algorithm and its
// rates divided among Config.LocalInstances app servers, while Redis cannot
// (FailLocal). Each identity is a model (model.go): the scripts' arithmetic in
// Go, on this host's clock. Bounded: at most Config.LocalKeys keys, least
// recently used dropped first.
type localLimiter struct {
	keys      *lru[*model]
	instances int
	block     int64
}

func newLocalLimiter(cfg Config) *localLimiter {
	size := cfg.LocalKeys
	if size == 0 {
		size = DefaultLocalKeys
	}
	return &localLimiter{keys: newLRU[*model](size), instances: cfg.LocalInstances, block: ceilMillis(cfg.BlockFor)}
}

// divide returns rs with every Limit and Burst divided among the instances
// (at least 1 each).
func (l *localLimiter) divide(rs *rateSet) *rateSet {
	out := &rateSet{alg: rs.alg}
	for _, r := range rs.rates {
		r.Limit, r.Burst = max(1, r.Limit/l.instances), max(1, r.Burst/l.instances)
		out.rates = append(out.rates, r)
		out.shapes = append(out.shapes, rs.alg.shape(r))
	}
	return out
}

// decide answers a call of cost n on the identity whose first rate key is
// key, in this process, with the divided rates rs.
func (l *localLimiter) decide(rs *rateSet, key string, n int, op Op) Result {
	var raw any
	now := time.Now().UnixMilli()
	found := l.keys.update(key, func(m **model) bool {
		if len((*m).st) != len(rs.shapes) {
			*m = newModel(len(rs.shapes), l.block)
		}
		raw = (*m).step(rs, now, int64(n), op)
		return true
	})
	if !found {
		// Two callers may both miss and both put: the later fresh key wins,
		// which only forgets an instant of local state.
		m := newModel(len(rs.shapes), l.block)
		raw = m.step(rs, now, int64(n), op)
		l.keys.put(key, m)
	}
	// The model's replies are always well formed; a cost above a divided
	// Burst is denied locally rather than refused.
	r, err := rs.decode(raw, int64(n), op)
	if err != nil {
		r = Result{RetryAfter: time.Millisecond}
	}
	r.Outcome = OutcomeFailedLocal
	return r
}
