package ratelimit

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit/internal/redistest"
)

// TestFailLocal: with Redis unreachable, FailLocal decides in the process with
// the same algorithm and the limit divided by LocalInstances, in bounded memory.
func TestFailLocal(t *testing.T) {
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, ContextTimeoutEnabled: true})
	defer down.Close()
	ctx := context.Background()
	for _, alg := range []Algorithm{TokenBucket, LeakyBucket, SlidingWindow} {
		t.Run(alg.String(), func(t *testing.T) {
			rec := newRecorder(t)
			l := mustNew(t, down, Config{Name: "local", Algorithm: alg, Limit: 10, Period: time.Hour,
				OnFailure: FailLocal, LocalInstances: 2, LocalKeys: 3, Observer: rec})
			for i := 0; i < 6; i++ {
				r, err := l.Allow(ctx, "k")
				if err != nil || r.Outcome != OutcomeFailedLocal || r.Allowed != (i < 5) {
					t.Fatalf("call %d = %+v, %v; want decided locally, 5 of 10/2 admitted", i, r, err)
				}
			}
			if r, _ := l.Peek(ctx, "k"); r.Allowed || r.RetryAfter <= 0 {
				t.Errorf("Peek = %+v, want denied with a RetryAfter", r)
			}
			for i := 0; i < 10; i++ {
				l.Allow(ctx, "other"+strconv.Itoa(i))
			}
			if n := l.locals.keys.len(); n != 3 {
				t.Errorf("local limiter holds %d keys, want LocalKeys = 3", n)
			}
			for _, e := range rec.drain() {
				if e.Outcome != OutcomeFailedLocal || ErrorKind(e.Err) != KindConnection {
					t.Fatalf("event %+v, want failed_local with the connection error", e)
				}
			}
		})
	}
}

// TestFailLocalWideWindow decides locally on a SlidingWindow too wide to pack
// its reply into one integer: the model's string reply decodes as Redis's does.
func TestFailLocalWideWindow(t *testing.T) {
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, ContextTimeoutEnabled: true})
	defer down.Close()
	l := mustNew(t, down, Config{Name: "wide", Algorithm: SlidingWindow, Limit: 2_000_000, Period: 100 * 24 * time.Hour,
		OnFailure: FailLocal, LocalInstances: 2})
	if l.local.shapes[0].packed {
		t.Fatal("the local limiter's window packs; this test needs one that does not")
	}
	for i := 1; i <= 3; i++ {
		r, err := l.AllowN(context.Background(), "k", 10)
		if err != nil || !r.Allowed || r.Outcome != OutcomeFailedLocal || r.Remaining != 1_000_000-10*i {
			t.Fatalf("call %d = %+v, %v; want decided locally, %d of 1,000,000 left", i, r, err, 1_000_000-10*i)
		}
	}
}

// TestFailLocalTakesOver kills a real Redis mid-test: decisions move to the
// local limiter, which starts fresh (its state is per process).
func TestFailLocalTakesOver(t *testing.T) {
	s := redistest.Start(t)
	l := mustNew(t, s.Client(t), Config{Name: "takeover", Limit: 4, Period: time.Hour, Timeout: 200 * time.Millisecond, OnFailure: FailLocal, LocalInstances: 2})
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		if r, err := l.Allow(ctx, "k"); err != nil || r.Outcome != OutcomeAllowed {
			t.Fatalf("call %d on Redis = %+v, %v", i, r, err)
		}
	}
	s.Kill()
	var allowed int
	for i := 0; i < 5; i++ {
		r, err := l.Allow(ctx, "k")
		if err != nil || r.Outcome != OutcomeFailedLocal {
			t.Fatalf("call %d with Redis down = %+v, %v", i, r, err)
		}
		if r.Allowed {
			allowed++
		}
	}
	if allowed != 2 {
		t.Errorf("%d admitted locally, want 2 (4 / 2 instances)", allowed)
	}
}
