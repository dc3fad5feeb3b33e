package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// countingHook counts the commands and pipelines a client sends.
type countingHook struct{ cmds, pipelines atomic.Int64 }

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.cmds.Add(1)
		return next(ctx, cmd)
	}
}
func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.pipelines.Add(1)
		h.cmds.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

func TestAllowAll(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			hook := &countingHook{}
			c := b.newClient(t)
			c.AddHook(hook)
			cc, cluster := c.(*redis.ClusterClient)
			if cluster { // AllowAll pipelines to each primary through its node client
				cc.OnNewNode(func(n *redis.Client) { n.AddHook(hook) })
			}
			rec := newRecorder(t)
			ip := mustNew(t, c, Config{Name: "all.ip", Limit: 3, Period: time.Hour, Observer: rec})
			user := mustNew(t, c, Config{Name: "all.user", Algorithm: SlidingWindow, Limit: 2, Period: time.Hour, Observer: rec})
			pair := mustNew(t, c, Config{Name: "all.pair", Algorithm: LeakyBucket, Limit: 5, Period: time.Hour, BlockFor: time.Minute, Observer: rec})
			ctx := context.Background()
			reqs := []Request{{Limiter: ip, Key: "203.0.113.7"}, {Limiter: user, Key: "alice"}, {Limiter: pair, Key: "alice|203.0.113.7", N: 2}}
			nodes := 1 // pipelines per round trip: one per primary on a cluster
			if cluster {
				primaries := map[string]bool{}
				for _, r := range reqs {
					addr, err := masterOf(ctx, cc, r.Limiter.redisKey(r.Key))
					if err != nil {
						t.Fatal(err)
					}
					primaries[addr] = true
				}
				nodes = len(primaries)
			}
			want := [][3]bool{{true, true, true}, {true, true, true}, {true, false, false}}
			for round, w := range want {
				b.flushScripts(t) // every round starts with NOSCRIPT for all three
				before := hook.pipelines.Load()
				res, errs := AllowAll(ctx, reqs...)
				if errs != nil {
					t.Fatalf("round %d: %v", round, errs)
				}
				for i := range reqs {
					if res[i].Allowed != w[i] {
						t.Errorf("round %d request %d: %+v, want allowed %v", round, i, res[i], w[i])
					}
				}
				if p := hook.pipelines.Load() - before; p != int64(2*nodes) {
					t.Errorf("round %d: %d pipelines, want %d (EVALSHA, then EVAL for the NOSCRIPTs, on each of %d nodes)", round, p, 2*nodes, nodes)
				}
			}
			ev := rec.drain()
			reloads := 0
			for _, e := range ev {
				if e.ScriptReloaded {
					reloads++
				}
			}
			if len(ev) != 9 || reloads != 9 {
				t.Errorf("%d events, %d reloads; want 9 and 9", len(ev), reloads)
			}
			if !res(t, pair, "alice|203.0.113.7").Locked() {
				t.Error("the pair's denial did not start its lockout")
			}
			// Every request ran exactly once: the ip bucket (3) is empty, not overdrawn.
			if r := res(t, ip, "203.0.113.7"); r.Remaining != 0 || r.Allowed || r.RetryAfter > 20*time.Minute {
				t.Errorf("ip after 3 rounds: %+v, want empty after exactly 3 calls", r)
			}
		})
	}
}

