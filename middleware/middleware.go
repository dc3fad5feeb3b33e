package middleware

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/seed68425060/ratelimit"
	"github.com/seed68425060/ratelimit/clientip"
)

// Response header names the middleware writes. net/http sends them in canonical
// form ("Ratelimit-Policy", "X-Ratelimit-Limit"); field names are
// case-insensitive (RFC 9110 §5.1).
const (
	// HeaderRateLimitPolicy is the IETF draft's policy field (HeadersDraft).
	HeaderRateLimitPolicy = "RateLimit-Policy"
	// HeaderRateLimit is the IETF draft's current-limit field (HeadersDraft).
	HeaderRateLimit = "RateLimit"
	// HeaderXRateLimitLimit is the legacy quota header (HeadersLegacy).
	HeaderXRateLimitLimit = "X-RateLimit-Limit"
	// HeaderXRateLimitRemaining is the legacy remaining header (HeadersLegacy).
	HeaderXRateLimitRemaining = "X-RateLimit-Remaining"
	// HeaderXRateLimitReset is the legacy reset header (HeadersLegacy): delta
	// seconds, not a Unix time.
	HeaderXRateLimitReset = "X-RateLimit-Reset"
	// HeaderRetryAfter is written on denied and unavailable responses, in whole
	// seconds rounded up.
	HeaderRetryAfter = "Retry-After"
)

// Canonical forms of the header names, to set them without canonicalising (and
// allocating) on every request.
var (
	canonRateLimitPolicy     = http.CanonicalHeaderKey(HeaderRateLimitPolicy)
	canonRateLimit           = http.CanonicalHeaderKey(HeaderRateLimit)
	canonXRateLimitLimit     = http.CanonicalHeaderKey(HeaderXRateLimitLimit)
	canonXRateLimitRemaining = http.CanonicalHeaderKey(HeaderXRateLimitRemaining)
	canonXRateLimitReset     = http.CanonicalHeaderKey(HeaderXRateLimitReset)
	canonRetryAfter          = http.CanonicalHeaderKey(HeaderRetryAfter)
)

// oneValue is a header value list of v, as http.Header.Set stores it.
func oneValue(v string) []string { return []string{v} }

// ProblemTypeQuotaExceeded is the problem type (RFC 9457) of the default denied
// response in application/problem+json, from draft-ietf-httpapi-ratelimit-headers.
const ProblemTypeQuotaExceeded = "https://iana.org/assignments/http-problem-types#quota-exceeded"

// HeaderMode selects the rate-limit headers written on every limited response.
// The zero value is HeadersDraft.
type HeaderMode uint8

// Header modes.
const (
	// HeadersDraft writes the structured fields of the IETF draft
	// draft-ietf-httpapi-ratelimit-headers (revisions -09 to -11):
	//
	//	RateLimit-Policy: "<name>";q=<quota>;w=<window>
	//	RateLimit: "<name>";r=<remaining>;t=<reset>
	//
	// one list item per rate of each limiter. A limiter of one rate is named
	// by its ratelimit.Config.Name; one of several rates (ratelimit.Config.Rates,
	// or Config.Rates here) lists one item per rate, named "<Name>/<window>s"
	// (e.g. "api/1s" and "api/86400s"), and its RateLimit item names the rate
	// that bound this request (ratelimit.Result.Limit). RateLimit-Policy lists every limiter of the
	// middleware (except those in Config.NoHeaders), in order, on every
	// response. RateLimit lists, in order, the limiters that decided this
	// request (on a denial: those up to and including the one that denied; a
	// limiter that failed is left out). <name> is ratelimit.Config.Name,
	// remaining is Result.Remaining, and reset is Result.ResetAfter (admitted)
	// or Result.RetryAfter (denied) in whole seconds rounded up.
	//
	// Each policy item is true to what its limiter admits: quota/window is at
	// most the sustained rate Limit/Period, and for the buckets a client that
	// sends <quota> units at once every <window> seconds is always admitted:
	//
	//   - TokenBucket and LeakyBucket: quota is Config.Burst (the most admitted
	//     at once) and window is the time an empty bucket takes to refill it,
	//     Burst×Period/Limit, in whole seconds rounded up. A bucket of 10/s with
	//     burst 20 is "q=20;w=2"; 100/min with burst 20 "q=20;w=12"; with the
	//     default Burst (Limit), "q=Limit;w=Period". When the refill takes
	//     under a second (1000/s with burst 10), the item states the sustained
	//     rate over one second ("q=1000;w=1"): paced, not all at once.
	//   - SlidingWindow: quota is Config.Limit and window Config.Period in
	//     whole seconds rounded up (at least 1): the rolling window's own terms
	//     (a client that sends Limit at once must then wait up to two Periods).
	HeadersDraft HeaderMode = iota
	// HeadersLegacy writes X-RateLimit-Limit (quota), X-RateLimit-Remaining and
	// X-RateLimit-Reset, with the meanings of HeadersDraft. X-RateLimit-Reset is
	// delta seconds until reset, NOT a Unix time as GitHub sends. These headers
	// hold one value, so with several limiters they describe the most
	// restrictive one: the one that denied, otherwise the one with the least
	// remaining (on a tie, the longest reset).
	HeadersLegacy
	// HeadersNone writes no rate-limit headers (Retry-After is still written on
	// denials). Use it for login and similar routes, where the budget left
	// tells an attacker how fast it may guess.
	HeadersNone
)

