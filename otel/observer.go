// Package ratelimitotel records what ratelimit Limiters decide as
// OpenTelemetry metrics.
//
// An Observer is a ratelimit.Observer: pass it as Config.Observer of every
// Limiter (and of the HTTP middleware and gRPC interceptors, whose
// failure-policy decisions it counts apart). It records the facts the
// Prometheus collector of package metrics records, as OpenTelemetry
// instruments named in the semantic-convention style:
//
//	ratelimit.decisions          {decision}  Allow, AllowN (n > 0) and Wait decisions, by ratelimit.outcome
//	ratelimit.peeks              {call}      Peek and AllowN(…, 0) calls
//	ratelimit.refunds            {call}      Refund calls
//	ratelimit.redis.errors       {error}     Redis errors, by error.type (ratelimit.ErrorKind)
//	ratelimit.redis.duration     s           time a call spent in Redis (histogram)
//	ratelimit.script.reloads     {call}      NOSCRIPT fallbacks to EVAL
//	ratelimit.lockouts           {lockout}   lockouts started
//	ratelimit.deny_cache.hits    {decision}  decisions the local deny cache answered
//	ratelimit.adapter.decisions  {decision}  an adapter's OnFailure decisions, by ratelimit.outcome
//	ratelimit.invalid_costs      {request}   requests an adapter refused for their cost
//
// Every instrument has the attributes ratelimit.limiter (Config.Name) and
// ratelimit.algorithm; never a rate-limit key. Shadow mode's would-be denials
// are ratelimit.decisions with ratelimit.outcome "shadow_denied".
//
// It takes its MeterProvider in Config: there is no global state, and
// otel.GetMeterProvider is never called for you. It lives in a module of its
// own, so that users of the core never download OpenTelemetry.
package ratelimitotel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/seed68425060/ratelimit"
)

// ScopeName is the instrumentation scope of the Observer's Meter.
const ScopeName = "github.com/seed68425060/ratelimit/otel"

// Config configures an Observer.
type Config struct {
	// MeterProvider makes the Observer's Meter. Required: pass your SDK's
	// provider (or otel.GetMeterProvider() if you want the global one).
	MeterProvider metric.MeterProvider
}

// ErrInvalidConfig is wrapped by every error NewObserver returns.
var ErrInvalidConfig = errors.New("invalid config")

// Observer records Limiter events as OpenTelemetry metrics. Create it with
// NewObserver. It is safe for concurrent use; once a limiter's attribute
// sets exist, Observe takes no lock and builds no attribute set.
type Observer struct {
	decisions, peeks, refunds, errs, reloads, lockouts, cached, adapter, invalid metric.Int64Counter
	duration                                                                     metric.Float64Histogram

	mu     sync.Mutex                     // serialises adding a limiter
	series atomic.Pointer[map[id]*series] // copy on write
}

type id struct {
	name string
	alg  ratelimit.Algorithm
}

// series are one limiter's precomputed options: the attribute sets, made
// once, so that Observe allocates none.
type series struct {
	base     []metric.AddOption
	record   []metric.RecordOption
	outcomes map[ratelimit.Outcome][]metric.AddOption
	kinds    sync.Map // error kind -> []metric.AddOption
	attrs    []attribute.KeyValue
}

// NewObserver returns an Observer whose instruments come from
// cfg.MeterProvider's Meter for ScopeName.
func NewObserver(cfg Config) (*Observer, error) {
	if cfg.MeterProvider == nil {
		return nil, fmt.Errorf("ratelimitotel: Config.MeterProvider is nil, give the SDK's provider: %w", ErrInvalidConfig)
	}
	m := cfg.MeterProvider.Meter(ScopeName)
	o := &Observer{}
	var errs []error
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	o.decisions = counter("ratelimit.decisions", "{decision}", "Rate-limit decisions of Allow, AllowN (n > 0) and Wait, by outcome.")
	o.peeks = counter("ratelimit.peeks", "{call}", "Peek calls (and AllowN with n = 0), which consume nothing.")
	o.refunds = counter("ratelimit.refunds", "{call}", "Refund calls, which give units back.")
	o.errs = counter("ratelimit.redis.errors", "{error}", "Calls that failed in Redis, by error.type.")
	o.reloads = counter("ratelimit.script.reloads", "{call}", "Calls that found the script missing (NOSCRIPT) and sent it again with EVAL.")
	o.lockouts = counter("ratelimit.lockouts", "{lockout}", "Lockouts started.")
	o.cached = counter("ratelimit.deny_cache.hits", "{decision}", "Decisions answered by the local deny cache, with no Redis round trip.")
	o.adapter = counter("ratelimit.adapter.decisions", "{decision}", "Decisions an adapter (HTTP middleware, gRPC interceptor) made by its OnFailure after the limiter's error.")
	o.invalid = counter("ratelimit.invalid_costs", "{request}", "Requests an adapter refused because their cost can never fit.")
	h, err := m.Float64Histogram("ratelimit.redis.duration", metric.WithUnit("s"),
		metric.WithDescription("Time a call spent in Redis, NOSCRIPT fallback included."),
		metric.WithExplicitBucketBoundaries(.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1))
	errs = append(errs, err)
	o.duration = h
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("ratelimitotel: creating instruments: %w", err)
	}
	o.series.Store(&map[id]*series{})
	return o, nil
}