func res(t *testing.T, l *Limiter, key string) Result {
	t.Helper()
	r, err := l.Peek(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestAllowAllErrors(t *testing.T) {
	f := &fakeScripter{reply: okReply}
	l := mustNew(t, f, Config{Name: "a", Limit: 5, Period: time.Second})
	down := mustNew(t, &fakeScripter{shaErr: errors.New("LOADING Redis is loading")}, Config{Name: "b", Limit: 5, Period: time.Second, OnFailure: FailClosed})
	res, errs := AllowAll(context.Background(),
		Request{Limiter: l, Key: "k"},
		Request{Limiter: l, Key: "k", N: 6},
		Request{Key: "k"},
		Request{Limiter: down, Key: "k"},
	)
	if errs == nil || errs[0] != nil || !errors.Is(errs[1], ErrInvalidCost) || !errors.Is(errs[2], ErrInvalidConfig) || errs[3] != nil {
		t.Fatalf("errs = %v", errs)
	}
	if !res[0].Allowed || res[3].Outcome != OutcomeFailedClosed {
		t.Errorf("results %+v", res)
	}
	// A fake Scripter has no pipelines: requests were sent one by one, and the bad ones not at all.
	if f.evalSha.Load() != 1 {
		t.Errorf("%d EVALSHA, want 1", f.evalSha.Load())
	}
}

// TestAllowAllExactness: many goroutines batching on one hot key admit exactly Limit.
func TestAllowAllExactness(t *testing.T) {
	for _, b := range realBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			a := mustNew(t, b.newClient(t), Config{Name: "batch-a", Limit: 50, Period: time.Hour})
			c := mustNew(t, a.client, Config{Name: "batch-c", Algorithm: SlidingWindow, Limit: 70, Period: time.Hour})
			var wg sync.WaitGroup
			var admittedA, admittedC atomic.Int64
			for g := 0; g < 32; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 5; i++ {
						res, errs := AllowAll(context.Background(), Request{Limiter: a, Key: "hot"}, Request{Limiter: c, Key: "hot"})
						if errs != nil {
							t.Error(errs)
							return
						}
						if res[0].Allowed {
							admittedA.Add(1)
						}
						if res[1].Allowed {
							admittedC.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			if admittedA.Load() != 50 || admittedC.Load() != 70 {
				t.Errorf("admitted %d and %d, want exactly 50 and 70", admittedA.Load(), admittedC.Load())
			}
		})
	}
}

func BenchmarkAllowAll(b *testing.B) {
	for _, size := range []int{1, 3} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			s := startBenchRedis(b)
			var reqs []Request
			for i := 0; i < size; i++ {
				l := benchLimiter(b, s, TokenBucket)
				reqs = append(reqs, Request{Limiter: l, Key: fmt.Sprint("k", i)})
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, errs := AllowAll(ctx, reqs...); errs != nil {
					b.Fatal(errs)
				}
			}
		})
	}
}

// TestPipelineNoScript flushes the script cache repeatedly while many
// goroutines make calls, one by one and pipelined: no call fails, and each is
// charged once.
func TestPipelineNoScript(t *testing.T) {
	for _, b := range realBackends(t) {
		for _, pipeline := range []int{-1, 0} { // off, and the default
			t.Run(fmt.Sprintf("%s/pipeline=%d", b.name, pipeline), func(t *testing.T) {
				rec := newRecorder(t)
				l := mustNew(t, b.newClient(t), Config{Name: fmt.Sprint("pipe-noscript-", pipeline), Limit: 1000, Period: time.Hour, Pipeline: pipeline, Observer: rec})
				var wg sync.WaitGroup
				var allowed atomic.Int64
				stop := make(chan struct{})
				go func() {
					for {
						select {
						case <-stop:
							return
						default:
							b.flushScripts(t)
							time.Sleep(time.Millisecond)
						}
					}
				}()
				for g := 0; g < 32; g++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := 0; i < 20; i++ {
							r, err := l.Allow(context.Background(), fmt.Sprint("k", i%3))
							if err != nil {
								t.Error(err)
								return
							}
							if r.Allowed {
								allowed.Add(1)
							}
						}
					}()
				}
				wg.Wait()
				close(stop)
				if allowed.Load() != 640 {
					t.Fatalf("%d admitted, want all 640", allowed.Load())
				}
				var charged int
				for i := 0; i < 3; i++ {
					r := res(t, l, fmt.Sprint("k", i))
					charged += 1000 - r.Remaining
				}
				if charged != 640 {
					t.Errorf("%d units charged for 640 calls", charged)
				}
				reloads := 0
				for _, e := range rec.drain() {
					if e.ScriptReloaded {
						reloads++
					}
				}
				t.Logf("%d of 640 calls fell back to EVAL", reloads)
				if reloads == 0 {
					t.Error("no call saw NOSCRIPT: the flush did not interleave")
				}
			})
		}
	}
}
