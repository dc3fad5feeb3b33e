package ratelimit

import (
	"context"
	"sync"
)

// coalescer turns concurrent Allow calls of one Limiter into pipelines: a
// call joins a queue, and while fewer than maxInFlight pipelines are under way
// the caller becomes the leader that sends everything queued as one pipeline
// (through the same path as AllowAll, NOSCRIPT handling included). While
// pipelines are in flight, the queue fills, so under load each round trip
// carries many decisions. There are no background goroutines: a leader whose
// batch is done hands a non-empty queue to a new leader goroutine.
type coalescer struct {
	maxInFlight int

	mu       sync.Mutex
	queue    []*pending
	inFlight int
}

// pending is one coalesced call.
type pending struct {
	batchItem
	done chan struct{}
}

// allow decides a call of cost n on l's Redis keys.
func (c *coalescer) allow(ctx context.Context, l *Limiter, keys []string, n int) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	p := &pending{batchItem: batchItem{l: l, keys: keys, n: n}, done: make(chan struct{})}
	c.mu.Lock()
	c.queue = append(c.queue, p)
	var batch []*pending
	if c.inFlight < c.maxInFlight {
		c.inFlight++
		batch, c.queue = c.queue, nil
	}
	c.mu.Unlock()
	if batch != nil {
		c.lead(batch)
	}
	select {
	case <-p.done:
		return p.res, p.err
	case <-ctx.Done():
		// The call may still be decided (and charged) in its pipeline.
		return Result{}, ctx.Err()
	}
}

// lead sends batch as one pipeline, then passes any calls queued meanwhile to
// a new leader, so that this caller returns as soon as its own batch is done.
func (c *coalescer) lead(batch []*pending) {
	items := make([]*batchItem, len(batch))
	for i, p := range batch {
		items[i] = &p.batchItem
	}
	// The callers' contexts only bound their own waiting: the pipeline runs
	// under the Limiter's Timeout.
	runGroup(context.Background(), items)
	for _, p := range batch {
		close(p.done)
	}
	c.mu.Lock()
	next := c.queue
	c.queue = nil
	if len(next) == 0 {
		c.inFlight--
	}
	c.mu.Unlock()
	if len(next) > 0 {
		go c.lead(next)
	}
}