// String returns "draft", "legacy" or "none".
func (m HeaderMode) String() string {
	switch m {
	case HeadersDraft:
		return "draft"
	case HeadersLegacy:
		return "legacy"
	case HeadersNone:
		return "none"
	}
	return fmt.Sprintf("HeaderMode(%d)", uint8(m))
}

// KeyFunc returns the rate-limit key of a request. An error means no key could
// be found; the middleware then applies Config.OnFailure.
type KeyFunc func(*http.Request) (string, error)

// Config configures a Middleware. New copies it; changing it later has no effect.
type Config struct {
	// Limiters are checked for every request, in order, with the same cost.
	// The first one that denies stops the check: later limiters are not
	// consulted (nothing is taken from them), and every earlier limiter that
	// admitted the request gets its cost back (ratelimit.Limiter.Refund), so a
	// denied request costs nothing. Put the cheapest-to-exhaust, most specific
	// limiter first (per client, then global). Required: at least one, no nil
	// and no two with the same Config.Name.
	//
	// Each limiter's own ratelimit.Config.OnFailure decides first: with FailOpen,
	// FailClosed or FailLocal there the limiter returns no error, and the
	// middleware treats ratelimit.OutcomeFailedOpen as admitted,
	// ratelimit.OutcomeFailedClosed like an error under FailClosed, and
	// ratelimit.OutcomeFailedLocal by its Result.Allowed. Leave it at FailError
	// to let Config.OnFailure decide.
	Limiters []*ratelimit.Limiter

	// KeyFunc returns the key under which every limiter counts the request. If
	// nil, it is ClientIP.Key: the client address, grouped by prefix.
	KeyFunc KeyFunc

	// ClientIP finds the client of a request for the default KeyFunc (it is
	// unused when KeyFunc is set). The zero value (the default) keys clients by
	// their peer address, IPv6 by /64, and ignores proxy headers: right for a
	// server that clients reach directly, and the only safe choice unless every
	// request passes through proxies you run; list those in
	// ClientIP.TrustedProxies. New reports the problems of clientip.Config.Validate.
	ClientIP clientip.Config

	// Keys overrides KeyFunc for single limiters, by their Config.Name: for a
	// global limiter, say, Keys: map[string]KeyFunc{"global": ConstantKey("all")}.
	// Every name must be one of Limiters. If nil, every limiter uses KeyFunc.
	Keys map[string]KeyFunc

	// Cost returns the units a request takes from every limiter. If nil, every
	// request costs 1. A cost of 0 only checks (nothing is taken). A cost below 0
	// or above a limiter's Burst can never be admitted: it is the caller's
	// error, not Redis's, so OnFailure does not apply. Such a request is never
	// served: earlier limiters get their units back, later ones are not
	// consulted, Observer gets an Event with Outcome ratelimit.OutcomeError, Err
	// wrapping ratelimit.ErrInvalidCost and Duration 0 (so it never counts as a
	// Redis error or failing open), and InvalidCost answers.
	Cost func(*http.Request) int

	// InvalidCost answers a request whose Cost is outside 0..Burst of a limiter;
	// DenialFrom(r.Context()) tells which limiter (Denial.Result is zero) and
	// the cost. If nil, it is status 400 Bad Request, without Retry-After
	// (waiting never helps), with a short text/plain body or, when the Accept
	// header names application/problem+json, a problem detail (RFC 9457) with
	// "limiter" and "cost" members.
	InvalidCost http.Handler

	// Denied answers a request that a limiter denied. The middleware has already
	// set Retry-After and the rate-limit headers; DenialFrom(r.Context()) tells
	// which limiter denied. If nil, it is the default: status 429, and a short
	// body, "429 Too Many Requests" in text/plain, or, when the request's Accept
	// header names application/problem+json, a problem detail (RFC 9457) of type
	// ProblemTypeQuotaExceeded with the "violated-policies" member.
	Denied http.Handler

	// Unavailable answers a request refused under ratelimit.FailClosed because a limiter
	// could not decide. The middleware has already set Retry-After. If nil, it
	// is status 503 Service Unavailable with a short text/plain body: the server
	// cannot serve the request right now, which is not the client's fault (so
	// not 429). It writes no rate-limit headers: there is nothing to report.
	Unavailable http.Handler

	// OnFailure says what to do when a limiter returns an error (Redis down or
	// slow, a bad reply, a KeyFunc error): no decision was made. It is the
	// root's vocabulary, with these meanings here:
	//
	//   - ratelimit.FailOpen serves the request as if that limiter had admitted
	//     it, and goes on with the next limiter. Availability over protection:
	//     for API routes where an outage of Redis must not become an outage of
	//     the API.
	//   - ratelimit.FailClosed refuses the request with Unavailable (by default
	//     503 Service Unavailable with Retry-After: 1) and gives back what
	//     earlier limiters took. Protection over availability: for login and
	//     other routes where an unlimited attacker does more harm than an outage.
	//
	// Required: New rejects the zero value, ratelimit.FailError (a handler has
	// no caller to return the error to), so every deployment states its choice;
	// it rejects ratelimit.FailLocal too: set that on the limiter's own
	// ratelimit.Config.OnFailure, which decides first. A request whose own
	// context has ended (the client went away, a server deadline passed) is
	// answered like FailClosed whatever OnFailure says, and is not reported to
	// Observer: Redis did not fail.
	OnFailure ratelimit.FailurePolicy

	// Headers selects the rate-limit response headers. The zero value is
	// HeadersDraft. Use HeadersNone on login routes.
	Headers HeaderMode

	// NoHeaders names limiters (by Config.Name) that the rate-limit headers
	// leave out, whatever Headers says: typically a global limiter, whose
	// Remaining is shared by every client and tells one client nothing it can
	// act on (and tells everyone how busy the service is). Such a limiter
	// still limits; when it denies, the response has Retry-After, the draft
	// RateLimit field lists only the other limiters that decided, and the
	// legacy X-RateLimit-* headers are not written (they would describe a
	// limiter that did not deny). Every name must be one of Limiters. If nil,
	// every limiter is shown.
	NoHeaders []string

	// Rates gives limiters, by their Config.Name, rates per request: a
	// customer's plan looked up from the request's API key, say. The function
	// returns the rates that request is checked against (through
	// ratelimit.Limiter.With, so a customer who changes plan keeps its state),
	// or nil for the limiter's own. An error is handled like a limiter error
	// (OnFailure); bad rates (ratelimit.ErrInvalidConfig) are always refused
	// with Unavailable, since serving them unlimited would hide the bug.
	// Limiter.With keeps a view per distinct rate set. Every name must be one
	// of Limiters. If nil, every limiter uses its own rates.
	Rates map[string]func(*http.Request) ([]ratelimit.Rate, error)

	// Skip, if not nil, is called first; when it returns true the request goes
	// to the next handler unlimited and without rate-limit headers (health
	// checks, allow-listed clients).
	Skip func(*http.Request) bool

	// Observer, if not nil, receives an Event each time OnFailure applied: for
	// every limiter that could not decide (its key function or AllowN returned
	// an error), an Event with its Name and Algorithm,
	// Op ratelimit.OpAllow, Err the error, and Outcome
	// ratelimit.OutcomeFailedOpen or ratelimit.OutcomeFailedClosed. (The limiter's
	// own Observer has seen the call as ratelimit.OutcomeError.) Pass the same
	// metrics Collector to count requests served or refused during an outage.
	// It also receives one Event per rejected Cost (see Cost): Outcome
	// ratelimit.OutcomeError, Err wrapping ratelimit.ErrInvalidCost (test with
	// errors.Is), Duration 0.
	Observer ratelimit.Observer
}

