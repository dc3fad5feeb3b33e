package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed68425060/ratelimit/internal/redistest"
)

// TestSentinelFailover kills the primary (SIGKILL) of a Sentinel-managed pair
// while clients make decisions through redis.NewFailoverClient, with the
// replication stream held back (a lagging replica, the worst case of
// asynchronous replication). Sentinel promotes the replica, the failover
// client follows it, and decisions resume through the NOSCRIPT fallback with
// no code in the application. It measures the time without decisions, the
// errors, and the over-admission: every write the replica had not received is
// lost, so keys admit again what they had admitted during the lag. That is the
// promise, and the bound asserted: over-admission at most the admissions made
// during the replication lag.
func TestSentinelFailover(t *testing.T) {
	s := redistest.StartSentinel(t)
	rec := newRecorder()
	const limit = 100
	l := mustNew(t, s.Client(t), Config{Name: "sentinel", Limit: limit, Period: time.Hour, Timeout: 300 * time.Millisecond, Observer: rec})
	ctx := context.Background()
	if _, err := l.Peek(ctx, "warm"); err != nil {
		t.Fatal(err)
	}

	const keys = 8
	var admitted [keys]atomic.Int64
	var errCount, okCount, lastOK atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	s.Link.DelayReplies(time.Hour) // from now on the replica receives nothing
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := (w + i) % keys
				r, err := l.Allow(ctx, fmt.Sprintf("id-%d", k))
				if err != nil {
					errCount.Add(1)
					time.Sleep(5 * time.Millisecond)
					continue
				}
				okCount.Add(1)
				lastOK.Store(time.Now().UnixNano())
				if r.Allowed {
					admitted[k].Add(1)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	killedAt := time.Now()
	s.Primary.Kill()
	s.Link.Cut() // the writes held back die with the primary
	var duringLag int64
	for i := range admitted {
		duringLag += admitted[i].Load()
	}
	var resumed time.Time
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if lo := lastOK.Load(); lo > killedAt.Add(100*time.Millisecond).UnixNano() && errCount.Load() > 0 {
			resumed = time.Unix(0, lo)
			break
		}
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if resumed.IsZero() {
		t.Fatalf("decisions did not resume within 20s of killing the primary (%d errors)", errCount.Load())
	}
	if addr, err := s.MasterAddr(); err != nil || addr != s.Replica.Addr {
		t.Errorf("Sentinel reports primary %q (%v), want the promoted replica %s", addr, err, s.Replica.Addr)
	}
	reloads := 0
	for _, e := range rec.drain() {
		if e.ScriptReloaded && e.Err == nil {
			reloads++
		}
	}
	var over int64
	for i := range admitted {
		if a := admitted[i].Load(); a > limit {
			over += a - limit
		}
	}
	t.Logf("sentinel failover with the replica lagging 300ms: decisions resumed after %v; %d calls failed (policy FailError) and %d succeeded; %d NOSCRIPT fallbacks; %d units admitted during the lag, over-admission %d units over %d keys of limit %d",
		resumed.Sub(killedAt).Round(time.Millisecond), errCount.Load(), okCount.Load(), reloads, duringLag, over, keys, limit)
	if reloads == 0 {
		t.Error("no call fell back to EVAL on the promoted replica")
	}
	if over > duringLag {
		t.Errorf("over-admission %d units, more than the %d admitted during the replication lag", over, duringLag)
	}
	if over == 0 {
		t.Error("no over-admission although the replica lost every write of the lag: the test measured nothing")
	}
}
