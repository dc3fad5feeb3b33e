package ratelimit

import (
	"container/list"
	"sync"
)

// lru is a map of at most size keys that drops the least recently used key
// first. Safe for concurrent use; update runs fn under its lock.
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

// update calls fn with a pointer to key's value, in place, under the lock, and
// reports whether key was present (fn is not called if not). fn returns false
// to remove the key. A hit allocates nothing.
func (c *lru[V]) update(key string, fn func(v *V) (keep bool)) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[key]
	if !ok {
		return false
	}
	if fn(&el.Value.(*lruEntry[V]).val) {
		c.order.MoveToFront(el)
	} else {
		c.order.Remove(el)
		delete(c.byKey, key)
	}
	return true
}

// put stores v for key, dropping the least recently used key when full.
func (c *lru[V]) put(key string, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[key]; ok {
		el.Value.(*lruEntry[V]).val = v
		c.order.MoveToFront(el)
		return
	}
	if c.order.Len() >= c.size {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.byKey, oldest.Value.(*lruEntry[V]).key)
	}
	c.byKey[key] = c.order.PushFront(&lruEntry[V]{key: key, val: v})
}

// remove drops key.
func (c *lru[V]) remove(key string) {
	c.update(key, func(*V) bool { return false })
}

// len returns the number of keys.
func (c *lru[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
