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
	m := model{alg: cfg.Algorithm, block: ceilMicros(cfg.BlockFor), limit: int64(burst), param: intervalMicros(limit, cfg.Period)}
	if cfg.Algorithm == SlidingWindow {
		m.limit, m.param = int64(limit), ceilMicros(cfg.Period)
	}
	size := cfg.LocalKeys
	if size == 0 {
		size = DefaultLocalKeys
	}
	return &localLimiter{keys: newLRU[*model](size), proto: m}
}

// decide answers a call of cost n on key in this process.
func (l *localLimiter) decide(key string, n int, op Op) Result {
	var rep reply
	now := time.Now().UnixMicro()
	found := l.keys.update(key, func(m **model) bool {
		rep = (*m).step(now, int64(n), op)
		return true
	})
	if !found {
		// Two callers may both miss and both put: the later fresh key wins,
		// which only forgets an instant of local state.
		m := l.proto
		rep = m.step(now, int64(n), op)
		l.keys.put(key, &m)
	}
	return Result{
		Allowed:     rep.allowed,
		Outcome:     OutcomeFailedLocal,
		Remaining:   int(rep.remaining),
		RetryAfter:  time.Duration(rep.retry) * time.Microsecond,
		ResetAfter:  time.Duration(rep.reset) * time.Microsecond,
		Delay:       time.Duration(rep.delay) * time.Microsecond,
		Locked:      rep.locked,
		LockStarted: rep.lockStarted,
	}
}