// Middleware rate-limits HTTP requests. It is safe for concurrent use. Create it
// with New.
type Middleware struct {
	limiters    []*ratelimit.Limiter
	key         KeyFunc                                         // the shared KeyFunc
	keys        []KeyFunc                                       // per limiter: an override from Config.Keys, or nil for key
	quota       []string                                        // per limiter: strconv of Burst
	names       []string                                        // per limiter
	hidden      []bool                                          // per limiter: named in Config.NoHeaders
	rates       []func(*http.Request) ([]ratelimit.Rate, error) // per limiter: Config.Rates, or nil
	items       [][]string                                      // per limiter: its RateLimit-Policy items
	policy      string                                          // RateLimit-Policy value of the limiters' own rates
	cost        func(*http.Request) int
	denied      http.Handler
	invalidCost http.Handler
	unavailable http.Handler
	onFailure   ratelimit.FailurePolicy
	headers     HeaderMode
	skip        func(*http.Request) bool
	observer    ratelimit.Observer
}

// ConstantKey returns a KeyFunc that returns key for every request, for a limiter
// shared by all clients.
func ConstantKey(key string) KeyFunc {
	return func(*http.Request) (string, error) { return key, nil }
}

// New checks cfg and returns a Middleware. Every problem is reported at once,
// each naming the Config field and wrapping ratelimit.ErrInvalidConfig.
func New(cfg Config) (*Middleware, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("middleware: "+format+": %w", append(args, ratelimit.ErrInvalidConfig)...))
	}
	if len(cfg.Limiters) == 0 {
		bad("Config.Limiters is empty, need at least one limiter")
	}
	seen := make(map[string]bool, len(cfg.Limiters))
	for i, l := range cfg.Limiters {
		if l == nil {
			bad("Config.Limiters[%d] is nil", i)
			continue
		}
		name := l.Config().Name
		if seen[name] {
			bad("Config.Limiters[%d] has Name %q like an earlier limiter, names must differ", i, name)
		}
		seen[name] = true
	}
	for name, f := range cfg.Keys {
		if !seen[name] {
			bad("Config.Keys[%q] names no limiter in Config.Limiters", name)
		}
		if f == nil {
			bad("Config.Keys[%q] is nil", name)
		}
	}
	for name, f := range cfg.Rates {
		if !seen[name] {
			bad("Config.Rates[%q] names no limiter in Config.Limiters", name)
		}
		if f == nil {
			bad("Config.Rates[%q] is nil", name)
		}
	}
	for i, name := range cfg.NoHeaders {
		if !seen[name] {
			bad("Config.NoHeaders[%d] = %q names no limiter in Config.Limiters", i, name)
		}
	}
	switch cfg.OnFailure {
	case ratelimit.FailOpen, ratelimit.FailClosed:
	case ratelimit.FailLocal:
		bad("Config.OnFailure = %v, must be FailOpen or FailClosed (set FailLocal on the limiters' own ratelimit.Config.OnFailure)", cfg.OnFailure)
	default:
		bad("Config.OnFailure = %v, must be FailOpen or FailClosed (there is no default)", cfg.OnFailure)
	}
	if cfg.Headers > HeadersNone {
		bad("Config.Headers = %d, must be HeadersDraft, HeadersLegacy or HeadersNone", uint8(cfg.Headers))
	}
	if err := cfg.ClientIP.Validate(); err != nil {
		list := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			list = j.Unwrap()
		}
		for _, e := range list {
			errs = append(errs, configError{fmt.Errorf("middleware: Config.ClientIP: %w", e)})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	m := &Middleware{
		limiters:    append([]*ratelimit.Limiter(nil), cfg.Limiters...),
		cost:        cfg.Cost,
		denied:      cfg.Denied,
		invalidCost: cfg.InvalidCost,
		unavailable: cfg.Unavailable,
		onFailure:   cfg.OnFailure,
		headers:     cfg.Headers,
		skip:        cfg.Skip,
		observer:    cfg.Observer,
	}
	if m.denied == nil {
		m.denied = http.HandlerFunc(defaultDenied)
	}
	if m.invalidCost == nil {
		m.invalidCost = http.HandlerFunc(defaultInvalidCost)
	}
	if m.unavailable == nil {
		m.unavailable = http.HandlerFunc(defaultUnavailable)
	}
	key := cfg.KeyFunc
	if key == nil {
		c := cfg.ClientIP
		c.TrustedProxies = slices.Clone(c.TrustedProxies)
		key = func(r *http.Request) (string, error) { return c.Key(r), nil }
	}
	m.key = key
	var policy []string
	for _, l := range m.limiters {
		lc := l.Config()
		m.keys = append(m.keys, cfg.Keys[lc.Name])
		m.names = append(m.names, lc.Name)
		m.hidden = append(m.hidden, slices.Contains(cfg.NoHeaders, lc.Name))
		m.quota = append(m.quota, strconv.Itoa(lc.Burst))
		m.rates = append(m.rates, cfg.Rates[lc.Name])
		items := policyItems(lc.Name, lc.Algorithm, l.Rates())
		m.items = append(m.items, items)
		if !m.hidden[len(m.hidden)-1] {
			policy = append(policy, items...)
		}
	}
	m.policy = strings.Join(policy, ", ")
	return m, nil
}

