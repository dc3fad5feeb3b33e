package ratelimit

import (
	"container/list"
	"sync"
)

// lru is a map of at most size keys that drops the least recently used key
// first. Safe for concurrent use; do runs fn under its lock.
type lru[V any] struct {
	mu    sync.Mutex
	size  int
	order *list.List // front: most recently used; values are *lruEntry[V]
	byKey map[string]*list.Element
}

type lruEntry[V any] struct {
	key string
	val V
}

func newLRU[V any](size int) *lru[V] {
	return &lru[V]{size: size, order: list.New(), byKey: make(map[string]*list.Element)}
}

// do calls fn with key's value (the zero V and false if absent). fn may change
// the value; keep reports whether to store it, and false removes the key.
func (c *lru[V]) do(key string, fn func(v *V, ok bool) (keep bool)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[key]
	var v V
	if ok {
		v = el.Value.(*lruEntry[V]).val
	}
	keep := fn(&v, ok)
	switch {
	case !keep && ok:
		c.order.Remove(el)
		delete(c.byKey, key)
	case keep && ok:
		el.Value.(*lruEntry[V]).val = v
		c.order.MoveToFront(el)
	case keep:
		if c.order.Len() >= c.size {
			oldest := c.order.Back()
			c.order.Remove(oldest)
			delete(c.byKey, oldest.Value.(*lruEntry[V]).key)
		}
		c.byKey[key] = c.order.PushFront(&lruEntry[V]{key: key, val: v})
	}
}

// len returns the number of keys.
func (c *lru[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
