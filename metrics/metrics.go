// Package metrics exports what ratelimit Limiters decide as Prometheus series.
//
// A Collector is both a prometheus.Collector and a ratelimit.Observer: pass it
// as Config.Observer of every Limiter (and middleware.Config.Observer), and
// register it on the registry you serve. It never touches the default registry.
//
//	c, err := metrics.NewCollector(metrics.Config{}) // or Config{Namespace: "auth"}
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(c)
//	lim, err := ratelimit.New(rdb, ratelimit.Config{Name: "api", Limit: 100, Period: time.Minute, Observer: c})
//
// Labels take values from small fixed sets (limiter name, algorithm, outcome,
// error kind): never the rate-limit key.
//
// This is the only package of the module that imports client_golang, so
// programs that do not import it never build Prometheus.
package metrics

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed68425060/ratelimit"
)

// DefaultNamespace is the metric name prefix used when Config.Namespace is empty.
const DefaultNamespace = "ratelimit"

// DefaultBuckets are the latency histogram's default upper bounds in seconds:
// from 50µs, where a loopback Redis answers, to 1s, past any sane
// Config.Timeout. NewCollector copies them, so changing this variable later
// does not change existing Collectors.
var DefaultBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}

// errorKinds are the ratelimit.ErrorKind values whose series a limiter has from
// its first event, at zero, so the first error of a kind shows in rate().
var errorKinds = []string{
	ratelimit.KindTimeout, ratelimit.KindCanceled, ratelimit.KindConnection, ratelimit.KindOOM,
	ratelimit.KindBusy, ratelimit.KindLoading, ratelimit.KindUnavailable, ratelimit.KindNoPerm,
	ratelimit.KindReply, ratelimit.KindOther,
}

// Config configures a Collector. The zero value is ready to use: the series
// are named ratelimit_* and the latency histogram has DefaultBuckets.
type Config struct {
	// Namespace is the metric name prefix: "auth" gives auth_decisions_total,
	// to tell the limiters of two collectors in one process apart. It must
	// match [a-zA-Z_][a-zA-Z0-9_]*. If empty, Namespace is DefaultNamespace
	// ("ratelimit").
	Namespace string

	// Buckets are the latency histogram's upper bounds in seconds: each finite
	// and > 0, no two equal, in any order (NewCollector sorts a copy; +Inf is
	// always implied). If nil or empty, Buckets are DefaultBuckets, copied.
	Buckets []float64
}

// check returns cfg's namespace and sorted buckets, or every problem at once,
// each naming its field and wrapping ratelimit.ErrInvalidConfig.
func (cfg Config) check() (string, []float64, error) {
	var errs []error
	ns := cfg.Namespace
	if ns == "" {
		ns = DefaultNamespace
	} else if !validNamespace(ns) {
		errs = append(errs, fmt.Errorf("metrics: Config.Namespace = %q, must match [a-zA-Z_][a-zA-Z0-9_]*: %w", ns, ratelimit.ErrInvalidConfig))
	}
	buckets := slices.Clone(cfg.Buckets)
	if len(buckets) == 0 {
		buckets = slices.Clone(DefaultBuckets)
	}
	for i, b := range cfg.Buckets {
		if math.IsNaN(b) || math.IsInf(b, 0) || b <= 0 {
			errs = append(errs, fmt.Errorf("metrics: Config.Buckets[%d] = %v, must be a finite number of seconds > 0: %w", i, b, ratelimit.ErrInvalidConfig))
		}
	}
	slices.Sort(buckets)
	for i := 1; i < len(buckets); i++ {
		if buckets[i] == buckets[i-1] {
			errs = append(errs, fmt.Errorf("metrics: Config.Buckets holds %v twice, bounds must differ: %w", buckets[i], ratelimit.ErrInvalidConfig))
		}
	}
	return ns, buckets, errors.Join(errs...)
}

// validNamespace reports whether ns is a Prometheus metric name prefix.
func validNamespace(ns string) bool {
	for i, r := range ns {
		if !(r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || i > 0 && '0' <= r && r <= '9') {
			return false
		}
	}
	return true
}