// policyItems are the RateLimit-Policy items of a limiter named name with
// rates: one per rate, named name alone for a single rate.
func policyItems(name string, alg ratelimit.Algorithm, rates []ratelimit.Rate) []string {
	items := make([]string, len(rates))
	for i, r := range rates {
		q, w := policyItem(alg, r)
		items[i] = strconv.Quote(itemName(name, rates, r)) + ";q=" + strconv.FormatInt(q, 10) + ";w=" + strconv.FormatInt(w, 10)
	}
	return items
}

// itemName names rate r of rates in the headers: the limiter's name alone
// for a single rate, else name + "/" + the rate's window in seconds.
func itemName(name string, rates []ratelimit.Rate, r ratelimit.Rate) string {
	if len(rates) <= 1 {
		return name
	}
	return name + "/" + strconv.FormatInt(ceilSeconds(r.Period, 1), 10) + "s"
}

// configError is a clientip.Config problem that also wraps
// ratelimit.ErrInvalidConfig, as every problem New reports does.
type configError struct{ err error }

func (e configError) Error() string   { return e.err.Error() }
func (e configError) Unwrap() []error { return []error{e.err, ratelimit.ErrInvalidConfig} }

// policyItem returns the quota and window (whole seconds) of a rate's
// RateLimit-Policy item, as documented on HeadersDraft.
func policyItem(alg ratelimit.Algorithm, lc ratelimit.Rate) (q, w int64) {
	if alg == ratelimit.SlidingWindow {
		return int64(lc.Limit), ceilSeconds(lc.Period, 1)
	}
	// The scripts' interval: one unit per ceil(Period/Limit) µs.
	p := lc.Period.Microseconds()
	if lc.Period%time.Microsecond != 0 {
		p++
	}
	iv := (p + int64(lc.Limit) - 1) / int64(lc.Limit)
	refill := time.Duration(int64(lc.Burst)*iv) * time.Microsecond
	if refill < time.Second {
		return int64(time.Second/time.Microsecond) / iv, 1
	}
	return int64(lc.Burst), ceilSeconds(refill, 1)
}

