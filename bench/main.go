// Command bench measures this library against its Go peers on one Redis that
// it starts itself, in one run, and writes BENCHMARKS.md and an SVG chart.
//
//	cd bench && go run .
//
// It lives in its own module so that users of the library never download the
// peers. See -h for the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

// options are the command's flags.
type options struct {
	Reps        int
	Duration    time.Duration
	Concs       []int
	Keys        int
	FreshKeys   int
	MemKeys     int
	AllocCalls  int
	BurstLimit  int
	BurstG      int
	BurstEach   int
	Out         string
	Chart       string
	RedisServer string
	Only        string
	CPUProfile  string
	LoneCalls   int
}

func defaultOptions() options {
	return options{
		Reps:        15,
		Duration:    500 * time.Millisecond,
		Concs:       []int{1, 16, 64},
		Keys:        10_000,
		FreshKeys:   200_000,
		MemKeys:     10_000,
		AllocCalls:  2000,
		BurstLimit:  100,
		BurstG:      64,
		BurstEach:   10,
		Out:         "../BENCHMARKS.md",
		Chart:       "chart.svg",
		RedisServer: "redis-server",
		LoneCalls:   60,
	}
}

func main() {
	o := defaultOptions()
	concs := "1,16,64"
	flag.IntVar(&o.Reps, "reps", o.Reps, "repetitions of every timed cell (the median is shown)")
	flag.DurationVar(&o.Duration, "duration", o.Duration, "length of one timed cell")
	flag.StringVar(&concs, "conc", concs, "comma-separated goroutine counts")
	flag.IntVar(&o.Keys, "keys", o.Keys, "number of distinct keys in the many-keys cells")
	flag.IntVar(&o.FreshKeys, "freshkeys", o.FreshKeys, "unique keys per repetition for the fresh-key cells (no key may repeat within a cell)")
	flag.IntVar(&o.MemKeys, "memkeys", o.MemKeys, "keys written to measure the used_memory delta")
	flag.IntVar(&o.AllocCalls, "alloccalls", o.AllocCalls, "sequential decisions over which allocations are counted")
	flag.IntVar(&o.BurstLimit, "burst-limit", o.BurstLimit, "limit (per hour) in the hot-key burst exactness test")
	flag.IntVar(&o.BurstG, "burst-goroutines", o.BurstG, "goroutines in the hot-key burst")
	flag.IntVar(&o.BurstEach, "burst-attempts", o.BurstEach, "calls per goroutine in the hot-key burst")
	flag.StringVar(&o.Out, "out", o.Out, "Markdown report to write (empty: stdout only)")
	flag.StringVar(&o.Chart, "chart", o.Chart, "SVG chart to write (empty: none)")
	flag.StringVar(&o.RedisServer, "redis-server", o.RedisServer, "redis-server binary")
	flag.IntVar(&o.LoneCalls, "lone", o.LoneCalls, "calls of the lone caller (one a second) per subject; 0: none")
	flag.StringVar(&o.Only, "only", o.Only, "comma-separated substrings: measure only subjects whose name contains one")
	flag.StringVar(&o.CPUProfile, "cpuprofile", o.CPUProfile, "write a CPU profile of the timed cells to this file")
	flag.Parse()
	var err error
	if o.Concs, err = parseInts(concs); err != nil {
		fmt.Fprintln(os.Stderr, "bench: -conc:", err)
		os.Exit(2)
	}
	cmd := "cd bench && go run ."
	if len(os.Args) > 1 {
		cmd += " " + strings.Join(os.Args[1:], " ")
	}
	if err := run(context.Background(), o, cmd, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// throughputLimit is the throughput cells' limit: one event per hour, longer
// than any run, so a bucket never refills between two calls on a key (which
// at many keys are seconds apart: every other subject's cells run between),
// and every timed call is an admission on a key in use, for every subject:
// the buckets' PTTL + INCRBY path. (At one event per 3.6s, a bucket was full
// again at nearly every call, and restarting it took a third Redis call.)
// The burst, 800000, is more than one repetition's calls on a hot key (each
// repetition has its own, hotKey), and 800000 hours stay within the
// library's 100-year bound on Period.
var throughputLimit = limitSpec{Limit: 800_000, Period: 800_000 * time.Hour}

// hotKey is repetition r's hot key. One key for the whole run would take
// every repetition's calls, and a fast machine ran it out (a pipelined
// token bucket made about 180,000 calls per repetition on it).
func hotKey(r int) string { return fmt.Sprintf("hot%d", r) }

// run starts a redis-server, measures every subject, and writes the report.
func run(ctx context.Context, o options, command string, progress io.Writer) error {
	srv, err := startServer(o.RedisServer)
	if err != nil {
		return err
	}
	defer srv.stop()
	rep, err := measureAll(ctx, o, srv.Addr, progress)
	if err != nil {
		return err
	}
	rep.Command = command
	rep.Started = time.Now().UTC()
	if o.Chart != "" {
		if err := os.WriteFile(o.Chart, []byte(rep.chartSVG()), 0o644); err != nil {
			return err
		}
	}
	md := rep.markdown(o)
	if o.Out == "" {
		_, err := io.WriteString(os.Stdout, defaultPreamble+"\n"+md)
		return err
	}
	return writeReport(o.Out, md)
}

// measureAll runs every measurement on the server at addr.
func measureAll(ctx context.Context, o options, addr string, progress io.Writer) (*report, error) {
	maxConc := 1
	for _, c := range o.Concs {
		maxConc = max(maxConc, c)
	}
	client := newClient(addr, 2*maxConc)
	defer client.Close()
	admin := newClient(addr, 2)
	defer admin.Close()
	rt := &rtCounter{}
	counting := newHookedClient(addr, 2, rt)
	defer counting.Close()

	rep := &report{Opts: o, Env: environment(ctx, admin)}
	for _, s := range subjects() {
		if o.Only != "" && !matchesAny(s.Name, o.Only) {
			continue
		}
		rep.Subjects = append(rep.Subjects, &subjectResult{S: s, Cells: map[cellKey][]cell{}})
	}
	if len(rep.Subjects) == 0 {
		return nil, errors.New("no subject selected")
	}
	keys := userKeys("u", max(o.Keys, o.MemKeys))
	throughput := throughputLimit
	rep.Throughput = throughput
	if err := admin.FlushAll(ctx).Err(); err != nil {
		return nil, err
	}

	// Deciders for the timed cells, plus a warm-up that loads the scripts,
	// fills the connection pool and creates every key once.
	deciders := make([]decideFunc, len(rep.Subjects))
	for i, sr := range rep.Subjects {
		d, err := sr.S.New(ctx, client, throughput)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sr.S.Name, err)
		}
		deciders[i] = d
		warm := keys[:o.Keys:o.Keys]
		for r := 0; r < o.Reps; r++ {
			warm = append(warm, hotKey(r))
		}
		if err := parallel(maxConc, len(warm), func(i int) error {
			_, err := d(ctx, warm[i])
			return err
		}); err != nil {
			return nil, fmt.Errorf("%s: warm-up: %w", sr.S.Name, err)
		}
	}

	// The path cells: fresh keys and denials on databases of their own.
	rep.AblationConc = min(16, maxConc)
	pr, err := newPathRig(ctx, o, addr, rep.Subjects, deciders, keys[:o.Keys], rep.AblationConc, throughput)
	if err != nil {
		return nil, err
	}
	defer pr.close()
	rep.PathInUseFromCells = pr.inUseFromCells

	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}

	// Timed cells: every repetition visits every cell, and the subjects take
	// turns going first, so drift on a shared machine hits all of them alike.
	// Each repetition ends with the script time by path and the script cost
	// breakdown (ablations).
	rep.Ablations = ablations()
	for r := 0; r < o.Reps; r++ {
		fmt.Fprintf(progress, "repetition %d/%d\n", r+1, o.Reps)
		for _, conc := range o.Concs {
			for _, hot := range []bool{false, true} {
				for j := range rep.Subjects {
					i := (j + r) % len(rep.Subjects)
					sr := rep.Subjects[i]
					if hot && sr.S.Keyless {
						continue
					}
					c, err := runCell(ctx, admin, sr.S, deciders[i], keys[:o.Keys], hotKey(r), conc, o.Duration, hot)
					if err != nil {
						return nil, fmt.Errorf("%s: %w", sr.S.Name, err)
					}
					if sr.S.Kind != kindFloor && c.Allowed != c.Decisions-c.Errors {
						return nil, fmt.Errorf("%s: conc=%d hot=%v: %d of %d calls denied: the throughput limit (%d per %v) ran out",
							sr.S.Name, conc, hot, c.Decisions-c.Errors-c.Allowed, c.Decisions, throughput.Limit, throughput.Period)
					}
					k := cellKey{Conc: conc, Hot: hot}
					sr.Cells[k] = append(sr.Cells[k], c)
					fmt.Fprintf(progress, "  %-34s conc=%-3d hot=%-5v %8.0f/s p50=%v p99=%v errors=%d\n",
						sr.S.Name, conc, hot, c.PerSecond(), c.P50, c.P99, c.Errors)
				}
			}
		}
		if err := pr.measure(ctx, admin, r, o.Duration, progress); err != nil {
			return nil, err
		}
		if err := measureAblations(ctx, client, admin, rep.Ablations, keys[:o.Keys], rep.AblationConc, o.Duration, throughput); err != nil {
			return nil, err
		}
	}
	pr.finish()
	if o.LoneCalls > 0 {
		if err := measureLone(ctx, rep, deciders, o.LoneCalls, time.Second, progress); err != nil {
			return nil, err
		}
	}

	// Memory, allocations and round trips, exactness: one limit of
	// BurstLimit per hour, so no key refills or expires during a measurement.
	slow := limitSpec{Limit: o.BurstLimit, Period: time.Hour}
	for _, sr := range rep.Subjects {
		d, err := sr.S.New(ctx, client, slow)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sr.S.Name, err)
		}
		counted, err := sr.S.New(ctx, counting, slow)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sr.S.Name, err)
		}
		if err := admin.FlushAll(ctx).Err(); err != nil {
			return nil, err
		}
		if !sr.S.Keyless && !sr.S.Stateless {
			if sr.Mem, err = measureMemory(ctx, admin, d, keys, o.MemKeys); err != nil {
				return nil, fmt.Errorf("%s: memory: %w", sr.S.Name, err)
			}
		}
		// Allocations on keys the memory pass did not touch, each used at
		// most BurstLimit times so that they are admitted.
		if err := admin.FlushAll(ctx).Err(); err != nil {
			return nil, err
		}
		if sr.Alloc, err = measureAllocs(ctx, d, counted, rt, keys, o.AllocCalls); err != nil {
			return nil, fmt.Errorf("%s: allocations: %w", sr.S.Name, err)
		}
		if sr.S.Kind != kindFloor {
			for r := 0; r < o.Reps; r++ {
				b := measureBurst(ctx, d, fmt.Sprintf("burst%d", r), o.BurstG, o.BurstEach)
				sr.Bursts = append(sr.Bursts, b)
			}
		}
		fmt.Fprintf(progress, "  %-34s MEMORY USAGE=%d used_memory/key=%.0f allocs=%.1f round trips=%.2f bursts=%v\n",
			sr.S.Name, sr.Mem.MemoryUsage, sr.Mem.PerKey, sr.Alloc.Allocs, sr.Alloc.RoundTrips, sr.Bursts)
	}
	rep.Env.LoadAfter = loadAvg()
	return rep, nil
}

func matchesAny(name, list string) bool {
	for _, f := range strings.Split(list, ",") {
		if f != "" && strings.Contains(strings.ToLower(name), strings.ToLower(f)) {
			return true
		}
	}
	return false
}
