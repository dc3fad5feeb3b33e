package main

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// cell is one timed run of one subject at one concurrency on many keys or
// one hot key.
type cell struct {
	Decisions int64
	Allowed   int64
	Errors    int64
	FirstErr  string
	Elapsed   time.Duration
	P50, P99  time.Duration
	// RedisCPU and ClientCPU are the CPU seconds Redis and this process used
	// during the cell.
	RedisCPU, ClientCPU float64
	// ScriptCalls and ScriptUsec come from INFO commandstats for the subject's
	// Commands, reset before the cell.
	ScriptCalls, ScriptUsec int64
	// Stats is the cell's whole INFO commandstats but the harness's own INFO
	// and CONFIG: it counts the commands scripts call too.
	Stats map[string]cmdStat
	// Wrapped reports that some goroutine came back to the start of the key
	// list (many keys), so a key was used more than once in the cell.
	Wrapped bool
	// Created is the number of keys in the database after the cell, where
	// measured (the fresh-key cells, on a database emptied before each).
	Created int64
}

// PerSecond is decisions per second.
func (c cell) PerSecond() float64 {
	if c.Elapsed <= 0 {
		return 0
	}
	return float64(c.Decisions) / c.Elapsed.Seconds()
}

// perDecision returns seconds/decision in µs.
func (c cell) perDecision(sec float64) float64 {
	if c.Decisions == 0 {
		return 0
	}
	return sec * 1e6 / float64(c.Decisions)
}

// ScriptMicros is the subject's Redis command time per call in µs.
func (c cell) ScriptMicros() float64 {
	if c.ScriptCalls == 0 {
		return 0
	}
	return float64(c.ScriptUsec) / float64(c.ScriptCalls)
}

// runCell runs decide from conc goroutines for about dur. With hot, every call
// uses one key; otherwise goroutine g uses keys g, g+conc, g+2·conc, … so no
// two goroutines share a key (and, until Wrapped, no key is used twice).
func runCell(ctx context.Context, admin *redis.Client, s subject, decide decideFunc, keys []string, hotKey string, conc int, dur time.Duration, hot bool) (cell, error) {
	if err := admin.ConfigResetStat(ctx).Err(); err != nil {
		return cell{}, err
	}
	cpu0, err := redisCPU(ctx, admin)
	if err != nil {
		return cell{}, err
	}
	ru0 := selfCPU()

	var decisions, allowed, errs atomic.Int64
	var wrapped atomic.Bool
	var firstErr atomic.Value
	lats := make([][]time.Duration, conc)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1<<14)
			var nd, na, ne int64
			wrap := false
			idx := g
			<-gate
			end := time.Now().Add(dur)
			for {
				key := hotKey
				if !hot {
					wrap = wrap || idx >= len(keys)
					key = keys[idx%len(keys)]
					idx += conc
				}
				t0 := time.Now()
				ok, err := decide(ctx, key)
				t1 := time.Now()
				lat = append(lat, t1.Sub(t0))
				nd++
				if err != nil {
					ne++
					firstErr.CompareAndSwap(nil, err.Error())
				} else if ok {
					na++
				}
				if t1.After(end) {
					break
				}
			}
			decisions.Add(nd)
			allowed.Add(na)
			errs.Add(ne)
			if wrap {
				wrapped.Store(true)
			}
			lats[g] = lat
		}(g)
	}
	start := time.Now()
	close(gate)
	wg.Wait()
	elapsed := time.Since(start)

	ru1 := selfCPU()
	cpu1, err := redisCPU(ctx, admin)
	if err != nil {
		return cell{}, err
	}
	stats, err := commandStats(ctx, admin)
	if err != nil {
		return cell{}, err
	}
	all := slices.Concat(lats...)
	slices.Sort(all)
	c := cell{
		Decisions: decisions.Load(),
		Allowed:   allowed.Load(),
		Errors:    errs.Load(),
		Elapsed:   elapsed,
		P50:       quantile(all, 0.50),
		P99:       quantile(all, 0.99),
		RedisCPU:  cpu1 - cpu0,
		ClientCPU: ru1 - ru0,
		Stats:     make(map[string]cmdStat, len(stats)),
		Wrapped:   wrapped.Load(),
	}
	for name, st := range stats {
		if name != "info" && name != "config|resetstat" && name != "config" {
			c.Stats[name] = st
		}
	}
	if e, ok := firstErr.Load().(string); ok {
		c.FirstErr = e
	}
	for _, name := range s.Commands {
		st := stats[name]
		c.ScriptCalls += st.Calls
		c.ScriptUsec += st.Usec
	}
	return c, nil
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)-1))
	return sorted[i]
}