// Denial describes why the middleware denied a request, for a custom
// Config.Denied handler.
type Denial struct {
	// Limiter is the Config.Name of the limiter that denied.
	Limiter string
	// Result is that limiter's Result (zero for an invalid cost).
	Result ratelimit.Result
	// Cost is the request's cost (Config.Cost).
	Cost int
}

type denialKey struct{}

// DenialFrom returns the Denial that the middleware stored in the context of a
// request it passes to Config.Denied or Config.InvalidCost, and reports whether
// there was one.
func DenialFrom(ctx context.Context) (Denial, bool) {
	d, ok := ctx.Value(denialKey{}).(Denial)
	return d, ok
}

// decision is one limiter's answer for one request.
type decision struct {
	idx int
	key string
	lim *ratelimit.Limiter // the limiter or its view with the request's rates
	res ratelimit.Result
}

// maxInline is how many decisions Handler keeps on the stack.
const maxInline = 4

// Handler returns a handler that rate-limits requests and passes the admitted
// ones to next. Its method value fits func(http.Handler) http.Handler chains.
func (m *Middleware) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.skip != nil && m.skip(r) {
			next.ServeHTTP(w, r)
			return
		}
		cost := 1
		if m.cost != nil {
			cost = m.cost(r)
		}
		ctx := r.Context()
		var buf [maxInline]decision
		taken := buf[:0] // limiters that decided, in order
		var shared string
		var sharedErr error
		sharedDone := false
		for i, l := range m.limiters {
			var key string
			var err error
			if f := m.keys[i]; f != nil {
				key, err = f(r)
			} else {
				if !sharedDone {
					shared, sharedErr = m.key(r)
					sharedDone = true
				}
				key, err = shared, sharedErr
			}
			if f := m.rates[i]; f != nil && err == nil {
				var rates []ratelimit.Rate
				if rates, err = f(r); err == nil && rates != nil {
					l, err = l.With(rates...) // the same view per plan (see With)
				}
				if err != nil && errors.Is(err, ratelimit.ErrInvalidConfig) {
					m.observe(i, ratelimit.OutcomeFailedClosed, err)
					m.refund(ctx, taken, cost)
					m.refuse(w, r, 0)
					return
				}
			}
			var res ratelimit.Result
			if err == nil {
				res, err = l.AllowN(ctx, key, cost)
			}
			if err != nil && errors.Is(err, ratelimit.ErrInvalidCost) {
				// The caller's error, decided before any Redis call: never
				// served, and not a failure for OnFailure.
				m.observe(i, ratelimit.OutcomeError, err)
				m.refund(ctx, taken, cost)
				ctx := context.WithValue(ctx, denialKey{}, Denial{Limiter: m.names[i], Cost: cost})
				m.invalidCost.ServeHTTP(w, r.WithContext(ctx))
				return
			}
			if err != nil {
				if ctx.Err() != nil {
					// The request itself ended (client gone, deadline): no Redis
					// failure to report, and no point in serving it.
					m.refund(ctx, taken, cost)
					m.refuse(w, r, 0)
					return
				}
				if m.onFailure == ratelimit.FailOpen {
					m.observe(i, ratelimit.OutcomeFailedOpen, err)
					continue
				}
				m.observe(i, ratelimit.OutcomeFailedClosed, err)
				m.refund(ctx, taken, cost)
				m.refuse(w, r, 0)
				return
			}
			switch res.Outcome {
			case ratelimit.OutcomeFailedOpen:
				continue // the limiter's own policy; it has told its observer
			case ratelimit.OutcomeFailedClosed:
				m.refund(ctx, taken, cost)
				m.refuse(w, r, res.RetryAfter)
				return
			}
			taken = append(taken, decision{idx: i, key: key, lim: l, res: res})
			if !res.Allowed {
				m.refund(ctx, taken[:len(taken)-1], cost)
				m.deny(w, r, taken, cost)
				return
			}
		}
		m.writeHeaders(w.Header(), taken, -1)
		next.ServeHTTP(w, r)
	})
}

