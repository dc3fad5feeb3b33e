package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/seed68425060/ratelimit"
)

// cellKey names a timed cell of one subject.
type cellKey struct {
	Conc int
	Hot  bool
}

// subjectResult is everything measured for one subject.
type subjectResult struct {
	S      subject
	Cells  map[cellKey][]cell
	Mem    memResult
	Alloc  allocResult
	Bursts []burstResult
	// Paths are the script-time cells by path (byPath subjects only), at the
	// report's AblationConc on many keys.
	Paths [numPaths][]cell
	// Lone are the latencies of a lone caller calling once a second
	// (loneSubjects only).
	Lone []time.Duration
}

// env describes the machine and the software measured.
type env struct {
	CPU          string
	Cores        int
	Go           string
	Redis        string
	LoadBefore   string
	LoadAfter    string
	GOMAXPROCS   int
	OS, Arch     string
	RedisAddress string
	GoRedis      string // the go-redis version this binary was built with
}

// report is one run's results.
type report struct {
	Opts       options
	Env        env
	Subjects   []*subjectResult
	Throughput limitSpec
	Command    string
	Started    time.Time
	// Ablations are script skeletons measured at AblationConc goroutines, and
	// so are the Paths of every subject.
	Ablations    []ablation
	AblationConc int
	// PathInUseFromCells: the keys-in-use path figure is the throughput
	// cells' at AblationConc (else it was measured with the path cells).
	PathInUseFromCells bool
}

// goRedisVersion is the go-redis module version in this binary's build info:
// the one the root module requires (bench/go.mod pins the same).
func goRedisVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "github.com/redis/go-redis/v9" {
				if m.Replace != nil {
					return m.Replace.Version
				}
				return m.Version
			}
		}
	}
	return "unknown"
}

