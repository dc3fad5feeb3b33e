package ratelimit

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit/internal/redistest"
)

// TestCoalescerPerClient: limiters built by separate New calls on one client
// share one coalescer, with the largest Pipeline among them; another client
// has its own; Pipeline < 0 has none; and a client the program drops takes
// its entry with it.
func TestCoalescerPerClient(t *testing.T) {
	s := redistest.Start(t)
	c1, c2 := s.Client(t), s.Client(t)
	a := mustNew(t, c1, Config{Name: "share-a", Limit: 10, Period: time.Second})
	b := mustNew(t, c1, Config{Name: "share-b", Algorithm: SlidingWindow, Limit: 10, Period: time.Second, Pipeline: 9})
	v, err := a.With(PerHour(5))
	if err != nil {
		t.Fatal(err)
	}
	other := mustNew(t, c2, Config{Name: "share-a", Limit: 10, Period: time.Second})
	off := mustNew(t, c1, Config{Name: "share-off", Limit: 10, Period: time.Second, Pipeline: -1})
	switch {
	case a.co == nil || a.co != b.co || v.co != a.co:
		t.Errorf("limiters on one client: coalescers %p %p %p, want one", a.co, b.co, v.co)
	case other.co == a.co:
		t.Error("limiters on two clients share a coalescer")
	case off.co != nil:
		t.Error("Pipeline -1 has a coalescer")
	case a.co.maxInFlight != 9 || other.co.maxInFlight != DefaultPipeline:
		t.Errorf("in flight %d and %d, want 9 (the largest asked) and %d (the default)", a.co.maxInFlight, other.co.maxInFlight, DefaultPipeline)
	}

	k := func() weak.Pointer[redis.Client] {
		c := redis.NewClient(redistest.Options(s.Addr))
		mustNew(t, c, Config{Name: "gone", Limit: 1, Period: time.Second})
		c.Close()
		return weak.Make(c)
	}()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		runtime.GC()
		clientCoalescers.mu.Lock()
		_, kept := clientCoalescers.m[k]
		clientCoalescers.mu.Unlock()
		if !kept {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a dropped client's coalescer is still registered after 5s")
		}
	}
}

// pipelineNames records, for every pipeline a client sends, the limiter
// names in it (from the keys of its scripts).
type pipelineNames struct {
	countingHook
	mu    sync.Mutex
	mixed int // pipelines holding calls of more than one limiter
}

func (h *pipelineNames) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		names := map[string]bool{}
		for _, c := range cmds {
			if args := c.Args(); len(args) > 3 {
				key := fmt.Sprint(args[3]) // EVALSHA sha numkeys key...
				names[key[:max(0, strings.Index(key, ":{"))]] = true
			}
		}
		h.pipelines.Add(1)
		h.mu.Lock()
		if len(names) > 1 {
			h.mixed++
		}
		h.mu.Unlock()
		return next(ctx, cmds)
	}
}

// TestLimitersSharePipelines: while Redis is paused, calls of two limiters
// and a view on one client queue behind the calls in flight, and go out
// together when it answers: one round trip carries decisions of all three,
// each decided as on its own (exactly the limit admitted per key).
func TestLimitersSharePipelines(t *testing.T) {
	s := redistest.Start(t)
	c := s.Client(t)
	hook := &pipelineNames{}
	c.AddHook(hook)
	const limit = 20
	ls := []*Limiter{
		mustNew(t, c, Config{Name: "mix-tb", Limit: limit, Period: time.Hour, Timeout: 3 * time.Second}),
		mustNew(t, c, Config{Name: "mix-sw", Algorithm: SlidingWindow, Limit: limit, Period: time.Hour, Timeout: 3 * time.Second}),
	}
	v, err := ls[0].With(PerHour(limit / 2))
	if err != nil {
		t.Fatal(err)
	}
	ls = append(ls, v)
	ctx := context.Background()
	for _, l := range ls { // load the scripts: no NOSCRIPT round in the pipelines
		if _, err := l.Peek(ctx, "warm"); err != nil {
			t.Fatal(err)
		}
	}
	admin := s.Client(t)
	if err := admin.Do(ctx, "CLIENT", "PAUSE", "300", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	admitted := make([]atomic.Int64, len(ls))
	var wg sync.WaitGroup
	for w := 0; w < 48; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 3; i++ {
				j := (w + i) % len(ls)
				r, err := ls[j].Allow(ctx, fmt.Sprint("hot", j))
				if err != nil {
					t.Error(err)
					return
				}
				if r.Allowed {
					admitted[j].Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if hook.mixed == 0 {
		t.Errorf("no pipeline carried calls of more than one limiter (%d pipelines)", hook.pipelines.Load())
	}
	for j, want := range []int64{limit, limit, limit / 2} {
		if got := admitted[j].Load(); got != want {
			t.Errorf("limiter %d admitted %d of 48 calls on its key, want %d", j, got, want)
		}
	}
}

// TestAllowAllSharesPipelines: AllowAll calls from many goroutines join the
// client's queue of coalesced calls, so that while Redis is paused their
// requests ride a few pipelines together (one each before: 32), and each
// limiter still admits exactly its limit.
func TestAllowAllSharesPipelines(t *testing.T) {
	s := redistest.Start(t)
	c := s.Client(t)
	hook := &countingHook{}
	c.AddHook(hook)
	const limit, callers = 10, 32
	ls := []*Limiter{
		mustNew(t, c, Config{Name: "all-ip", Limit: limit, Period: time.Hour, Timeout: 3 * time.Second}),
		mustNew(t, c, Config{Name: "all-user", Algorithm: SlidingWindow, Limit: limit, Period: time.Hour, Timeout: 3 * time.Second}),
		mustNew(t, c, Config{Name: "all-pair", Algorithm: LeakyBucket, Limit: limit, Period: time.Hour, Timeout: 3 * time.Second}),
	}
	ctx := context.Background()
	for _, l := range ls { // load the scripts: no NOSCRIPT round in the pipelines
		if _, err := l.Peek(ctx, "warm"); err != nil {
			t.Fatal(err)
		}
	}
	admin := s.Client(t)
	if err := admin.Do(ctx, "CLIENT", "PAUSE", "300", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	hook.pipelines.Store(0)
	admitted := make([]atomic.Int64, len(ls))
	var wg sync.WaitGroup
	for w := 0; w < callers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reqs := make([]Request, len(ls))
			for j, l := range ls {
				reqs[j] = Request{Limiter: l, Key: "hot"}
			}
			res, errs := AllowAll(ctx, reqs...)
			for j, r := range res {
				if errs != nil && errs[j] != nil {
					t.Error(errs[j])
				} else if r.Allowed {
					admitted[j].Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := hook.pipelines.Load(); n >= callers/2 {
		t.Errorf("%d pipelines for %d concurrent AllowAll calls, want them merged (fewer than %d)", n, callers, callers/2)
	}
	for j := range ls {
		if got := admitted[j].Load(); got != limit {
			t.Errorf("limiter %d admitted %d of %d calls on one key, want %d", j, got, callers, limit)
		}
	}
}