// observe reports that OnFailure (or an invalid cost) decided for limiter i.
func (m *Middleware) observe(i int, o ratelimit.Outcome, err error) {
	if m.observer == nil {
		return
	}
	lc := m.limiters[i].Config()
	m.observer.Observe(ratelimit.Event{Limiter: lc.Name, Algorithm: lc.Algorithm, Outcome: o, Op: ratelimit.OpAllow, Err: err, Source: ratelimit.SourceAdapter})
}

// refund gives back cost to every limiter in taken that admitted the request.
// It runs even if the request's context has ended, since the units were taken.
// A failed refund is reported to the limiter's Observer and otherwise ignored.
func (m *Middleware) refund(ctx context.Context, taken []decision, cost int) {
	if cost <= 0 {
		return
	}
	ctx = context.WithoutCancel(ctx)
	for _, d := range taken {
		if d.res.Outcome == ratelimit.OutcomeAllowed {
			_, _ = d.lim.Refund(ctx, d.key, cost)
		}
	}
}

// refuse answers under ratelimit.FailClosed, with Retry-After retry rounded up, at least 1s.
func (m *Middleware) refuse(w http.ResponseWriter, r *http.Request, retry time.Duration) {
	w.Header()[canonRetryAfter] = oneValue(strconv.FormatInt(ceilSeconds(retry, 1), 10))
	m.unavailable.ServeHTTP(w, r)
}

