package ratelimit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// failoverRun is what a failover under load measured.
type failoverRun struct {
	admitted       []int64 // per key
	admittedAtKill int64   // all keys, read right after kill returned
	failed, ok     int64
	resumedAfter   time.Duration
	reloads        int // successful calls that fell back to EVAL
}

// over is the units admitted beyond limit, summed over the keys.
func (f failoverRun) over(limit int64) int64 {
	var over int64
	for _, a := range f.admitted {
		over += max(0, a-limit)
	}
	return over
}

// runFailover keeps workers calling l.Allow on keys, calls kill after 300ms,
// waits until decisions resume (failing t after 20s), keeps the load on for
// 300ms more and stops. rec must be l's Observer.
func runFailover(t *testing.T, l *Limiter, rec *recorder, keys []string, workers int, kill func()) failoverRun {
	t.Helper()
	admitted := make([]atomic.Int64, len(keys))
	var failed, ok, lastOK atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := (w + i) % len(keys)
				r, err := l.Allow(context.Background(), keys[k])
				if err != nil {
					failed.Add(1)
					time.Sleep(5 * time.Millisecond)
					continue
				}
				ok.Add(1)
				lastOK.Store(time.Now().UnixNano())
				if r.Allowed {
					admitted[k].Add(1)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	killedAt := time.Now()
	kill()
	var run failoverRun
	for i := range admitted {
		run.admittedAtKill += admitted[i].Load()
	}
	var resumed time.Time
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if lo := lastOK.Load(); lo > killedAt.Add(100*time.Millisecond).UnixNano() && failed.Load() > 0 {
			resumed = time.Unix(0, lo)
			break
		}
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if resumed.IsZero() {
		t.Fatalf("decisions did not resume within 20s of the kill (%d errors)", failed.Load())
	}
	run.resumedAfter = resumed.Sub(killedAt).Round(time.Millisecond)
	run.failed, run.ok = failed.Load(), ok.Load()
	for i := range admitted {
		run.admitted = append(run.admitted, admitted[i].Load())
	}
	for _, e := range rec.drain() {
		if e.ScriptReloaded && e.Err == nil {
			run.reloads++
		}
	}
	if run.reloads == 0 {
		t.Error("no call fell back to EVAL on the promoted replica")
	}
	return run
}
