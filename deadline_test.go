package ratelimit

import (
	"context"
	"testing"
	"time"
)

// TestEpochDeadlines: every call gets a deadline no later than Timeout after
// its start and at most Timeout/64 sooner, calls of one epoch share a
// context, and a shared context really ends at its deadline.
func TestEpochDeadlines(t *testing.T) {
	const timeout = 64 * time.Millisecond
	var e epochs
	e.init(timeout)
	start := time.Now()
	first := e.get(start)
	for _, after := range []time.Duration{0, time.Microsecond, time.Millisecond / 2, 2 * time.Millisecond, 50 * time.Millisecond} {
		now := start.Add(after)
		ctx := e.get(now)
		dl, ok := ctx.Deadline()
		if !ok || dl.After(now.Add(timeout)) || !dl.After(now.Add(timeout-timeout/64)) {
			t.Errorf("call at +%v: deadline %v after its start, want in (%v, %v]", after, dl.Sub(now), timeout-timeout/64, timeout)
		}
		if shared := ctx == first; shared != (after < timeout/64) {
			t.Errorf("call at +%v: shares the first epoch's context = %v", after, shared)
		}
	}
	select {
	case <-first.Done():
		t.Fatal("the epoch ended before its deadline")
	default:
	}
	select {
	case <-first.Done():
		if first.Err() != context.DeadlineExceeded {
			t.Errorf("Err = %v, want DeadlineExceeded", first.Err())
		}
	case <-time.After(time.Second):
		t.Fatal("the epoch's context did not end at its deadline")
	}
}

type ctxKey struct{}

// TestDeadlineContexts: a caller's values reach go-redis (hooks) through the
// shared deadline, a caller's own sooner deadline serves as it is, and a
// later one is cut to Timeout.
func TestDeadlineContexts(t *testing.T) {
	l := mustNew(t, &fakeScripter{}, Config{Name: "dl", Limit: 1, Period: time.Second, Timeout: 100 * time.Millisecond})
	now := time.Now()

	withValue, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "span"))
	defer cancel()
	ctx, done := l.deadline(withValue, now)
	done()
	if ctx.Value(ctxKey{}) != "span" {
		t.Errorf("the caller's value is lost")
	}
	if dl, ok := ctx.Deadline(); !ok || dl.After(now.Add(100*time.Millisecond)) {
		t.Errorf("deadline %v, %v; want within Timeout", dl, ok)
	}

	sooner, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	if ctx, done := l.deadline(sooner, now); ctx != sooner {
		t.Errorf("a caller's sooner deadline was replaced")
	} else {
		done()
	}

	later, cancel3 := context.WithTimeout(context.Background(), time.Hour)
	defer cancel3()
	ctx, done = l.deadline(later, now)
	done()
	if dl, _ := ctx.Deadline(); dl.After(now.Add(100 * time.Millisecond)) {
		t.Errorf("a caller's later deadline was kept: %v", dl.Sub(now))
	}
}