func environment(ctx context.Context, admin *redis.Client) env {
	e := env{Cores: runtime.NumCPU(), Go: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		OS: runtime.GOOS, Arch: runtime.GOARCH, LoadBefore: loadAvg(), CPU: "unknown", GoRedis: goRedisVersion()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				e.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if m, err := info(ctx, admin, "server"); err == nil {
		e.Redis = m["redis_version"]
	}
	return e
}

// loadAvg returns the 1, 5 and 15 minute load averages, as /proc/loadavg has them.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// median returns the median of f over cells (the lower middle for even counts).
func median(cells []cell, f func(cell) float64) float64 {
	if len(cells) == 0 {
		return 0
	}
	v := make([]float64, len(cells))
	for i, c := range cells {
		v[i] = f(c)
	}
	slices.Sort(v)
	return v[(len(v)-1)/2]
}

func (sr *subjectResult) med(k cellKey, f func(cell) float64) float64 {
	return median(sr.Cells[k], f)
}

func (sr *subjectResult) rate(k cellKey) float64 {
	return sr.med(k, cell.PerSecond)
}

func (sr *subjectResult) errors(k cellKey) (errs, total int64, first string) {
	for _, c := range sr.Cells[k] {
		errs += c.Errors
		total += c.Decisions
		if first == "" {
			first = c.FirstErr
		}
	}
	return
}

// pairedRatio returns the median, min and max over repetitions of a's rate
// divided by b's rate in the same repetition (the cells of one repetition run
// back to back, so they share the machine's load).
func pairedRatio(a, b *subjectResult, k cellKey) (med, lo, hi float64) {
	return medianRange(pairedRatios(a, b, k))
}

// medianRange returns the median, smallest and largest of sorted, or zeros.
func medianRange(sorted []float64) (med, lo, hi float64) {
	if len(sorted) == 0 {
		return 0, 0, 0
	}
	return sorted[(len(sorted)-1)/2], sorted[0], sorted[len(sorted)-1]
}

// pairedRatios returns a's decisions per second over b's in cell k, one
// ratio per repetition, sorted.
func pairedRatios(a, b *subjectResult, k cellKey) []float64 {
	if a == nil || b == nil {
		return nil
	}
	ca, cb := a.Cells[k], b.Cells[k]
	var v []float64
	for i := 0; i < len(ca) && i < len(cb); i++ {
		if x, y := ca[i].PerSecond(), cb[i].PerSecond(); x > 0 && y > 0 {
			v = append(v, x/y)
		}
	}
	slices.Sort(v)
	return v
}

// medianInterval returns a distribution-free confidence interval for the
// median of the population that sorted was drawn from, and its coverage: the
// order statistics sorted[j] and sorted[n-1-j], for the largest j at which the
// interval misses the median on either side with probability at most 2.5%
// (P(B <= j) for B ~ Binomial(n, 1/2)). With fewer than 6 samples no j
// reaches 95% and the interval is the whole range (93.75% for 5).
func medianInterval(sorted []float64) (lo, hi, coverage float64) {
	n := len(sorted)
	if n == 0 {
		return 0, 0, 0
	}
	term := math.Exp2(-float64(n)) // P(B = j)
	cdf := term                    // P(B <= j)
	j := 0
	for 2*(j+1) <= n-1 {
		next := term * float64(n-j) / float64(j+1) // P(B = j+1)
		if cdf+next > 0.025 {
			break
		}
		j, term, cdf = j+1, next, cdf+next
	}
	return sorted[j], sorted[n-1-j], 1 - 2*cdf
}

// fmtPaired formats pairedRatio's result as "0.93 (0.85–1.01)".
func fmtPaired(med, lo, hi float64) string {
	if med == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f (%.2f–%.2f)", med, lo, hi)
}

// minOf returns the smallest non-zero value of f over cells (zero means the
// cell did not measure it, e.g. no script call), or 0 if there is none.
func minOf(cells []cell, f func(cell) float64) float64 {
	m := 0.0
	for _, c := range cells {
		if v := f(c); v > 0 && (m == 0 || v < m) {
			m = v
		}
	}
	return m
}

func (r *report) find(name string) *subjectResult {
	for _, sr := range r.Subjects {
		if sr.S.Name == name {
			return sr
		}
	}
	return nil
}

func (r *report) topConc() int { return slices.Max(r.Opts.Concs) }

func fmtRate(v float64) string {
	switch {
	case v == 0:
		return "–"
	case v >= 10_000:
		return fmt.Sprintf("%.1fk", v/1000)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

func fmtDur(d float64) string {
	return fmt.Sprintf("%.0f", d/float64(time.Microsecond))
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// markdown renders the report.
func (r *report) markdown(o options) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	top := r.topConc()
	many, hot := cellKey{Conc: top}, cellKey{Conc: top, Hot: true}

	w("## The last run\n\n")
	w("Generated by `bench/` (a separate Go module, so library users never download the peers) on %s.\n", r.Started.Format("2006-01-02 15:04 UTC"))
	w("Every figure below comes from one run against one `redis-server` that the harness started on loopback ")
	w("(`--save \"\" --appendonly no`); each timed figure is the median of %d repetitions of %v. ", o.Reps, o.Duration)
	w("Machines are noisy, so compare the **ratios** within this run rather than absolute numbers across runs.\n\n")
	w("Reproduce:\n\n```sh\n%s\n```\n\n", r.Command)

	w("## Machine\n\n")
	w("| | |\n|---|---|\n")
	w("| CPU | %s |\n| Cores | %d (GOMAXPROCS %d), shared with the client, Redis and anything else running |\n", r.Env.CPU, r.Env.Cores, r.Env.GOMAXPROCS)
	w("| Load average (1, 5, 15 min) | before %s, after %s |\n", r.Env.LoadBefore, r.Env.LoadAfter)
	w("| Go | %s %s/%s |\n| Redis | %s |\n| go-redis | %s, for every subject (the version the library requires) |\n\n", r.Env.Go, r.Env.OS, r.Env.Arch, r.Env.Redis, r.Env.GoRedis)

	w("## Setup\n\n")
	w("- One go-redis client for every subject, built with `ratelimit.ClientOptions`: PoolSize %d, `MaxRetries: -1`, `ContextTimeoutEnabled: true`, reply lengths bounded. ", 2*top)
	w("This library requires the first two (a retried script would charge a call twice); the peers get the same client for fairness.\n")
	w("- Throughput cells: every limiter allows %d events per %s with a burst of %d, so no cell can exhaust a key (a cell with a denial would stop the run), ", r.Throughput.Limit, fmtHours(r.Throughput.Period), r.Throughput.Limit)
	w("and one event per %s, longer than the run, so a bucket never refills between two calls on a key: every timed call is an admission on a key in use that the warm-up created, for every subject ", fmtHours(r.Throughput.Period/time.Duration(r.Throughput.Limit)))
	w("(for this library's buckets, PTTL + INCRBY; see *Script time by path* for the other paths). ")
	w("With a refill faster than the seconds between two calls on a key, a bucket would be full again at nearly every call; with a fast refill, the buckets' keys expire within milliseconds, and most calls would create a key instead. ")
	w("*Many keys*: goroutine g uses keys g, g+N, g+2N, … of %d keys (no two goroutines share a key). *Hot key*: all goroutines use one key.\n", o.Keys)
	w("- This library: `Config{Name: \"tb\" (\"lb\", \"sw\"), Algorithm, Limit, Period, Timeout: 3s}` (3s = go-redis's default ReadTimeout, which bounds the peers' calls), ")
	w("so every default, automatic pipelining included (`Config.Pipeline` 0: %d pipelines in flight per client, a lone call straight out). ", ratelimit.DefaultPipeline)
	w("Its variants: *%s* (`Pipeline: -1`, one round trip per decision); *%s* (`Config.Rates`: the limit and a second rate of the same burst over half the period, both checked atomically); ", pipelineOff, twoRates)
	w("*%s* (the same answer without rates per call: two limiters, and a `Refund` of the first when the second denies); *%s* (`l.With(rate)` on every call, as a plan looked up per request).\n", twoLimiters, perCallRate)
	w("redis_rate: `Limit{Rate, Burst, Period}`. throttled: GCRA with its go-redis v9 store (`goredisstore.NewCtx`). ulule: the Redis store (fixed window).\n")
	w("- Floors: one round trip with the same client: `PING`, `INCR key`, and `EVALSHA` of `%s` with one key. ", floorScript)
	w("*%s*: this library's default token bucket on a client of its own whose go-redis hook rewrites every script call to `%s` (an empty bucket's reply): the same coalescer, keys, arguments and decoding, only the script differs.\n", pipelinedFloor, floorZero)
	w("- Latency is per call, measured around the decision, across all goroutines of a cell.\n\n")

	w("## Decisions per second\n\n![Decisions per second by concurrency](%s)\n\n", chartLink(o))
	for _, h := range []bool{false, true} {
		if h {
			w("### One hot key\n\n")
		} else {
			w("### Many keys\n\n")
		}
		w("| Subject | Algorithm |")
		for _, c := range o.Concs {
			w(" %d goroutine%s: decisions/s | p50 / p99 µs |", c, plural(c))
		}
		w(" errors |\n|---|---|")
		for range o.Concs {
			w("---:|---:|")
		}
		w("---:|\n")
		for _, sr := range r.Subjects {
			if h && sr.S.Keyless {
				continue
			}
			w("| %s | %s |", sr.S.Name, sr.S.Algorithm)
			var errs, total int64
			var first string
			for _, c := range o.Concs {
				k := cellKey{Conc: c, Hot: h}
				w(" %s | %s / %s |", fmtRate(sr.rate(k)),
					fmtDur(sr.med(k, func(c cell) float64 { return float64(c.P50) })),
					fmtDur(sr.med(k, func(c cell) float64 { return float64(c.P99) })))
				e, t, f := sr.errors(k)
				errs, total = errs+e, total+t
				if first == "" {
					first = f
				}
			}
			w(" %s |\n", fmtErrors(errs, total))
		}
		w("\n")
	}
	if errNotes := r.errorNotes(); errNotes != "" {
		w("Errors seen:\n\n%s\n", errNotes)
	}

	w("## Cost per decision\n\n")
	w("At %d goroutines on many keys. *Script µs/call* is `INFO commandstats` usec_per_call of the subject's script command ", top)
	w("(EVALSHA/EVAL; for the PING and INCR floors, that command): the wall time Redis's single thread spends inside it, which grows when other processes preempt Redis, so the minimum over repetitions is shown too. ")
	w("*Redis CPU* is the used_cpu_sys + used_cpu_user delta over the cell divided by decisions: it includes reading, parsing and replying, ")
	w("and is what caps a whole fleet's decisions per second. *Client CPU* is this process's CPU (getrusage) per decision: go-redis, ")
	w("the limiter and the harness. *Round trips* counts commands and pipelines the client sent per decision (a go-redis hook). ")
	w("*Allocations* are heap allocations per decision on one goroutine (runtime.MemStats delta over %d calls).\n\n", o.AllocCalls)
	w("| Subject | Script µs/call, many keys: median (min) | Script µs/call, hot key: median (min) | Redis CPU µs/decision | Client CPU µs/decision | Round trips/decision | Allocations/decision | Bytes allocated/decision |\n")
	w("|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, sr := range r.Subjects {
		hotScript := "–"
		if !sr.S.Keyless {
			hotScript = fmt.Sprintf("%.2f (%.2f)", sr.med(hot, cell.ScriptMicros), minOf(sr.Cells[hot], cell.ScriptMicros))
		}
		w("| %s | %.2f (%.2f) | %s | %.1f | %.1f | %.2f | %.1f | %.0f |\n", sr.S.Name,
			sr.med(many, cell.ScriptMicros), minOf(sr.Cells[many], cell.ScriptMicros), hotScript,
			sr.med(many, func(c cell) float64 { return c.perDecision(c.RedisCPU) }),
			sr.med(many, func(c cell) float64 { return c.perDecision(c.ClientCPU) }),
			sr.Alloc.RoundTrips, sr.Alloc.Allocs, sr.Alloc.Bytes)
	}
	w("\n")
	w("%s", r.pathTable())

	w("## Bytes per key\n\n")
	w("After one admitted call on each of %d fresh keys (limit %d per hour). *MEMORY USAGE* is Redis's estimate for the first key ", o.MemKeys, o.BurstLimit)
	w("(key name, value object and main-dictionary entry; not the expires entry). *used_memory/key* is the used_memory delta divided by the number of keys: ")
	w("it adds the expires-dictionary entry and both hash tables' buckets, so it is larger and moves in steps as the tables double.\n\n")
	w("| Subject | Redis key of user key `%s` | MEMORY USAGE (bytes) | used_memory/key (bytes) |\n|---|---|---:|---:|\n", "u0000000")
	for _, sr := range r.Subjects {
		if sr.S.Keyless || sr.S.Stateless {
			continue
		}
		w("| %s | `%s` (%d bytes) | %d | %.0f |\n", sr.S.Name, sr.Mem.Key, len(sr.Mem.Key), sr.Mem.MemoryUsage, sr.Mem.PerKey)
	}
	w("\n")

	w("## Exactness under a hot-key burst\n\n")
	w("Limit %d per hour, burst %d: %d goroutines released at once, %d calls each, on one fresh key, %d times. ", o.BurstLimit, o.BurstLimit, o.BurstG, o.BurstEach, o.Reps)
	w("Exact is admitted = %d in every repetition; more is over-admission, fewer (without errors) under-admission.\n\n", o.BurstLimit)
	w("| Subject | Attempts | Admitted (each repetition) | Errors | Verdict |\n|---|---:|---|---:|---|\n")
	for _, sr := range r.Subjects {
		if len(sr.Bursts) == 0 {
			continue
		}
		var adm []string
		errs, attempts := 0, 0
		for _, b := range sr.Bursts {
			adm = append(adm, fmt.Sprint(b.Admitted))
			errs += b.Errors
			attempts = b.Attempts
		}
		w("| %s | %d | %s | %d | %s |\n", sr.S.Name, attempts, strings.Join(adm, ", "), errs, burstVerdict(sr.Bursts, o.BurstLimit))
	}
	w("\n")

	w("## Ratios (same run, %d goroutines)\n\n", top)
	w("Decisions per second of the row's subject divided by the column's, computed per repetition (cells of one repetition run back to back) ")
	w("and shown as median (min–max) over the %d repetitions.\n\n", o.Reps)
	w("| Subject | ÷ EVALSHA floor | ÷ pipelined floor | ÷ redis_rate | ÷ ulule | ÷ throttled | hot key ÷ redis_rate hot key |\n|---|---:|---:|---:|---:|---:|---:|\n")
	floor, pfloor, rr, ul, th := r.find("EVALSHA return 1"), r.find(pipelinedFloor), r.find("redis_rate"), r.find("ulule"), r.find("throttled")
	for _, sr := range r.Subjects {
		if sr.S.Kind == kindFloor {
			continue
		}
		w("| %s | %s | %s | %s | %s | %s | %s |\n", sr.S.Name, fmtPaired(pairedRatio(sr, floor, many)), fmtPaired(pairedRatio(sr, pfloor, many)), fmtPaired(pairedRatio(sr, rr, many)),
			fmtPaired(pairedRatio(sr, ul, many)), fmtPaired(pairedRatio(sr, th, many)), fmtPaired(pairedRatio(sr, rr, hot)))
	}
	w("\n")

	w("%s", r.loneTable())
	w("## Targets\n\n")
	w("*Met?* follows the median over repetitions. For a ratio, *within this run's noise* means the median's confidence interval ")
	w("(distribution-free: two order statistics of the per-repetition ratios, for at least 95%% coverage where the number of repetitions allows) ")
	w("reaches both sides of the target: another run on the same machine may well give the other answer.\n\n")
	w("| Target | Measured | Met? |\n|---|---|---|\n")
	for _, t := range r.targets() {
		verdict := yesNo(t.Met)
		if t.Undecided {
			verdict += ", within this run's noise"
		}
		w("| %s | %s | %s |\n", t.Name, t.Measured, verdict)
	}
	w("\n")
	w("## Where the time goes\n\n%s\n", r.analysis())
	w("%s", r.ablationTable())
	return b.String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func fmtErrors(errs, total int64) string {
	if errs == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%.1f%%)", errs, 100*float64(errs)/float64(total))
}

func yesNo(b bool) string {
	if b {
		return "**yes**"
	}
	return "**no**"
}

func burstVerdict(bs []burstResult, limit int) string {
	over, under, errs := false, false, false
	for _, b := range bs {
		over = over || b.Admitted > limit
		under = under || b.Admitted < limit
		errs = errs || b.Errors > 0
	}
	switch {
	case over:
		return "over-admission"
	case errs:
		return "errors"
	case under:
		return "under-admission"
	}
	return "exact"
}

func (r *report) errorNotes() string {
	var b strings.Builder
	for _, sr := range r.Subjects {
		for _, h := range []bool{false, true} {
			for _, c := range r.Opts.Concs {
				if e, _, first := sr.errors(cellKey{Conc: c, Hot: h}); e > 0 {
					where := "many keys"
					if h {
						where = "hot key"
					}
					fmt.Fprintf(&b, "- %s, %s, %d goroutines: %d errors, e.g. `%s`\n", sr.S.Name, where, c, e, first)
				}
			}
		}
		for _, bu := range sr.Bursts {
			if bu.Errors > 0 {
				fmt.Fprintf(&b, "- %s, hot-key burst: %d errors, e.g. `%s`\n", sr.S.Name, bu.Errors, bu.FirstErr)
				break
			}
		}
	}
	return b.String()
}

// chartLink is the chart's path relative to the Markdown file.
func chartLink(o options) string {
	if o.Chart == "" {
		return ""
	}
	if o.Out == "" {
		return o.Chart
	}
	chart, err1 := filepath.Abs(o.Chart)
	out, err2 := filepath.Abs(o.Out)
	if err1 != nil || err2 != nil {
		return o.Chart
	}
	rel, err := filepath.Rel(filepath.Dir(out), chart)
	if err != nil {
		return o.Chart
	}
	return filepath.ToSlash(rel)
}

// fmtHours formats d as "1h", "800000h", or as time.Duration does when it
// is not whole hours.
func fmtHours(d time.Duration) string {
	if d > 0 && d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}

// fmtScript formats the script µs/call of cells as "median (min)", or says
// that the path ran no script command.
func fmtScript(cells []cell) string {
	if len(cells) == 0 {
		return "–"
	}
	var calls int64
	for _, c := range cells {
		calls += c.ScriptCalls
	}
	if calls == 0 {
		return "no script call"
	}
	return fmt.Sprintf("%.2f (%.2f)", median(cells, cell.ScriptMicros), minOf(cells, cell.ScriptMicros))
}

// commandsPerDecision lists the commands of cells per decision, from INFO
// commandstats (commands a script calls included): the subject's script
// commands first, then the rest by name; under 0.01 per decision left out.
func commandsPerDecision(s subject, cells []cell) string {
	var decisions int64
	calls := map[string]int64{}
	for _, c := range cells {
		decisions += c.Decisions
		for name, st := range c.Stats {
			calls[name] += st.Calls
		}
	}
	if decisions == 0 {
		return "–"
	}
	names := make([]string, 0, len(calls))
	for name, n := range calls {
		if float64(n)/float64(decisions) >= 0.01 {
			names = append(names, name)
		}
	}
	rank := func(name string) int {
		if slices.Contains(s.Commands, name) {
			return 0
		}
		return 1
	}
	slices.SortFunc(names, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(names))
	for i, name := range names {
		parts[i] = fmt.Sprintf("%s %.2f", strings.ToUpper(name), float64(calls[name])/float64(decisions))
	}
	return strings.Join(parts, ", ")
}

// pathTable renders the script time by path.
func (r *report) pathTable() string {
	var subs []*subjectResult
	for _, sr := range r.Subjects {
		if sr.S.byPath() && len(sr.Paths[pathFresh]) > 0 {
			subs = append(subs, sr)
		}
	}
	if len(subs) == 0 {
		return ""
	}
	o := r.Opts
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("### Script time by path\n\n")
	w("The throughput cells are all admissions on keys in use, which for this library's buckets is the cheapest path through the script (PTTL of the lock, PTTL, INCRBY), ")
	w("so the figures above alone would flatter them; every user also takes the other paths. ")
	w("This table gives each rate limiter's *Script µs/call* (`INFO commandstats` usec_per_call of its script command) on four paths, ")
	w("at %d goroutines on many keys, as median (min) over the %d repetitions. ", r.AblationConc, o.Reps)
	if r.PathInUseFromCells {
		w("*Keys in use*: admissions on keys the warm-up created; these are the throughput cells at %d goroutines. ", r.AblationConc)
	} else {
		w("*Keys in use*: admissions on keys the warm-up created, the throughput cells' path (measured with the other two paths, as the throughput cells did not run at %d goroutines). ", r.AblationConc)
	}
	w("*Keys in use, refilled*: a limit of %d per %s on the same %d keys, each called once just before the cell, so every timed call finds its state in Redis but its bucket full again (calls on one key come some 100ms apart): traffic well within its limit, the common case in production. ",
		refilledLimit.Limit, refilledLimit.Period, o.Keys)
	w("*Fresh keys*: every call on a key never used before, under the throughput cells' limit (%d unique user keys per repetition, distinct across repetitions, none used twice in a cell; the database is emptied after each cell): ", o.FreshKeys)
	w("a user's first call, or the first after the key expired. ")
	w("*Denials*: a limit of %d per %s, each of %d keys exhausted by one admitted call in a warm-up, so that every timed call is denied: the path a limit exists for, and the one abusive traffic takes. ",
		deniedLimit.Limit, fmtHours(deniedLimit.Period), o.Keys)
	w("The last two columns check the paths, summed over the repetitions: keys the fresh-key cells created per call (1.00: every call made one new key), and calls the denial cells admitted (0: all denied). ")
	w("*No script call* means the path ran none of the subject's script commands (see the commands below).\n\n")
	w("| Subject | Keys in use: median (min) | Keys in use, refilled: median (min) | Fresh keys: median (min) | Denials: median (min) | Fresh keys: keys created / call | Denials: admitted / calls |\n")
	w("|---|---:|---:|---:|---:|---:|---:|\n")
	for _, sr := range subs {
		var created, freshCalls, admitted, deniedCalls int64
		for _, c := range sr.Paths[pathFresh] {
			created += c.Created
			freshCalls += c.Decisions
		}
		for _, c := range sr.Paths[pathDenied] {
			admitted += c.Allowed
			deniedCalls += c.Decisions
		}
		perKey := "–"
		if freshCalls > 0 {
			perKey = fmt.Sprintf("%.2f (%d / %d)", float64(created)/float64(freshCalls), created, freshCalls)
		}
		w("| %s | %s | %s | %s | %s | %s | %d / %d |\n", sr.S.Name, fmtScript(sr.Paths[pathInUse]), fmtScript(sr.Paths[pathRefilled]),
			fmtScript(sr.Paths[pathFresh]), fmtScript(sr.Paths[pathDenied]), perKey, admitted, deniedCalls)
	}
	w("\nRedis commands per decision on each path: `INFO commandstats` calls ÷ decisions, over the same cells. ")
	w("Commands a script calls are counted too (and their time is inside the script's), so this shows which branch of a script ran.\n\n")
	w("| Subject |")
	for p := range numPaths {
		w(" %s |", pathNames[p])
	}
	w("\n|---|---|---|---|---|\n")
	for _, sr := range subs {
		w("| %s |", sr.S.Name)
		for p := range numPaths {
			w(" %s |", commandsPerDecision(sr.S, sr.Paths[p]))
		}
		w("\n")
	}
	w("\n")
	return b.String()
}

// ablationTable renders the script cost breakdown.
func (r *report) ablationTable() string {
	if len(r.Ablations) == 0 {
		return ""
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	args := bucketArgs(r.Throughput)
	w("### Script cost breakdown\n\n")
	w("Skeleton scripts on many keys at %d goroutines; `INFO commandstats` usec_per_call, median and minimum over repetitions ", r.AblationConc)
	w("(the minimum is the least disturbed by other processes). Each line adds to the one above it within its shape. ")
	w("*Current*: called exactly like this library's bucket scripts for a plain Allow, EVALSHA with two keys (the lock, absent, and the state) and 5 ARGV (mode, cost, lockout, `\"%s\"`, `\"%s\"`: ", args[3], args[4])
	w("the interval and the capacity in µs in hexadecimal, under the throughput cells' limit), on state keys that exist with a TTL, each set before every repetition as a bucket script sets a fresh key. ")
	w("`+ PTTL of the lock key` is the lockout check every call makes; `+ PTTL of the state key` reads the key's remaining TTL, which is how the scripts tell the time (no TIME call); ")
	w("`+ INCRBY` adds the one write of an admission on a key in use, the buckets' hot path and the throughput cells' path. ")
	w("*Old script shape*: the call shape and Redis calls of the scripts before they took the time from the key's expiry ")
	w("(six ARGV; TIME, GET, SET … PX; a 7-integer table reply), kept for comparison. ")
	w("The full scripts' rows are their keys-in-use figures from *Script time by path*; for this library's scripts, *added* is the full script minus `+ INCRBY` (lock PTTL, state PTTL, INCRBY), ")
	w("the Lua work around the same two Redis calls. The other paths add Redis calls (see the commands per decision above).")
	var cur, old *ablation
	for i := range r.Ablations {
		a := &r.Ablations[i]
		if a.Shape == shapeNew && a.Check != nil {
			cur = a // the last current line: the lock PTTL, PTTL, INCRBY
		}
		if a.Shape == shapeOld {
			old = a // the last old line
		}
	}
	if cur != nil && old != nil && len(cur.Cells) > 0 && len(old.Cells) > 0 {
		w(" In this run, `%s` cost %.2f µs/call (min), the old shape's last line %.2f µs/call (min).",
			strings.SplitN(cur.Name, " (", 2)[0], minOf(cur.Cells, cell.ScriptMicros), minOf(old.Cells, cell.ScriptMicros))
	}
	w("\n\n| Shape | Script | µs/call: median | min | added (min) |\n|---|---|---:|---:|---:|\n")
	prev, shape := 0.0, ""
	for _, a := range r.Ablations {
		v, lo := median(a.Cells, cell.ScriptMicros), minOf(a.Cells, cell.ScriptMicros)
		added := "–"
		if a.Shape == shape {
			added = fmt.Sprintf("%+.2f", lo-prev)
		}
		w("| %s | %s | %.2f | %.2f | %s |\n", a.Shape, a.Name, v, lo, added)
		prev, shape = lo, a.Shape
	}
	for _, name := range []string{"ours TokenBucket", "ours LeakyBucket", "ours SlidingWindow", "redis_rate", "ulule"} {
		sr := r.find(name)
		if sr == nil || len(sr.Paths[pathInUse]) == 0 {
			continue
		}
		cells := sr.Paths[pathInUse]
		lo := minOf(cells, cell.ScriptMicros)
		added := ""
		if sr.S.Kind == kindOurs && cur != nil && len(cur.Cells) > 0 {
			added = fmt.Sprintf("%+.2f", lo-minOf(cur.Cells, cell.ScriptMicros))
		}
		w("| full script | %s, keys in use | %.2f | %.2f | %s |\n", name, median(cells, cell.ScriptMicros), lo, added)
	}
	w("\n")
	return b.String()
}
