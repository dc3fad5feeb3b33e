package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit/internal/redistest"
)

func TestDenyCache(t *testing.T) {
	for _, b := range backends(t) {
		if b.name == "cluster" {
			continue // the cache is client-side: one backend of each kind is enough
		}
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			counting := &countingScripter{Scripter: b.client}
			var cached int
			obs := ObserverFunc(func(e Event) {
				if e.Cached {
					cached++
				}
			})
			l := mustNew(t, counting, Config{Name: "denycache", Limit: 2, Period: time.Hour, DenyCache: 3, Observer: obs})
			for i, want := range []bool{true, true, false} {
				if r, err := l.Allow(ctx, "flood"); err != nil || r.Allowed != want {
					t.Fatalf("call %d = %+v, %v", i, r, err)
				}
			}
			before := counting.calls.Load()
			var last time.Duration = time.Hour
			for i := 0; i < 100; i++ {
				r, err := l.Allow(ctx, "flood")
				if err != nil || r.Allowed || r.RetryAfter <= 0 || r.RetryAfter > last {
					t.Fatalf("flood call %d = %+v, %v; want denied with a shrinking RetryAfter", i, r, err)
				}
				last = r.RetryAfter
			}
			if n := counting.calls.Load() - before; n != 0 || cached != 100 {
				t.Errorf("a flood of 100 denied calls sent %d scripts (%d answered from the cache), want 0 and 100", n, cached)
			}
			// A smaller cost than the one denied may fit sooner: it asks Redis.
			l2 := mustNew(t, counting, Config{Name: "denycache2", Limit: 3, Period: time.Hour, DenyCache: 3})
			l2.AllowN(ctx, "k", 2)
			if r, _ := l2.AllowN(ctx, "k", 2); r.Allowed {
				t.Fatal("second AllowN(2) admitted")
			}
			before = counting.calls.Load()
			if r, _ := l2.AllowN(ctx, "k", 1); !r.Allowed || counting.calls.Load() != before+1 {
				t.Errorf("AllowN(1) after a denied AllowN(2) = %+v with %d scripts; want admitted by Redis", r, counting.calls.Load()-before)
			}
			// This instance's Refund drops the entry at once.
			l.Refund(ctx, "flood", 1)
			if r, _ := l.Allow(ctx, "flood"); !r.Allowed {
				t.Errorf("after Refund: %+v, want admitted", r)
			}
			// Bounded: at most 3 keys.
			for i := 0; i < 10; i++ {
				k := "key" + strconv.Itoa(i)
				l.AllowN(ctx, k, 2)
				l.Allow(ctx, k)
			}
			if n := l.denied.len(); n != 3 {
				t.Errorf("the cache holds %d keys, want its size, 3", n)
			}
		})
	}
}

func TestDenyCacheLockout(t *testing.T) {
	s := redistest.Start(t)
	counting := &countingScripter{Scripter: s.Client(t)}
	l := mustNew(t, counting, Config{Name: "denylock", Limit: 1, Period: time.Hour, BlockFor: 150 * time.Millisecond, DenyCache: 10})
	ctx := context.Background()
	l.Allow(ctx, "k")
	r, _ := l.Allow(ctx, "k")
	if !r.LockStarted {
		t.Fatalf("second call = %+v, want a lockout started", r)
	}
	before := counting.calls.Load()
	if r, _ := l.Peek(ctx, "k"); !r.Locked() { // Peek always asks Redis
		t.Errorf("Peek = %+v, want locked", r)
	}
	for i := 0; i < 20; i++ {
		if r, _ := l.Allow(ctx, "k"); !r.Locked() || r.Outcome != OutcomeLockedOut {
			t.Fatalf("call %d during the lock = %+v", i, r)
		}
	}
	if n := counting.calls.Load() - before; n != 1 {
		t.Errorf("%d scripts during the lock, want 1 (the Peek)", n)
	}
	time.Sleep(160 * time.Millisecond)
	before = counting.calls.Load()
	// The state under the lock was kept (1 per hour, spent): Redis is asked
	// again and the denial locks again.
	if r, _ := l.Allow(ctx, "k"); !r.LockStarted {
		t.Errorf("after the lock: %+v, want a new lockout (the state was kept)", r)
	}
	if n := counting.calls.Load() - before; n != 1 {
		t.Errorf("%d scripts after the lock, want 1", n)
	}
}

// BenchmarkDenyCache floods one denied key, with and without the cache, and
// reports the scripts Redis ran per decision.
func BenchmarkDenyCache(b *testing.B) {
	s := redistest.Start(b)
	c := s.Client(b)
	for _, size := range []int{0, 1000} {
		b.Run(fmt.Sprintf("cache=%d", size), func(b *testing.B) {
			l := mustNew(b, c, Config{Name: fmt.Sprint("flood", size), Limit: 1, Period: time.Hour, DenyCache: size})
			ctx := context.Background()
			l.Allow(ctx, "attacker")
			before := evalCalls(b, c)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if r, err := l.Allow(ctx, "attacker"); err != nil || r.Allowed {
						b.Fatalf("%+v, %v", r, err)
					}
				}
			})
			b.ReportMetric(float64(evalCalls(b, c)-before)/float64(b.N), "redis-scripts/op")
		})
	}
}

// evalCalls is how many EVALSHA and EVAL commands the server has run.
func evalCalls(b *testing.B, c *redis.Client) int64 {
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, line := range strings.Split(info, "\n") {
		if strings.HasPrefix(line, "cmdstat_evalsha:") || strings.HasPrefix(line, "cmdstat_eval:") {
			rest := line[strings.Index(line, "calls=")+6:]
			v, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
			n += v
		}
	}
	return n
}
