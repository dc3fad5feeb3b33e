package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/seed68425060/ratelimit"
)

const benchUsage = `Usage:
  ratelimit bench -redis URL [-c WORKERS] [-d DURATION] [-keys N] [-limit COUNT/PERIOD] [-algorithms LIST]

Runs concurrent Allow calls against one Redis for each algorithm in turn and
reports decisions per second and the p50 and p99 latency of one decision. On a
terminal a progress line updates while it runs; otherwise a progress line is
printed every 2 seconds. When Redis stops answering (100 calls in a row fail)
the run stops, reports the error once and exits 1. Keys live under
"ratelimit-bench:" and are deleted afterwards.

Latency is worth quoting only against a real redis-server on the network the
application uses.

Examples:
  ratelimit bench -redis redis://127.0.0.1:6379
  ratelimit bench -redis redis://10.0.0.5:6379 -c 64 -d 10s -keys 10000
  ratelimit bench -cluster 10.0.0.5:7000,10.0.0.6:7000 -algorithms token_bucket
`

type benchConfig struct {
	redis      redisFlags
	workers    int
	duration   time.Duration
	keys       int
	limit      limitFlag
	algorithms string
}

func (b *benchConfig) register(fs *flag.FlagSet) {
	b.redis.register(fs)
	fs.IntVar(&b.workers, "c", 16, "concurrent workers")
	fs.DurationVar(&b.duration, "d", 5*time.Second, "how long to run each algorithm")
	fs.IntVar(&b.keys, "keys", 1000, "number of distinct keys the workers spread over")
	b.limit = limitFlag{limit: 100, period: time.Second}
	fs.Var(&b.limit, "limit", "rate per key, `count/period`")
	fs.StringVar(&b.algorithms, "algorithms", "token_bucket,leaky_bucket,sliding_window", "comma-separated `list` of algorithms to run")
}

// benchResult is one algorithm's measurements.
type benchResult struct {
	algorithm ratelimit.Algorithm
	decisions int64
	allowed   int64
	errors    int64
	elapsed   time.Duration
	p50, p99  time.Duration
	firstErr  error
	aborted   bool // stopped early: Redis stopped answering
}

// maxFailStreak is how many calls in a row may fail before a run stops.
const maxFailStreak = 100

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var b benchConfig
	fs := newFlagSet("bench")
	b.register(fs)
	if code, ok := parseFlags(fs, "bench", args, stdout, stderr); !ok {
		return code
	}
	var errs []error
	if b.workers < 1 {
		errs = append(errs, fmt.Errorf("-c = %d, must be >= 1", b.workers))
	}
	if b.duration <= 0 {
		errs = append(errs, fmt.Errorf("-d = %v, must be > 0", b.duration))
	}
	if b.keys < 1 {
		errs = append(errs, fmt.Errorf("-keys = %d, must be >= 1", b.keys))
	}
	var algs []ratelimit.Algorithm
	for _, s := range strings.Split(b.algorithms, ",") {
		a, err := parseAlgorithm(strings.TrimSpace(s))
		if err != nil {
			errs = append(errs, fmt.Errorf("-algorithms: %v", err))
			continue
		}
		algs = append(algs, a)
	}
	if !b.redis.configured() {
		errs = append(errs, fmt.Errorf("no Redis: give -redis redis://host:port, set %s, or give -cluster host:port,...", redisURLEnv))
	}
	if err := errors.Join(errs...); err != nil {
		return usageError(stderr, "bench", err)
	}
	c, err := b.redis.connect(ctx, false)
	if err != nil {
		return failure(stderr, "bench", err)
	}
	defer c.Close()

	tty := isTerminal(stdout)
	fmt.Fprintf(stdout, "bench: %s, %d workers, %v per algorithm, %d keys, limit %s per key\n",
		c.desc, b.workers, b.duration, b.keys, ratelimit.FormatLimit(b.limit.limit, b.limit.period))
	run := "r" + randomHex(4)
	var results []benchResult
	for _, a := range algs {
		lim, err := ratelimit.New(c.client, ratelimit.Config{
			Name:      run + "." + strings.ReplaceAll(a.String(), "_", "-"),
			Algorithm: a,
			Limit:     b.limit.limit,
			Period:    b.limit.period,
			KeyPrefix: "ratelimit-bench:",
			Timeout:   2 * time.Second,
		})
		if err != nil {
			return usageError(stderr, "bench", err)
		}
		r := benchOne(ctx, lim, b, stdout, tty)
		if !r.aborted {
			cleanup(context.WithoutCancel(ctx), lim, b.keys)
		}
		results = append(results, r)
		if ctx.Err() != nil || r.aborted {
			break
		}
	}
	printBench(stdout, results)
	for _, r := range results {
		if r.errors > 0 {
			// The error without the run's internal limiter name.
			msg := r.firstErr.Error()
			if _, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(msg, "ratelimit: ") {
				if _, rest2, ok := strings.Cut(rest, ": "); ok {
					msg = rest2
				}
			}
			fmt.Fprintf(stderr, "ratelimit bench: %s: %d calls failed (%s): %s\n", r.algorithm, r.errors, ratelimit.ErrorKind(r.firstErr), msg)
		}
		if r.aborted {
			fmt.Fprintf(stderr, "ratelimit bench: stopped: %d calls in a row failed, Redis is not answering\n", maxFailStreak)
			return exitFail
		}
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "ratelimit bench: interrupted")
		return exitFail
	}
	for _, r := range results {
		if r.decisions == 0 {
			return exitFail
		}
	}
	return exitOK
}

