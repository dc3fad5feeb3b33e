package ratelimit

import "time"

// DefaultLocalKeys is the number of keys FailLocal keeps when Config.LocalKeys is zero.
const DefaultLocalKeys = 10_000

// localLimiter decides in this process, with the limiter's algorithm and its
// limit divided among Config.LocalInstances app servers, while Redis cannot
// (FailLocal). Each key is a model (model.go): the scripts' arithmetic in Go,
// on this host's clock. Bounded: at most Config.LocalKeys keys, least recently
// used dropped first.
type localLimiter struct {
	keys  *lru[*model]
	proto model // a fresh key
}

func newLocalLimiter(cfg Config) *localLimiter {
	limit := max(1, cfg.Limit/cfg.LocalInstances)
	burst := max(1, cfg.Burst/cfg.LocalInstances)
	size := cfg.LocalKeys
	if size == 0 {
		size = DefaultLocalKeys
	}
	return &localLimiter{keys: newLRU[*model](size), proto: model{shape: newShape(cfg.Algorithm, limit, burst, cfg.Period, cfg.BlockFor)}}
}

// decide answers a call of cost n on key in this process.
func (l *localLimiter) decide(key string, n int, op Op) Result {
	var raw any
	now := time.Now().UnixMilli()
	found := l.keys.update(key, func(m **model) bool {
		raw = (*m).step(now, int64(n), op)
		return true
	})
	if !found {
		// Two callers may both miss and both put: the later fresh key wins,
		// which only forgets an instant of local state.
		m := l.proto
		raw = m.step(now, int64(n), op)
		l.keys.put(key, &m)
	}
	// The model's replies are always well formed.
	r, _ := l.proto.decode(raw, int64(n), op)
	r.Outcome = OutcomeFailedLocal
	return r
}