// deny answers a denial by the last limiter in taken.
func (m *Middleware) deny(w http.ResponseWriter, r *http.Request, taken []decision, cost int) {
	d := taken[len(taken)-1]
	h := w.Header()
	h[canonRetryAfter] = oneValue(strconv.FormatInt(ceilSeconds(d.res.RetryAfter, 1), 10))
	m.writeHeaders(h, taken, len(taken)-1)
	ctx := context.WithValue(r.Context(), denialKey{}, Denial{Limiter: m.names[d.idx], Result: d.res, Cost: cost})
	m.denied.ServeHTTP(w, r.WithContext(ctx))
}

// writeHeaders writes the rate-limit headers for the decisions in taken; denied
// is the index in taken of the denying decision, or -1. Limiters in
// Config.NoHeaders are left out.
func (m *Middleware) writeHeaders(h http.Header, taken []decision, denied int) {
	if len(taken) == 0 || m.headers == HeadersNone {
		return
	}
	if denied >= 0 && m.hidden[taken[denied].idx] && m.headers == HeadersLegacy {
		return // the legacy headers would describe a limiter that did not deny
	}
	switch m.headers {
	case HeadersDraft:
		policy := m.policy
		if m.perRequest(taken) {
			policy = m.requestPolicy(taken)
		}
		if policy == "" {
			return // every limiter is hidden
		}
		h[canonRateLimitPolicy] = oneValue(policy)
		var b strings.Builder
		for _, d := range taken {
			if m.hidden[d.idx] {
				continue
			}
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Quote(itemName(m.names[d.idx], d.lim.Rates(), d.res.Limit)))
			b.WriteString(";r=")
			b.WriteString(strconv.Itoa(d.res.Remaining))
			b.WriteString(";t=")
			b.WriteString(strconv.FormatInt(resetSeconds(d.res), 10))
		}
		if b.Len() > 0 {
			h[canonRateLimit] = oneValue(b.String())
		}
	case HeadersLegacy:
		best := denied
		if best < 0 {
			for j, d := range taken {
				if m.hidden[d.idx] {
					continue
				}
				if best < 0 {
					best = j
					continue
				}
				b := taken[best].res
				if d.res.Remaining < b.Remaining || d.res.Remaining == b.Remaining && resetSeconds(d.res) > resetSeconds(b) {
					best = j
				}
			}
			if best < 0 {
				return // every limiter that decided is hidden
			}
		}
		d := taken[best]
		quota := m.quota[d.idx]
		if d.lim != m.limiters[d.idx] || len(d.lim.Rates()) > 1 {
			quota = strconv.Itoa(d.res.Limit.Burst)
		}
		h[canonXRateLimitLimit] = oneValue(quota)
		h[canonXRateLimitRemaining] = oneValue(strconv.Itoa(d.res.Remaining))
		h[canonXRateLimitReset] = oneValue(strconv.FormatInt(resetSeconds(d.res), 10))
	}
}

