package ratelimit

import "time"

// denyCache remembers denials that Redis returned, for their RetryAfter, so
// that a flood on a denied key costs no Redis round trip. Bounded: at most
// Config.DenyCache keys, the least recently used dropped first.
type denyCache struct {
	entries *lru[denyEntry]
}

type denyEntry struct {
	until  time.Time // the denial holds until then
	n      int       // the cost Redis denied; a smaller cost may fit sooner
	locked bool      // a lockout denies every cost
}

func newDenyCache(size int) *denyCache { return &denyCache{entries: newLRU[denyEntry](size)} }

// get returns the remembered denial of a call of cost n on key at now.
func (c *denyCache) get(key string, n int, now time.Time) (r Result, hit bool) {
	c.entries.update(key, func(e *denyEntry) bool {
		if !now.Before(e.until) {
			return false // expired
		}
		if e.locked || n >= e.n {
			left := e.until.Sub(now)
			r, hit = Result{Outcome: OutcomeDenied, RetryAfter: left, ResetAfter: left}, true
			if e.locked {
				r.Outcome = OutcomeLockedOut
			}
		}
		return true
	})
	return r, hit
}

// put remembers that Redis denied a call of cost n on key until until.
func (c *denyCache) put(key string, n int, until time.Time, locked bool) {
	c.entries.put(key, denyEntry{until: until, n: n, locked: locked})
}

// forget drops key: its state changed on this instance (Refund, Lock, Reset).
func (c *denyCache) forget(key string) { c.entries.remove(key) }

// len returns the number of keys remembered.
func (c *denyCache) len() int { return c.entries.len() }