// Collector counts Limiter events as Prometheus series. Create it with
// NewCollector; the zero value is not usable. It is safe for concurrent use, and
// Observe takes no lock and allocates nothing once a limiter's series exist,
// except for an event that carries an error (ratelimit.ErrorKind may allocate).
//
// Series, with the default namespace (limiter is Config.Name, algorithm is
// Config.Algorithm.String()):
//
//	ratelimit_decisions_total{limiter,algorithm,outcome}  decisions of Allow, AllowN (n > 0) and Wait
//	ratelimit_caller_decisions_total{limiter,algorithm,outcome}  a caller's failure-policy decisions (below)
//	ratelimit_peeks_total{limiter,algorithm}              Peek and AllowN(…, 0) calls
//	ratelimit_refunds_total{limiter,algorithm}            Refund calls
//	ratelimit_redis_errors_total{limiter,algorithm,kind}  Redis errors by ratelimit.ErrorKind
//	ratelimit_script_reloads_total{limiter,algorithm}     NOSCRIPT fallbacks to EVAL
//	ratelimit_lockouts_total{limiter,algorithm}           lockouts started (Config.BlockFor)
//	ratelimit_deny_cache_hits_total{limiter,algorithm}    decisions answered by the local deny cache
//	ratelimit_redis_duration_seconds{limiter,algorithm}   time in Redis per call (histogram)
//
// outcome is ratelimit.Outcome.String(): allowed, denied, locked_out,
// failed_open, failed_closed, failed_local or error. Allowed calls have their
// own series, so a deny ratio needs no subtraction. Peeks consume nothing and
// are not decisions: they have their own counter, as do refunds, so a page
// that peeks before it allows does not count twice. Every outcome and error
// kind series of a limiter exists, at zero, from the limiter's first event.
//
// A decision a caller made with its own failure policy (an Event with
// ByCaller set, as package middleware reports them) is counted once, in
//
//	ratelimit_caller_decisions_total{limiter,algorithm,outcome}  failed_open or failed_closed
//
// and nowhere else: not in decisions_total, where the limiter has already
// counted its failed call as outcome "error", and not in redis_errors_total,
// where the limiter has counted its error (a key function's error is not
// Redis's). So every decision is counted once: decisions_total counts the
// limiter's calls, caller_decisions_total what callers did when a call failed.
type Collector struct {
	decisions *prometheus.CounterVec
	callers   *prometheus.CounterVec
	peeks     *prometheus.CounterVec
	refunds   *prometheus.CounterVec
	errors    *prometheus.CounterVec
	reloads   *prometheus.CounterVec
	lockouts  *prometheus.CounterVec
	cached    *prometheus.CounterVec
	latency   *prometheus.HistogramVec

	mu     sync.Mutex                     // serialises adding a limiter
	series atomic.Pointer[map[id]*series] // copy on write: Observe reads without locking
}

// id tells limiters apart: two limiters may share a name only with different algorithms.
type id struct {
	name string
	alg  ratelimit.Algorithm
}

// series are one limiter's resolved counters, so Observe does no label lookups.
type series struct {
	outcomes []prometheus.Counter          // by ratelimit.Outcome, every known outcome
	callers  []prometheus.Counter          // by ratelimit.Outcome, failed_open and failed_closed (others nil)
	errs     map[string]prometheus.Counter // by kind, every kind in errorKinds; read only
	peeks    prometheus.Counter
	refunds  prometheus.Counter
	reloads  prometheus.Counter
	lockouts prometheus.Counter
	cached   prometheus.Counter
	latency  prometheus.Observer
}

// maxOutcomes bounds the outcomes resolved up front (ratelimit.Outcome values
// whose String is known).
const maxOutcomes = 32

// NewCollector returns a Collector configured by cfg, with no series yet; a
// limiter's series appear with its first event. Register it with
// reg.MustRegister(c) on the registry you serve; NewCollector itself registers
// nothing. It returns every problem of cfg at once, each naming the field and
// wrapping ratelimit.ErrInvalidConfig.
func NewCollector(cfg Config) (*Collector, error) {
	ns, buckets, err := cfg.check()
	if err != nil {
		return nil, err
	}
	lim := []string{"limiter", "algorithm"}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help},
			append(slices.Clone(lim), labels...))
	}
	c := &Collector{
		decisions: counter("decisions_total",
			"Rate-limit decisions of Allow, AllowN (n > 0) and Wait, by outcome (allowed, denied, locked_out, failed_open, failed_closed, failed_local, error).", "outcome"),
		callers: counter("caller_decisions_total",
			"Decisions a caller of the limiter (the HTTP middleware) made with its own failure policy because the limiter's key function or call failed, by outcome (failed_open, failed_closed); the failed call itself is counted in decisions_total as outcome error.", "outcome"),
		peeks: counter("peeks_total",
			"Peek calls (and AllowN with n = 0), which consume nothing and are not counted as decisions."),
		refunds: counter("refunds_total",
			"Refund calls, which give units back."),
		errors: counter("redis_errors_total",
			"Calls that failed in Redis, by error kind (timeout, connection, oom, busy, loading, unavailable, noperm, reply, canceled, other).", "kind"),
		reloads: counter("script_reloads_total",
			"Calls that found the script missing in Redis (NOSCRIPT) and sent it again with EVAL."),
		lockouts: counter("lockouts_total",
			"Lockouts started (Config.BlockFor)."),
		cached: counter("deny_cache_hits_total",
			"Decisions answered by the local deny cache (Config.DenyCache) with no Redis round trip; also counted in decisions_total."),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "redis_duration_seconds",
			Help: "Time a call spent in Redis, NOSCRIPT fallback included.", Buckets: buckets}, lim),
	}
	c.series.Store(&map[id]*series{})
	return c, nil
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, v := range c.vecs() {
		v.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, v := range c.vecs() {
		v.Collect(ch)
	}
}