// perRequest reports whether a decision in taken used rates of the request.
func (m *Middleware) perRequest(taken []decision) bool {
	for _, d := range taken {
		if d.lim != m.limiters[d.idx] {
			return true
		}
	}
	return false
}

// requestPolicy is RateLimit-Policy for a request whose rates came from
// Config.Rates: each limiter's items as it decided this request, or as
// configured when it did not decide.
func (m *Middleware) requestPolicy(taken []decision) string {
	var items []string
	for i, l := range m.limiters {
		if m.hidden[i] {
			continue
		}
		own := m.items[i]
		for _, d := range taken {
			if d.idx == i && d.lim != l {
				own = policyItems(m.names[i], l.Config().Algorithm, d.lim.Rates())
			}
		}
		items = append(items, own...)
	}
	return strings.Join(items, ", ")
}

// resetSeconds is the reset of a Result in whole seconds, rounded up:
// RetryAfter when denied, ResetAfter when admitted.
func resetSeconds(r ratelimit.Result) int64 {
	if !r.Allowed {
		return ceilSeconds(r.RetryAfter, 1)
	}
	return ceilSeconds(r.ResetAfter, 0)
}

// ceilSeconds is d in whole seconds, rounded up, and at least lo.
func ceilSeconds(d time.Duration, lo int64) int64 {
	s := int64(d / time.Second)
	if d%time.Second > 0 {
		s++
	}
	if s < lo {
		s = lo
	}
	return s
}

func defaultDenied(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if acceptsProblem(r.Header.Values("Accept")) {
		d, _ := DenialFrom(r.Context())
		h.Set("Content-Type", "application/problem+json")
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusTooManyRequests)
		// d.Limiter matches [a-z0-9][a-z0-9_.-]*: safe inside a JSON string.
		fmt.Fprintf(w, `{"type":%q,"title":"Too Many Requests","status":429,"violated-policies":[%q]}`+"\n",
			ProblemTypeQuotaExceeded, d.Limiter)
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write([]byte("429 Too Many Requests\n"))
}

func defaultInvalidCost(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	if acceptsProblem(r.Header.Values("Accept")) {
		d, _ := DenialFrom(r.Context())
		h.Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusBadRequest)
		// d.Limiter matches [a-z0-9][a-z0-9_.-]*: safe inside a JSON string.
		fmt.Fprintf(w, `{"type":"about:blank","title":"Bad Request","status":400,"detail":"the request's cost can never be admitted","limiter":%q,"cost":%d}`+"\n",
			d.Limiter, d.Cost)
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = w.Write([]byte("400 Bad Request: the request's cost can never be admitted\n"))
}

func defaultUnavailable(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte("503 Service Unavailable\n"))
}

// acceptsProblem reports whether the Accept header lines name
// application/problem+json with a non-zero q.
func acceptsProblem(lines []string) bool {
	for _, line := range lines {
		for line != "" {
			var elem string
			elem, line, _ = strings.Cut(line, ",")
			mt, params, _ := strings.Cut(elem, ";")
			if !strings.EqualFold(strings.TrimSpace(mt), "application/problem+json") {
				continue
			}
			if q, ok := qValue(params); !ok || q > 0 {
				return true
			}
		}
	}
	return false
}

// qValue returns the q parameter among media-type parameters, if present.
func qValue(params string) (float64, bool) {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		name, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(strings.TrimSpace(name), "q") {
			q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, true
			}
			return q, true
		}
	}
	return 0, false
}
