package ratelimit

import (
	"runtime"
	"sync"
	"weak"

	"github.com/redis/go-redis/v9"
)

// coalescerFor returns the coalescer of client: one per client value, so that
// every Limiter built on one *redis.Client (ClusterClient, Ring) shares its
// pipelines, however many New calls made them (the middleware's limiters, the
// login guard's three scopes and the API limiter on one client ride the same
// round trips). The registry holds the client weakly: once the program drops
// a client, its entry goes with it. Other Scripters with a Pipeline method
// get a coalescer per Limiter; those without get none.
func coalescerFor(client redis.Scripter) *coalescer {
	switch c := client.(type) {
	case *redis.Client:
		return clientCoalescers.get(c)
	case *redis.ClusterClient:
		return clusterCoalescers.get(c)
	case *redis.Ring:
		return ringCoalescers.get(c)
	case pipeliner:
		return &coalescer{}
	}
	return nil
}

// The registries: process-wide by necessity, since the point is that
// separately built limiters find one another through their client. They
// hold no client alive and no state beyond the coalescers' queues.
var (
	clientCoalescers  coalescers[redis.Client]
	clusterCoalescers coalescers[redis.ClusterClient]
	ringCoalescers    coalescers[redis.Ring]
)

// coalescers maps clients of type T, held weakly, to their coalescer.
type coalescers[T any] struct {
	mu sync.Mutex
	m  map[weak.Pointer[T]]*coalescer
}

// get returns client's coalescer, making it on first use.
func (r *coalescers[T]) get(client *T) *coalescer {
	k := weak.Make(client)
	r.mu.Lock()
	defer r.mu.Unlock()
	if co, ok := r.m[k]; ok {
		return co
	}
	if r.m == nil {
		r.m = map[weak.Pointer[T]]*coalescer{}
	}
	co := &coalescer{}
	r.m[k] = co
	runtime.AddCleanup(client, r.forget, k)
	return co
}

// forget drops the entry of a client that is gone.
func (r *coalescers[T]) forget(k weak.Pointer[T]) {
	r.mu.Lock()
	delete(r.m, k)
	r.mu.Unlock()
}
