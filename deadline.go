package ratelimit

import (
	"context"
	"sync/atomic"
	"time"
)

// epochs hands out the deadline contexts of calls. Instead of a context.WithDeadline (a
// context, a runtime timer and a channel) per call, one is made per epoch of
// Timeout/64 and shared by every call that starts in that epoch: a call's
// deadline is between its start + Timeout - Timeout/64 and its start +
// Timeout, never later than Config.Timeout allows. The contexts are real
// ones: Done closes and Err is set at the deadline, for go-redis's pool wait
// and for hooks. Each ends itself at its deadline; at most 64 are live.
type epochs struct {
	cur     atomic.Pointer[epoch]
	timeout time.Duration
	grain   time.Duration // 0: off, every call gets its own context
}

type epoch struct {
	ctx    context.Context
	cancel context.CancelFunc // unused: ctx ends at its deadline
	end    time.Time          // ctx's deadline
}

// minGrain keeps epochs off for Timeouts so short (< 64µs) that a context per
// call costs little next to them.
const minGrain = time.Microsecond

func (e *epochs) init(timeout time.Duration) {
	e.timeout, e.grain = timeout, timeout/64
	if e.grain < minGrain {
		e.grain = 0
	}
}

// get returns a context whose deadline is in (now+timeout-grain, now+timeout],
// or nil when epochs are off.
func (e *epochs) get(now time.Time) context.Context {
	if e.grain == 0 {
		return nil
	}
	latest := now.Add(e.timeout)
	if c := e.cur.Load(); c != nil && !c.end.After(latest) && c.end.After(latest.Add(-e.grain)) {
		return c.ctx
	}
	ctx, cancel := context.WithDeadline(context.Background(), latest)
	e.cur.Store(&epoch{ctx: ctx, cancel: cancel, end: latest})
	return ctx
}

// withValues is an epoch's context with the values of a caller's context
// (tracing spans and the like, for go-redis hooks).
type withValues struct {
	context.Context                 // the epoch: Deadline, Done, Err
	values          context.Context // the caller's
}

func (c *withValues) Value(key any) any { return c.values.Value(key) }