// Observe implements ratelimit.Observer: it records one Event. It never
// blocks on a lock after a limiter's first event.
func (o *Observer) Observe(e ratelimit.Event) {
	ctx := context.Background()
	s := o.seriesOf(e.Limiter, e.Algorithm)
	if e.Source != ratelimit.SourceLimiter {
		if errors.Is(e.Err, ratelimit.ErrInvalidCost) {
			o.invalid.Add(ctx, 1, s.base...)
		} else {
			o.adapter.Add(ctx, 1, s.outcome(e.Outcome)...)
		}
		return
	}
	switch e.Op {
	case ratelimit.OpPeek:
		o.peeks.Add(ctx, 1, s.base...)
	case ratelimit.OpRefund:
		o.refunds.Add(ctx, 1, s.base...)
	default:
		o.decisions.Add(ctx, 1, s.outcome(e.Outcome)...)
	}
	if e.Duration > 0 {
		o.duration.Record(ctx, e.Duration.Seconds(), s.record...)
	}
	if e.Err != nil {
		o.errs.Add(ctx, 1, s.kind(ratelimit.ErrorKind(e.Err))...)
	}
	if e.ScriptReloaded {
		o.reloads.Add(ctx, 1, s.base...)
	}
	if e.LockStarted {
		o.lockouts.Add(ctx, 1, s.base...)
	}
	if e.Cached {
		o.cached.Add(ctx, 1, s.base...)
	}
}

// outcomes are the outcomes whose attribute sets a limiter gets up front.
var outcomes = []ratelimit.Outcome{
	ratelimit.OutcomeError, ratelimit.OutcomeAllowed, ratelimit.OutcomeDenied, ratelimit.OutcomeLockedOut,
	ratelimit.OutcomeFailedOpen, ratelimit.OutcomeFailedClosed, ratelimit.OutcomeFailedLocal, ratelimit.OutcomeShadowDenied,
}

func (o *Observer) seriesOf(name string, alg ratelimit.Algorithm) *series {
	k := id{name, alg}
	if s, ok := (*o.series.Load())[k]; ok {
		return s
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	old := *o.series.Load()
	if s, ok := old[k]; ok {
		return s
	}
	attrs := []attribute.KeyValue{attribute.String("ratelimit.limiter", name), attribute.String("ratelimit.algorithm", alg.String())}
	set := attribute.NewSet(attrs...)
	s := &series{
		base:     []metric.AddOption{metric.WithAttributeSet(set)},
		record:   []metric.RecordOption{metric.WithAttributeSet(set)},
		outcomes: make(map[ratelimit.Outcome][]metric.AddOption, len(outcomes)),
		attrs:    attrs,
	}
	for _, oc := range outcomes {
		s.outcomes[oc] = s.with(attribute.String("ratelimit.outcome", oc.String()))
	}
	m := make(map[id]*series, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[k] = s
	o.series.Store(&m)
	return s
}

// with is the limiter's attributes and kv, as an option.
func (s *series) with(kv attribute.KeyValue) []metric.AddOption {
	all := append(append([]attribute.KeyValue(nil), s.attrs...), kv)
	return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(all...))}
}

// outcome is the option for outcome oc; one newer than this package is built
// on the spot (allocating).
func (s *series) outcome(oc ratelimit.Outcome) []metric.AddOption {
	if opts, ok := s.outcomes[oc]; ok {
		return opts
	}
	return s.with(attribute.String("ratelimit.outcome", oc.String()))
}

// kind is the option for an error kind, made once per kind.
func (s *series) kind(k string) []metric.AddOption {
	if v, ok := s.kinds.Load(k); ok {
		return v.([]metric.AddOption)
	}
	opts := s.with(attribute.String("error.type", k))
	s.kinds.Store(k, opts)
	return opts
}
