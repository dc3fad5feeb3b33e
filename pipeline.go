package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// coalescer turns concurrent Allow calls into pipelines: a call joins a
// queue, and while fewer than maxInFlight pipelines are under way the caller
// becomes the leader that sends everything queued as one pipeline (through
// the same path as AllowAll, NOSCRIPT handling included). While pipelines are
// in flight, the queue fills, so under load each round trip carries many
// decisions; a call that finds no queue and a free slot goes straight out, so
// a lone caller pays nothing for it. There are no background goroutines: a
// leader whose batch is done hands a non-empty queue to a new leader
// goroutine. One coalescer serves every limiter on a client (coalescerFor):
// a batch may mix limiters, views and rates.
type coalescer struct {
	mu          sync.Mutex
	maxInFlight int
	queue       []*pending
	inFlight    int
}

// raise lets at least n pipelines be in flight at once.
func (c *coalescer) raise(n int) {
	c.mu.Lock()
	c.maxInFlight = max(c.maxInFlight, n)
	c.mu.Unlock()
}

// pending is one coalesced call. Its deadline is one Timeout from the moment
// it was made, waiting in the queue included: its caller returns then
// whatever happens. A call whose caller gave up before its batch was sent is
// not sent (never charged); one in flight then may still be charged, once,
// and its pipeline's answer is dropped. Each call is finished (decided or
// failed, and observed) exactly once: by its leader or by its caller.
type pending struct {
	batchItem
	end    time.Time       // the call's deadline
	expiry context.Context // done at end (the epoch's context), or nil: a timer is needed
	state  atomic.Int32    // queued, sent, dropped or finished
	done   chan struct{}   // closed when the leader is done with the batch
}

// The states of a pending call: who finishes it.
const (
	queued   int32 = iota // waiting: a leader may send it, or its caller drop it
	sent                  // in a pipeline: the leader finishes it, unless its caller gives up first
	dropped               // finished by its caller, at its deadline
	finished              // finished by the leader
)

var (
	errNotSent = fmt.Errorf("pipelined call not sent before its deadline: %w", context.DeadlineExceeded)
	errNoReply = fmt.Errorf("pipelined call got no reply before its deadline: %w", context.DeadlineExceeded)
)

// claim reports whether the item is to be finished by the pipeline: true
// except for a coalesced call whose caller has given up on it.
func (it *batchItem) claim() bool {
	return it.state == nil || it.state.CompareAndSwap(sent, finished)
}

// allow decides a call of cost n on l's Redis keys.
func (c *coalescer) allow(ctx context.Context, l *Limiter, keys []string, n int) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	c.mu.Lock()
	if len(c.queue) == 0 && c.inFlight < c.maxInFlight {
		// Nothing to coalesce with: straight out, with no pending to build.
		c.inFlight++
		c.mu.Unlock()
		r, err := l.call(ctx, keys, n, OpAllow)
		c.handOver()
		return r, err
	}
	c.mu.Unlock()
	start := time.Now()
	p := newPending(l, keys, n, start)
	if c.enqueue(p) {
		// The batch holds p: led by this caller, finished on return.
		if p.state.Load() == finished {
			return p.res, p.err
		}
	}
	return c.await(ctx, p, start)
}

// allowAll decides items, whose limiters all use this coalescer, as queued
// calls that join the queue together: they ride one pipeline, with whatever
// other calls are queued (AllowAll from many goroutines merges). Each item
// gets its answer, or its own deadline's failure, as from allow.
func (c *coalescer) allowAll(ctx context.Context, items []*batchItem) {
	if err := ctx.Err(); err != nil {
		for _, it := range items {
			it.err = err
		}
		return
	}
	start := time.Now()
	ps := make([]*pending, len(items))
	for i, it := range items {
		ps[i] = newPending(it.l, it.keys, it.n, start)
	}
	c.enqueue(ps...)
	for i, p := range ps {
		items[i].res, items[i].err = c.await(ctx, p, start)
	}
}

// newPending makes a queued call started at start. Its deadline is its
// epoch's (see epochs), shared with the calls that started in the same
// Timeout/64: no timer of its own to wait on.
func newPending(l *Limiter, keys []string, n int, start time.Time) *pending {
	p := &pending{batchItem: batchItem{l: l, keys: keys, n: n}, end: start.Add(l.cfg.Timeout), done: make(chan struct{})}
	if p.expiry = l.epochs.get(start); p.expiry != nil {
		p.end, _ = p.expiry.Deadline()
	}
	p.batchItem.state = &p.state
	return p
}

// enqueue queues ps and, when a pipeline slot is free, leads the queue (ps
// included) as one batch; it reports whether it did.
func (c *coalescer) enqueue(ps ...*pending) bool {
	c.mu.Lock()
	c.queue = append(c.queue, ps...)
	var batch []*pending
	if c.inFlight < c.maxInFlight {
		c.inFlight++
		batch, c.queue = c.queue, nil
	}
	c.mu.Unlock()
	if batch == nil {
		return false
	}
	c.lead(batch)
	return true
}

// await returns p's answer once its leader is done with it, or gives up on
// it when ctx ends or p's deadline passes (never sent: never charged).
func (c *coalescer) await(ctx context.Context, p *pending, start time.Time) (Result, error) {
	// Another leader may be finishing p right now: its answer is read only
	// once done is closed (claim marks p finished before writing it).
	var expired <-chan struct{}
	var timeUp <-chan time.Time // only when epochs are off (a tiny Timeout)
	if p.expiry != nil {
		expired = p.expiry.Done()
	} else {
		timer := time.NewTimer(time.Until(p.end))
		defer timer.Stop()
		timeUp = timer.C
	}
	select {
	case <-p.done:
		if p.state.Load() == finished {
			return p.res, p.err
		}
	case <-ctx.Done():
	case <-expired:
	case <-timeUp:
	}
	// The caller gives up: its context ended, or its deadline passed.
	var err error
	switch {
	case p.state.CompareAndSwap(queued, dropped):
		err = errNotSent // never sent: never charged
	case p.state.CompareAndSwap(sent, dropped):
		err = errNoReply // may be charged, once
	default:
		<-p.done // finished by the leader meanwhile
		return p.res, p.err
	}
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return p.l.finish(ctx, p.keys, p.n, OpAllow, nil, err, false, time.Since(start))
}

// lead sends batch as one pipeline, then passes any calls queued meanwhile to
// a new leader, so that this caller returns as soon as its own batch is done.
func (c *coalescer) lead(batch []*pending) {
	items := make([]*batchItem, 0, len(batch))
	var end time.Time
	for _, p := range batch {
		if !p.state.CompareAndSwap(queued, sent) {
			continue // its caller gave up before it was sent
		}
		items = append(items, &p.batchItem)
		if end.IsZero() || p.end.Before(end) {
			end = p.end
		}
	}
	if len(items) > 0 {
		// The callers' contexts only bound their own waiting: the pipeline
		// runs until the earliest deadline of its calls.
		runGroup(context.Background(), items, end)
	}
	for _, p := range batch {
		close(p.done)
	}
	c.handOver()
}

// handOver ends a pipeline slot: the calls queued meanwhile go to a new
// leader goroutine, which keeps the slot, so that this caller returns now.
func (c *coalescer) handOver() {
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