// benchOne runs b.workers goroutines calling Allow for b.duration and measures
// each call. It writes progress to out: on a terminal (tty) a status line
// rewritten every 200ms, otherwise a line every 2s. It stops early when
// maxFailStreak calls in a row fail.
func benchOne(ctx context.Context, lim *ratelimit.Limiter, b benchConfig, out io.Writer, tty bool) benchResult {
	// The run ends by a flag, not a context deadline: a call in flight when
	// the time is up finishes normally instead of failing with a timeout.
	var stop atomic.Bool
	timer := time.AfterFunc(b.duration, func() { stop.Store(true) })
	defer timer.Stop()
	res := benchResult{algorithm: lim.Config().Algorithm}
	var decisions, allowed, failed, streak atomic.Int64
	var aborted atomic.Bool
	var errOnce sync.Once
	lat := make([][]time.Duration, b.workers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range b.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			i := w
			for !stop.Load() && ctx.Err() == nil {
				key := "k" + strconv.Itoa(i%b.keys)
				i += b.workers
				t0 := time.Now()
				r, err := lim.Allow(ctx, key)
				d := time.Since(t0)
				if err != nil {
					if ctx.Err() != nil {
						return // interrupted during the call: not a Redis failure
					}
					failed.Add(1)
					errOnce.Do(func() { res.firstErr = err })
					if streak.Add(1) >= maxFailStreak {
						aborted.Store(true)
						stop.Store(true)
					}
					continue
				}
				streak.Store(0)
				lat[w] = append(lat[w], d)
				decisions.Add(1)
				if r.Allowed {
					allowed.Add(1)
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	every := 2 * time.Second
	if tty {
		every = 200 * time.Millisecond
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
loop:
	for {
		select {
		case <-done:
			break loop
		case <-tick.C:
			el := time.Since(start)
			line := fmt.Sprintf("%-15s %5.1fs %10d decisions %10.0f/s %8d errors", res.algorithm, el.Seconds(), decisions.Load(), float64(decisions.Load())/el.Seconds(), failed.Load())
			if tty {
				fmt.Fprint(out, "\r"+line)
			} else {
				fmt.Fprintln(out, line)
			}
		}
	}
	if tty {
		fmt.Fprint(out, "\r\033[K")
	}
	res.aborted = aborted.Load()
	res.elapsed = time.Since(start)
	res.decisions, res.allowed, res.errors = decisions.Load(), allowed.Load(), failed.Load()
	all := slices.Concat(lat...)
	slices.Sort(all)
	res.p50, res.p99 = percentile(all, 50), percentile(all, 99)
	return res
}

// percentile returns the p-th percentile of sorted (nearest rank), or 0.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100 // ceil(n*p/100), 1-based rank
	if i < 1 {
		i = 1
	}
	return sorted[i-1]
}

func cleanup(ctx context.Context, lim *ratelimit.Limiter, keys int) {
	for i := range keys {
		lim.Reset(ctx, "k"+strconv.Itoa(i))
	}
}

func printBench(w io.Writer, results []benchResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	defer tw.Flush()
	fmt.Fprintln(tw, "algorithm\tdecisions\tdecisions/s\tallowed\tp50\tp99\terrors\t")
	for _, r := range results {
		rate := 0.0
		if r.elapsed > 0 {
			rate = float64(r.decisions) / r.elapsed.Seconds()
		}
		pct := 0.0
		if r.decisions > 0 {
			pct = 100 * float64(r.allowed) / float64(r.decisions)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.1f%%\t%v\t%v\t%d\t\n", r.algorithm, r.decisions, rate, pct,
			r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.errors)
	}
}

// isTerminal reports whether w is a terminal (a character device), where a
// progress line rewritten with \r is readable.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
