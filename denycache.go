package ratelimit

import (
	"container/list"
	"sync"
	"time"
)

// denyCache remembers denials that Redis returned, for their RetryAfter, so
// that a flood on a denied key costs no Redis round trip. It is a bounded LRU:
// at most size keys, the least recently used dropped first. Safe for
// concurrent use.
type denyCache struct {
	mu    sync.Mutex
	size  int
	order *list.List // front: most recently used; values are *denyEntry
	byKey map[string]*list.Element
}

type denyEntry struct {
	key    string
	until  time.Time // the denial holds until then
	n      int       // the cost Redis denied; a smaller cost may fit sooner
	locked bool      // a lockout denies every cost
}

func newDenyCache(size int) *denyCache {
	return &denyCache{size: size, order: list.New(), byKey: make(map[string]*list.Element, size)}
}

// get returns the remembered denial of a call of cost n on key at now.
func (c *denyCache) get(key string, n int, now time.Time) (Result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[key]
	if !ok {
		return Result{}, false
	}
	e := el.Value.(*denyEntry)
	if !now.Before(e.until) {
		c.order.Remove(el)
		delete(c.byKey, key)
		return Result{}, false
	}
	if !e.locked && n < e.n {
		return Result{}, false
	}
	c.order.MoveToFront(el)
	left := e.until.Sub(now)
	r := Result{Outcome: OutcomeDenied, RetryAfter: left, ResetAfter: left, Locked: e.locked}
	if e.locked {
		r.Outcome = OutcomeLockedOut
	}
	return r, true
}

// put remembers that Redis denied a call of cost n on key until until.
func (c *denyCache) put(key string, n int, until time.Time, locked bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[key]; ok {
		*el.Value.(*denyEntry) = denyEntry{key: key, until: until, n: n, locked: locked}
		c.order.MoveToFront(el)
		return
	}
	if c.order.Len() >= c.size {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.byKey, oldest.Value.(*denyEntry).key)
	}
	c.byKey[key] = c.order.PushFront(&denyEntry{key: key, until: until, n: n, locked: locked})
}

// forget drops key: its state changed on this instance (Refund, Lock, Reset).
func (c *denyCache) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[key]; ok {
		c.order.Remove(el)
		delete(c.byKey, key)
	}
}

// len returns the number of keys remembered.
func (c *denyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
