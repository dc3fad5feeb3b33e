// Package metrics exports what ratelimit Limiters decide as Prometheus series.
//
// A Collector is both a prometheus.Collector and a ratelimit.Observer: pass it
// as Config.Observer of every Limiter (and middleware.Config.Observer), and
// register it on the registry you serve. It never touches the default registry.
//
//	c := metrics.NewCollector()
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(c)
//	lim, err := ratelimit.New(rdb, ratelimit.Config{Name: "api", Limit: 100, Period: time.Minute, Observer: c})
//
// Labels take values from small fixed sets (limiter name, algorithm, outcome,
// error kind): never the rate-limit key.
package metrics

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed68425060/ratelimit"
)

// DefaultBuckets are the latency histogram's buckets in seconds: from 50µs,
// where a loopback Redis answers, to 1s, past any sane Config.Timeout.
var DefaultBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}

// Option configures a Collector.
type Option func(*options)

type options struct {
	namespace string
	buckets   []float64
}

// WithNamespace sets the metric name prefix. The default is "ratelimit".
func WithNamespace(ns string) Option { return func(o *options) { o.namespace = ns } }

// WithBuckets sets the latency histogram's buckets in seconds. The default is DefaultBuckets.
func WithBuckets(b []float64) Option { return func(o *options) { o.buckets = b } }

// Collector counts Limiter events as Prometheus series. It is safe for
// concurrent use; Observe does not allocate once a limiter's series exist.
//
// Series (with the default namespace):
//
//	ratelimit_decisions_total{limiter,algorithm,outcome}  decisions of Allow, AllowN, Wait
//	ratelimit_peeks_total{limiter,algorithm}                Peek and AllowN(…, 0) calls
//	ratelimit_refunds_total{limiter,algorithm}              Refund calls
//	ratelimit_redis_errors_total{limiter,algorithm,kind}    Redis errors by ratelimit.ErrorKind
//	ratelimit_script_reloads_total{limiter,algorithm}       NOSCRIPT fallbacks to EVAL
//	ratelimit_lockouts_total{limiter,algorithm}             lockouts started
//	ratelimit_deny_cache_hits_total{limiter,algorithm}      denials answered by the local deny cache
//	ratelimit_redis_duration_seconds{limiter,algorithm}     time in Redis per call (histogram)
//
// outcome is one of allowed, denied, locked_out, failed_open, failed_closed
// and error (ratelimit.Outcome.String); an explicit allowed count, so a deny
// ratio needs no subtraction.
type Collector struct {
	decisions *prometheus.CounterVec
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
	outcomes []prometheus.Counter // by ratelimit.Outcome, every known outcome
	peeks    prometheus.Counter
	refunds  prometheus.Counter
	reloads  prometheus.Counter
	lockouts prometheus.Counter
	cached   prometheus.Counter
	latency  prometheus.Observer

	mu   sync.Mutex // guards errs; errors are the rare path
	errs map[string]prometheus.Counter
}

// maxOutcomes bounds the outcomes resolved up front (ratelimit.Outcome values
// whose String is known).
const maxOutcomes = 32

// NewCollector returns a Collector with no series yet; a limiter's series
// appear with its first event.
func NewCollector(opts ...Option) *Collector {
	o := options{namespace: "ratelimit", buckets: DefaultBuckets}
	for _, f := range opts {
		f(&o)
	}
	lim := []string{"limiter", "algorithm"}
	c := &Collector{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: o.namespace, Name: "decisions_total",
			Help: "Rate-limit decisions (Allow, AllowN, Wait), by outcome."}, append(lim, "outcome")),
		peeks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: o.namespace, Name: "peeks_total",
			Help: "Peek calls (and AllowN with n = 0), which consume nothing."}, lim),
		refunds: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: o.namespace, Name: "refunds_total",
			Help: "Refund calls, which give units back."}, lim),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: o.namespace, Name: "redis_errors_total",
			Help: "Calls that failed in Redis, by error kind (timeout, connection, oom, busy, loading, unavailable, noperm, reply, canceled, other)."}, append(lim, "kind")),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: o.namespace, Name: "script_reloads_total",
			Help: "Calls that found the script missing in Redis (NOSCRIPT) and sent it again with EVAL."}, lim),
		lockouts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: o.namespace, Name: "lockouts_total",
			Help: "Lockouts started (Config.BlockFor)."}, lim),
		cached: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: o.namespace, Name: "deny_cache_hits_total",
			Help: "Decisions answered by the local deny cache (Config.DenyCache), with no Redis round trip; also counted in decisions_total."}, lim),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: o.namespace, Name: "redis_duration_seconds",
			Help: "Time a call spent in Redis, NOSCRIPT fallback included.", Buckets: o.buckets}, lim),
	}
	c.series.Store(&map[id]*series{})
	return c
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
	return []prometheus.Collector{c.decisions, c.peeks, c.refunds, c.errors, c.reloads, c.lockouts, c.cached, c.latency}
}

// Observe implements ratelimit.Observer.
func (c *Collector) Observe(e ratelimit.Event) {
	s := c.seriesOf(e.Limiter, e.Algorithm)
	switch e.Op {
	case ratelimit.OpPeek:
		s.peeks.Inc()
	case ratelimit.OpRefund:
		s.refunds.Inc()
	default:
		c.outcome(s, e).Inc()
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
	if e.Duration > 0 {
		s.latency.Observe(e.Duration.Seconds())
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
		peeks:    c.peeks.WithLabelValues(name, a),
		refunds:  c.refunds.WithLabelValues(name, a),
		reloads:  c.reloads.WithLabelValues(name, a),
		lockouts: c.lockouts.WithLabelValues(name, a),
		cached:   c.cached.WithLabelValues(name, a),
		latency:  c.latency.WithLabelValues(name, a),
	}
	// Every outcome's series exists from the start at zero, so rates, ratios
	// and alerts work before the first denial or failure.
	for o := ratelimit.Outcome(0); o < maxOutcomes && o.String() != "unknown"; o++ {
		s.outcomes = append(s.outcomes, c.decisions.WithLabelValues(name, a, o.String()))
	}
	s.errs = map[string]prometheus.Counter{}
	m := make(map[id]*series, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[k] = s
	c.series.Store(&m)
	return s
}

func (c *Collector) outcome(s *series, e ratelimit.Event) prometheus.Counter {
	if int(e.Outcome) < len(s.outcomes) {
		return s.outcomes[e.Outcome]
	}
	return c.decisions.WithLabelValues(e.Limiter, e.Algorithm.String(), e.Outcome.String())
}

func (c *Collector) errorCounter(s *series, e ratelimit.Event) prometheus.Counter {
	kind := ratelimit.ErrorKind(e.Err)
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.errs[kind]
	if !ok {
		v = c.errors.WithLabelValues(e.Limiter, e.Algorithm.String(), kind)
		s.errs[kind] = v
	}
	return v
}