func (c *Collector) vecs() []prometheus.Collector {
	return []prometheus.Collector{c.decisions, c.callers, c.peeks, c.refunds, c.errors, c.reloads, c.lockouts, c.cached, c.latency}
}

// Observe implements ratelimit.Observer: it counts one Event. It may be called
// concurrently. A limiter's first event creates its series (under a lock that
// Collect may hold briefly); after that Observe takes no lock, so it never
// waits for a scrape. Duration goes into the latency histogram only when the
// event spent time in Redis: deny-cache answers and ByCaller events do not.
func (c *Collector) Observe(e ratelimit.Event) {
	s := c.seriesOf(e.Limiter, e.Algorithm)
	if e.ByCaller {
		c.outcomeOf(s.callers, c.callers, e).Inc()
		return
	}
	switch e.Op {
	case ratelimit.OpPeek:
		s.peeks.Inc()
	case ratelimit.OpRefund:
		s.refunds.Inc()
	default:
		c.outcomeOf(s.outcomes, c.decisions, e).Inc()
	}
	if e.Duration > 0 {
		s.latency.Observe(e.Duration.Seconds())
	}
	if e.Err != nil {
		c.errorCounter(s, e).Inc()
	}
	if e.ScriptReloaded {
		s.reloads.Inc()
	}
	if e.LockStarted {
		s.lockouts.Inc()
	}
	if e.Cached {
		s.cached.Inc()
	}
}

func (c *Collector) seriesOf(name string, alg ratelimit.Algorithm) *series {
	k := id{name, alg}
	if s, ok := (*c.series.Load())[k]; ok {
		return s
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.series.Load()
	if s, ok := old[k]; ok {
		return s
	}
	a := alg.String()
	s := &series{
		errs:     make(map[string]prometheus.Counter, len(errorKinds)),
		peeks:    c.peeks.WithLabelValues(name, a),
		refunds:  c.refunds.WithLabelValues(name, a),
		reloads:  c.reloads.WithLabelValues(name, a),
		lockouts: c.lockouts.WithLabelValues(name, a),
		cached:   c.cached.WithLabelValues(name, a),
		latency:  c.latency.WithLabelValues(name, a),
	}
	// Every outcome's and error kind's series exists from the start at zero, so
	// rates, ratios and alerts work from the first denial, failure or error.
	for o := ratelimit.Outcome(0); o < maxOutcomes && o.String() != "unknown"; o++ {
		s.outcomes = append(s.outcomes, c.decisions.WithLabelValues(name, a, o.String()))
	}
	// A caller decides only by failing open or closed: those two exist at zero.
	s.callers = make([]prometheus.Counter, ratelimit.OutcomeFailedClosed+1)
	for _, o := range []ratelimit.Outcome{ratelimit.OutcomeFailedOpen, ratelimit.OutcomeFailedClosed} {
		s.callers[o] = c.callers.WithLabelValues(name, a, o.String())
	}
	for _, kind := range errorKinds {
		s.errs[kind] = c.errors.WithLabelValues(name, a, kind)
	}
	m := make(map[id]*series, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[k] = s
	c.series.Store(&m)
	return s
}

// outcomeOf is the counter of vec for e.Outcome, from resolved (one per known
// outcome); an outcome newer than this package is looked up by label (slower,
// but counted).
func (c *Collector) outcomeOf(resolved []prometheus.Counter, vec *prometheus.CounterVec, e ratelimit.Event) prometheus.Counter {
	if int(e.Outcome) < len(resolved) && resolved[e.Outcome] != nil {
		return resolved[e.Outcome]
	}
	return vec.WithLabelValues(e.Limiter, e.Algorithm.String(), e.Outcome.String())
}

// errorCounter is the errors counter for e.Err's kind; a kind newer than this
// package is looked up by label.
func (c *Collector) errorCounter(s *series, e ratelimit.Event) prometheus.Counter {
	kind := ratelimit.ErrorKind(e.Err)
	if v, ok := s.errs[kind]; ok {
		return v
	}
	return c.errors.WithLabelValues(e.Limiter, e.Algorithm.String(), kind)
}