// selfCPU returns this process's user + system CPU time in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// memResult is what one key of a subject costs in Redis.
type memResult struct {
	Key         string  // the Redis key of user key keys[0]
	MemoryUsage int64   // MEMORY USAGE of Key
	PerKey      float64 // used_memory delta / n
	N           int
}

// measureMemory makes one decision on each of n fresh keys and reports the
// used_memory delta per key and the MEMORY USAGE of the first key.
func measureMemory(ctx context.Context, admin *redis.Client, decide decideFunc, keys []string, n int) (memResult, error) {
	if n > len(keys) {
		n = len(keys)
	}
	before, err := usedMemory(ctx, admin)
	if err != nil {
		return memResult{}, err
	}
	if err := parallel(16, n, func(i int) error {
		_, err := decide(ctx, keys[i])
		return err
	}); err != nil {
		return memResult{}, err
	}
	after, err := usedMemory(ctx, admin)
	if err != nil {
		return memResult{}, err
	}
	r := memResult{PerKey: float64(after-before) / float64(n), N: n}
	found, _, err := admin.Scan(ctx, 0, "*"+keys[0]+"*", 1_000_000).Result()
	if err != nil {
		return memResult{}, err
	}
	if len(found) > 0 {
		r.Key = found[0]
		r.MemoryUsage, err = admin.MemoryUsage(ctx, r.Key, 0).Result()
		if err != nil {
			return memResult{}, err
		}
	}
	return r, nil
}

// parallel runs f(0..n-1) on conc goroutines and returns the first error.
func parallel(conc, n int, f func(i int) error) error {
	var next atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, ok := first.Load().(error); ok {
		return err
	}
	return nil
}

// allocResult is the Go cost of one decision, on one goroutine.
type allocResult struct {
	Allocs     float64 // heap allocations per decision
	Bytes      float64 // heap bytes per decision
	RoundTrips float64 // client commands or pipelines sent per decision
}

// measureAllocs counts heap allocations over n sequential decisions (after a
// warm-up), and, on a client with a counting hook, round trips per decision.
func measureAllocs(ctx context.Context, decide, counted decideFunc, rt *rtCounter, keys []string, n int) (allocResult, error) {
	for i := 0; i < 100; i++ {
		if _, err := decide(ctx, keys[i%len(keys)]); err != nil {
			return allocResult{}, err
		}
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	for i := 0; i < n; i++ {
		if _, err := decide(ctx, keys[i%len(keys)]); err != nil {
			return allocResult{}, err
		}
	}
	runtime.ReadMemStats(&m1)
	r := allocResult{
		Allocs: float64(m1.Mallocs-m0.Mallocs) / float64(n),
		Bytes:  float64(m1.TotalAlloc-m0.TotalAlloc) / float64(n),
	}
	const rtCalls = 200
	for i := 0; i < 10; i++ { // load scripts on the counting client's path
		if _, err := counted(ctx, keys[i]); err != nil {
			return allocResult{}, err
		}
	}
	rt.n.Store(0)
	for i := 0; i < rtCalls; i++ {
		if _, err := counted(ctx, keys[i%len(keys)]); err != nil {
			return allocResult{}, err
		}
	}
	r.RoundTrips = float64(rt.n.Load()) / rtCalls
	return r, nil
}

// rtCounter is a go-redis hook that counts commands and pipelines sent.
type rtCounter struct{ n atomic.Int64 }

func (h *rtCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *rtCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *rtCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// burstResult is one concurrent burst on one fresh hot key.
type burstResult struct {
	Attempts, Admitted, Errors int
	FirstErr                   string
}

// measureBurst releases goroutines × attempts calls at once on one fresh key
// and counts admissions and errors.
func measureBurst(ctx context.Context, decide decideFunc, key string, goroutines, attempts int) burstResult {
	var admitted, errs atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			for i := 0; i < attempts; i++ {
				ok, err := decide(ctx, key)
				switch {
				case err != nil:
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				case ok:
					admitted.Add(1)
				}
			}
		}()
	}
	close(gate)
	wg.Wait()
	r := burstResult{Attempts: goroutines * attempts, Admitted: int(admitted.Load()), Errors: int(errs.Load())}
	if e, ok := firstErr.Load().(string); ok {
		r.FirstErr = e
	}
	return r
}

// userKeys returns n user keys of equal length: u0000000, u0000001, …
func userKeys(prefix string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s%07d", prefix, i)
	}
	return keys
}
