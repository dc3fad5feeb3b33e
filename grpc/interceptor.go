package ratelimitgrpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/seed68425060/ratelimit"
	"github.com/seed68425060/ratelimit/clientip"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Response metadata keys the interceptors write on every call they limit,
// admitted or denied. gRPC metadata keys are lower case. They describe the
// binding decision: that of the limiter that denied the call, or else of the
// limiter with the least remaining (on a tie, the longest reset); limiters in
// Config.NoMetadata are left out.
const (
	// MetadataLimit is the binding rate (ratelimit.Result.Limit) as
	// ratelimit.Rate.String writes it: "100/min", "10/s burst 20".
	MetadataLimit = "ratelimit-limit"
	// MetadataRemaining is ratelimit.Result.Remaining in decimal.
	MetadataRemaining = "ratelimit-remaining"
	// MetadataReset is the time until the limit resets, in whole seconds
	// rounded up: Result.RetryAfter (at least 1) when denied, Result.ResetAfter
	// when admitted. It has the meaning of the HTTP middleware's
	// X-RateLimit-Reset: delta seconds, not a Unix time.
	MetadataReset = "ratelimit-reset"
)

// Call is what the interceptors know of an incoming call before its handler
// runs: what a KeyFunc, a Rates function, Cost and Skip decide from.
type Call struct {
	// FullMethod is the method's full name, "/package.Service/Method".
	FullMethod string
	// Metadata is the call's incoming metadata (keys in lower case), or nil if
	// it has none. It must not be modified.
	Metadata metadata.MD
	// Peer is the client end of the connection (address, TLS state), or nil
	// if gRPC did not record one.
	Peer *peer.Peer
}

// KeyFunc returns the rate-limit key of a call. An error means no key could
// be found; the interceptor then applies Config.OnFailure.
type KeyFunc func(ctx context.Context, call Call) (string, error)

// ConstantKey returns a KeyFunc that returns key for every call, for a limiter
// shared by all clients.
func ConstantKey(key string) KeyFunc {
	return func(context.Context, Call) (string, error) { return key, nil }
}

// Config configures an Interceptor. New copies it; changing it later has no
// effect.
type Config struct {
	// Limiters are checked, in order and with the same cost, for every call
	// whose method no entry of Methods matches. The first one that denies stops
	// the check: later limiters are not consulted (nothing is taken from them),
	// and every earlier limiter that admitted the call gets its cost back
	// (ratelimit.Limiter.Refund), so a denied call costs nothing. Put the
	// cheapest-to-exhaust, most specific limiter first (per client, then
	// global). If empty, calls that Methods does not match are not limited.
	//
	// Each limiter's own ratelimit.Config.OnFailure decides first: with
	// FailOpen, FailClosed or FailLocal there the limiter returns no error, and
	// the interceptor treats ratelimit.OutcomeFailedOpen as admitted,
	// ratelimit.OutcomeFailedClosed like an error under FailClosed, and
	// ratelimit.OutcomeFailedLocal by its Result.Allowed. Leave it at FailError
	// to let Config.OnFailure decide. A limiter in shadow mode
	// (ratelimit.Config.Shadow) admits what it would have denied, as
	// ratelimit.OutcomeShadowDenied: such calls are served.
	Limiters []*ratelimit.Limiter

	// Methods gives methods or whole services limiters of their own, in place
	// of Limiters, checked as Limiters are. A key is either a full method name,
	// "/package.Service/Method", or a service, "/package.Service/" (with the
	// final slash). A call takes the entry of its method if there is one, else
	// that of its service, else Limiters: the most specific entry decides, and
	// entries do not add up (list a per-client limiter in each entry that
	// should have it too). An entry with no limiters exempts its calls (health
	// checks, reflection). If nil, every call uses Limiters.
	//
	// A limiter may appear in several entries and in Limiters; within one list
	// no two limiters may have the same Config.Name. At least one limiter is
	// required in Limiters or Methods.
	Methods map[string][]*ratelimit.Limiter

	// KeyFunc returns the key under which every limiter counts the call. If
	// nil, it is the client's address as ClientIP finds it from the peer and,
	// behind trusted proxies, the proxy header in the call's metadata, grouped
	// by prefix (clientip.Config.KeyOf). A call whose peer has no IP address
	// (a unix socket) is counted under clientip.UnknownKey.
	KeyFunc KeyFunc

	// ClientIP finds the client of a call for the default KeyFunc (it is
	// unused when KeyFunc is set), with the same rules as the HTTP middleware:
	// the zero value (the default) keys clients by their peer address, IPv6 by
	// /64, and ignores proxy headers, which any client can write. List your
	// proxies (an Envoy or a load balancer that appends X-Forwarded-For) in
	// ClientIP.TrustedProxies: then, for calls whose peer is one of them, the
	// metadata of ClientIP.Header in lower case ("x-forwarded-for" by default,
	// or "forwarded") is walked as clientip.Config.AddrFrom does. New reports
	// the problems of clientip.Config.Validate.
	ClientIP clientip.Config

	// Keys overrides KeyFunc for single limiters, by their Config.Name: for a
	// global limiter, say, Keys: map[string]KeyFunc{"global": ConstantKey("all")}.
	// Every name must be one of a limiter in Limiters or Methods. If nil, every
	// limiter uses KeyFunc.
	Keys map[string]KeyFunc

	// Rates gives limiters, by their Config.Name, rates per call: a customer's
	// plan looked up from the call's metadata (an API key), say. The function
	// returns the rates that call is checked against, through
	// ratelimit.Limiter.With (so a customer who changes plan keeps its state),
	// or nil for the limiter's own rates. An error is handled like a limiter
	// error (OnFailure); rates that With rejects (ratelimit.ErrInvalidConfig)
	// are always refused, with codes.Internal, since serving them unlimited
	// would hide the bug and retrying cannot help. ratelimit.Limiter.With
	// keeps a view per distinct rate set. Every name must be one of a limiter
	// in Limiters or Methods. If nil, every limiter
	// uses its own rates.
	Rates map[string]func(ctx context.Context, call Call) ([]ratelimit.Rate, error)

	// Cost returns the units a call takes from every limiter. If nil, every
	// call costs 1 (a stream costs its cost once, when it starts). A cost of 0
	// only checks (nothing is taken). A cost below 0 or above a limiter's
	// Burst can never be admitted: it is the caller's error, not Redis's, so
	// OnFailure does not apply. Such a call is never served: earlier limiters
	// get their units back, later ones are not consulted, it is answered
	// codes.InvalidArgument, and Observer gets an Event with Outcome
	// ratelimit.OutcomeError and Err wrapping ratelimit.ErrInvalidCost.
	Cost func(ctx context.Context, call Call) int

	// OnFailure says what to do when a limiter returns an error (Redis down or
	// slow, a bad reply, a KeyFunc or Rates error): no decision was made.
	//
	//   - ratelimit.FailOpen serves the call as if that limiter had admitted
	//     it, and goes on with the next limiter: availability over protection.
	//   - ratelimit.FailClosed refuses the call with codes.Unavailable, with a
	//     google.rpc.RetryInfo of 1s, and gives back what earlier limiters
	//     took: protection over availability.
	//
	// Required: New rejects the zero value, ratelimit.FailError (an
	// interceptor has no caller to return the error to), so every deployment
	// states its choice; it rejects ratelimit.FailLocal too: set that on the
	// limiter's own ratelimit.Config.OnFailure, which decides first. A call
	// whose own context has ended (the client went away, its deadline passed)
	// is refused with the context's status (codes.Canceled or
	// codes.DeadlineExceeded) whatever OnFailure says, and is not reported to
	// Observer: Redis did not fail.
	OnFailure ratelimit.FailurePolicy

	// NoMetadata names limiters (by Config.Name) that the response metadata
	// and the denial's google.rpc.QuotaFailure detail leave out: a global
	// limiter whose Remaining tells one client nothing it can act on, or every
	// limiter of a login method, whose budget left tells an attacker how fast
	// it may guess. Such a limiter still limits, and its denials still carry
	// google.rpc.RetryInfo. Every name must be one of a limiter in Limiters or
	// Methods. If nil, every limiter is shown.
	NoMetadata []string

	// Skip, if not nil, is called first for every call that a limiter would
	// check; when it returns true the call goes to its handler unlimited and
	// without rate-limit metadata (allow-listed clients, internal callers).
	Skip func(ctx context.Context, call Call) bool

	// Observer, if not nil, receives an Event each time OnFailure applied: for
	// every limiter that could not decide (its key function, Rates function or
	// AllowN returned an error), an Event with its Name and Algorithm, Op
	// ratelimit.OpAllow, Err the error, and Outcome ratelimit.OutcomeFailedOpen
	// or ratelimit.OutcomeFailedClosed. (The limiter's own Observer has seen
	// the call as ratelimit.OutcomeError.) Pass the same metrics Collector to
	// count calls served or refused during an outage. It also receives one
	// Event per rejected Cost (see Cost).
	Observer ratelimit.Observer
}

// Interceptor rate-limits gRPC calls before their handlers run: use its Unary
// and Stream methods as server interceptors. It is safe for concurrent use.
// Create it with New.
type Interceptor struct {
	methods   map[string][]*entry // Config.Methods
	def       []*entry            // Config.Limiters
	key       KeyFunc             // the shared KeyFunc
	ip        clientip.Config     // for the default KeyFunc
	proxyKey  string              // the metadata key of ip.Header
	cost      func(context.Context, Call) int
	onFailure ratelimit.FailurePolicy
	skip      func(context.Context, Call) bool
	observer  ratelimit.Observer
}

// entry is one limiter in one list (Limiters or an entry of Methods).
type entry struct {
	lim    *ratelimit.Limiter
	name   string
	alg    ratelimit.Algorithm
	key    KeyFunc // Config.Keys override, or nil for the shared one
	rates  func(context.Context, Call) ([]ratelimit.Rate, error)
	hidden bool // named in Config.NoMetadata
}

// New checks cfg and returns an Interceptor. Every problem is reported at
// once, each naming the Config field and wrapping ratelimit.ErrInvalidConfig.
func New(cfg Config) (*Interceptor, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("ratelimitgrpc: "+format+": %w", append(args, ratelimit.ErrInvalidConfig)...))
	}
	names := map[string]bool{}
	check := func(field string, list []*ratelimit.Limiter) {
		seen := make(map[string]bool, len(list))
		for i, l := range list {
			if l == nil {
				bad("%s[%d] is nil", field, i)
				continue
			}
			name := l.Config().Name
			if seen[name] {
				bad("%s[%d] has Name %q like an earlier limiter, names must differ", field, i, name)
			}
			seen[name], names[name] = true, true
		}
	}
	check("Config.Limiters", cfg.Limiters)
	for m, list := range cfg.Methods {
		if !validPattern(m) {
			bad("Config.Methods[%q] must be a full method name \"/package.Service/Method\" or a service \"/package.Service/\"", m)
		}
		check(fmt.Sprintf("Config.Methods[%q]", m), list)
	}
	if len(names) == 0 {
		bad("Config.Limiters and Config.Methods hold no limiter, need at least one")
	}
	for name, f := range cfg.Keys {
		if !names[name] {
			bad("Config.Keys[%q] names no limiter in Config.Limiters or Config.Methods", name)
		}
		if f == nil {
			bad("Config.Keys[%q] is nil", name)
		}
	}
	for name, f := range cfg.Rates {
		if !names[name] {
			bad("Config.Rates[%q] names no limiter in Config.Limiters or Config.Methods", name)
		}
		if f == nil {
			bad("Config.Rates[%q] is nil", name)
		}
	}
	for i, name := range cfg.NoMetadata {
		if !names[name] {
			bad("Config.NoMetadata[%d] = %q names no limiter in Config.Limiters or Config.Methods", i, name)
		}
	}
	switch cfg.OnFailure {
	case ratelimit.FailOpen, ratelimit.FailClosed:
	case ratelimit.FailLocal:
		bad("Config.OnFailure = %v, must be FailOpen or FailClosed (set FailLocal on the limiters' own ratelimit.Config.OnFailure)", cfg.OnFailure)
	default:
		bad("Config.OnFailure = %v, must be FailOpen or FailClosed (there is no default)", cfg.OnFailure)
	}
	if err := cfg.ClientIP.Validate(); err != nil {
		list := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			list = j.Unwrap()
		}
		for _, e := range list {
			errs = append(errs, configError{fmt.Errorf("ratelimitgrpc: Config.ClientIP: %w", e)})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	in := &Interceptor{
		key:       cfg.KeyFunc,
		ip:        cfg.ClientIP,
		proxyKey:  "x-forwarded-for",
		cost:      cfg.Cost,
		onFailure: cfg.OnFailure,
		skip:      cfg.Skip,
		observer:  cfg.Observer,
	}
	in.ip.TrustedProxies = append([]netip.Prefix(nil), cfg.ClientIP.TrustedProxies...)
	if cfg.ClientIP.Header == clientip.HeaderForwarded {
		in.proxyKey = "forwarded"
	}
	if in.key == nil {
		in.key = in.clientKey
	}
	hidden := make(map[string]bool, len(cfg.NoMetadata))
	for _, name := range cfg.NoMetadata {
		hidden[name] = true
	}
	entries := func(list []*ratelimit.Limiter) []*entry {
		out := make([]*entry, 0, len(list))
		for _, l := range list {
			lc := l.Config()
			e := &entry{lim: l, name: lc.Name, alg: lc.Algorithm, key: cfg.Keys[lc.Name], rates: cfg.Rates[lc.Name], hidden: hidden[lc.Name]}
			out = append(out, e)
		}
		return out
	}
	in.def = entries(cfg.Limiters)
	if len(cfg.Methods) > 0 {
		in.methods = make(map[string][]*entry, len(cfg.Methods))
		for m, list := range cfg.Methods {
			in.methods[m] = entries(list)
		}
	}
	return in, nil
}

// configError is a clientip.Config problem that also wraps
// ratelimit.ErrInvalidConfig, as every problem New reports does.
type configError struct{ err error }

func (e configError) Error() string   { return e.err.Error() }
func (e configError) Unwrap() []error { return []error{e.err, ratelimit.ErrInvalidConfig} }

// validPattern reports whether m is "/service/method" or "/service/", with a
// non-empty service and no other slash.
func validPattern(m string) bool {
	if len(m) < 3 || m[0] != '/' {
		return false
	}
	svc, method, ok := strings.Cut(m[1:], "/")
	return ok && svc != "" && !strings.Contains(method, "/")
}

// match returns the limiters of fullMethod: its Methods entry, its service's,
// or Limiters. A name without the leading slash (which grpc-go refuses by
// default since v1.79.3) is matched as if it had one, so that it cannot
// escape its entry.
func (in *Interceptor) match(fullMethod string) []*entry {
	if in.methods == nil {
		return in.def
	}
	m := fullMethod
	if !strings.HasPrefix(m, "/") {
		m = "/" + m
	}
	if list, ok := in.methods[m]; ok {
		return list
	}
	if i := strings.LastIndexByte(m, '/'); i > 0 {
		if list, ok := in.methods[m[:i+1]]; ok {
			return list
		}
	}
	return in.def
}

// Unary is a grpc.UnaryServerInterceptor: pass it to grpc.UnaryInterceptor or
// grpc.ChainUnaryInterceptor. It decides before handler runs and calls
// handler only for an admitted call.
func (in *Interceptor) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	md, err := in.decide(ctx, info.FullMethod)
	if md != nil {
		_ = grpc.SetHeader(ctx, md) // fails only outside a gRPC server
	}
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// Stream is a grpc.StreamServerInterceptor: pass it to grpc.StreamInterceptor
// or grpc.ChainStreamInterceptor. It decides once per stream, when the stream
// starts and before handler runs (a stream costs Config.Cost once, whatever
// the messages it carries), and calls handler only for an admitted stream.
func (in *Interceptor) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	md, err := in.decide(ss.Context(), info.FullMethod)
	if md != nil {
		_ = ss.SetHeader(md)
	}
	if err != nil {
		return err
	}
	return handler(srv, ss)
}

// decision is one limiter's answer for one call.
type decision struct {
	e   *entry
	key string
	lim *ratelimit.Limiter // e.lim or its view with the call's rates
	res ratelimit.Result
}

// maxInline is how many decisions decide keeps on the stack.
const maxInline = 4

// decide checks the limiters of fullMethod for the call in ctx. It returns
// the response metadata (nil for none) and the status error that refuses the
// call, or a nil error to serve it.
func (in *Interceptor) decide(ctx context.Context, fullMethod string) (metadata.MD, error) {
	list := in.match(fullMethod)
	if len(list) == 0 {
		return nil, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	p, _ := peer.FromContext(ctx)
	call := Call{FullMethod: fullMethod, Metadata: md, Peer: p}
	if in.skip != nil && in.skip(ctx, call) {
		return nil, nil
	}
	cost := 1
	if in.cost != nil {
		cost = in.cost(ctx, call)
	}
	var buf [maxInline]decision
	taken := buf[:0] // limiters that decided, in order
	var shared string
	var sharedErr error
	sharedDone := false
	for _, e := range list {
		var key string
		var err error
		if e.key != nil {
			key, err = e.key(ctx, call)
		} else {
			if !sharedDone {
				shared, sharedErr = in.key(ctx, call)
				sharedDone = true
			}
			key, err = shared, sharedErr
		}
		lim := e.lim
		if e.rates != nil && err == nil {
			var rates []ratelimit.Rate
			if rates, err = e.rates(ctx, call); err == nil && rates != nil {
				lim, err = e.lim.With(rates...) // the same view per plan (see With)
			}
			if err != nil && errors.Is(err, ratelimit.ErrInvalidConfig) {
				in.observe(e, ratelimit.OutcomeFailedClosed, err)
				in.refund(ctx, taken, cost)
				return nil, status.Errorf(codes.Internal, "ratelimit: %s: this call's rates are invalid", e.name)
			}
		}
		var res ratelimit.Result
		if err == nil {
			res, err = lim.AllowN(ctx, key, cost)
		}
		if err != nil && errors.Is(err, ratelimit.ErrInvalidCost) {
			// The caller's error, decided before any Redis call: never
			// served, and not a failure for OnFailure.
			in.observe(e, ratelimit.OutcomeError, err)
			in.refund(ctx, taken, cost)
			return nil, status.Errorf(codes.InvalidArgument, "ratelimit: %s: cost %d is out of range", e.name, cost)
		}
		if err != nil {
			if ctx.Err() != nil {
				// The call itself ended (client gone, deadline): no Redis
				// failure to report, and no point in serving it.
				in.refund(ctx, taken, cost)
				return nil, status.FromContextError(ctx.Err()).Err()
			}
			if in.onFailure == ratelimit.FailOpen {
				in.observe(e, ratelimit.OutcomeFailedOpen, err)
				continue
			}
			in.observe(e, ratelimit.OutcomeFailedClosed, err)
			in.refund(ctx, taken, cost)
			return nil, unavailable(0)
		}
		switch res.Outcome {
		case ratelimit.OutcomeFailedOpen:
			continue // the limiter's own policy; it has told its observer
		case ratelimit.OutcomeFailedClosed:
			in.refund(ctx, taken, cost)
			return nil, unavailable(res.RetryAfter)
		}
		taken = append(taken, decision{e: e, key: key, lim: lim, res: res})
		if !res.Allowed {
			in.refund(ctx, taken[:len(taken)-1], cost)
			return facts(taken, len(taken)-1), denied(taken[len(taken)-1])
		}
	}
	return facts(taken, -1), nil
}

// clientKey is the default KeyFunc: the client address's key.
func (in *Interceptor) clientKey(_ context.Context, call Call) (string, error) {
	var a netip.Addr
	if call.Peer != nil {
		a = peerAddr(call.Peer.Addr)
	}
	return in.ip.KeyOf(in.ip.AddrFrom(a, call.Metadata[in.proxyKey])), nil
}

// peerAddr returns the IP address of a peer's net.Addr, or the zero Addr if
// it has none (a unix socket, an in-memory listener).
func peerAddr(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case nil:
		return netip.Addr{}
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip
	default:
		return clientip.ParseRemoteAddr(a.String())
	}
}

// observe reports that OnFailure (or an invalid cost) decided for e.
func (in *Interceptor) observe(e *entry, o ratelimit.Outcome, err error) {
	if in.observer == nil {
		return
	}
	in.observer.Observe(ratelimit.Event{Limiter: e.name, Algorithm: e.alg, Outcome: o, Op: ratelimit.OpAllow, Err: err, Source: ratelimit.SourceAdapter})
}

// refund gives back cost to every limiter in taken that admitted the call. It
// runs even if the call's context has ended, since the units were taken. A
// failed refund is reported to the limiter's Observer and otherwise ignored.
func (in *Interceptor) refund(ctx context.Context, taken []decision, cost int) {
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

// unavailable is the status of a call refused under FailClosed: Unavailable
// with a RetryInfo of retry rounded up to the millisecond, or 1s when retry is 0.
func unavailable(retry time.Duration) error {
	if retry <= 0 {
		retry = time.Second
	}
	st, err := status.New(codes.Unavailable, "ratelimit: the rate limiter cannot decide, try again later").
		WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(ceilMillis(retry))})
	if err != nil { // unreachable: RetryInfo always marshals
		return status.Error(codes.Unavailable, "ratelimit: the rate limiter cannot decide, try again later")
	}
	return st.Err()
}

// denied is the status of a call that d denied: ResourceExhausted with a
// RetryInfo of RetryAfter rounded up to the millisecond (never early) and,
// unless d's limiter is hidden, a QuotaFailure naming it and its binding rate.
func denied(d decision) error {
	retry := ceilMillis(d.res.RetryAfter)
	if retry <= 0 {
		retry = time.Millisecond
	}
	msg := "ratelimit: rate limit exceeded, retry after " + retry.String()
	details := []protoadapt.MessageV1{&errdetails.RetryInfo{RetryDelay: durationpb.New(retry)}}
	if !d.e.hidden {
		details = append(details, &errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{
			Subject:     d.e.name,
			Description: "rate " + d.res.Limit.String() + " exceeded",
		}}})
	}
	st, err := status.New(codes.ResourceExhausted, msg).WithDetails(details...)
	if err != nil { // unreachable: both details always marshal
		return status.Error(codes.ResourceExhausted, msg)
	}
	return st.Err()
}

// facts returns the response metadata for the decisions in taken; denied is
// the index in taken of the denying decision, or -1. It returns nil when every
// limiter that decided is hidden.
func facts(taken []decision, denied int) metadata.MD {
	best := denied
	if best >= 0 && taken[best].e.hidden {
		return nil // the metadata would describe a limiter that did not deny
	}
	if best < 0 {
		for j, d := range taken {
			if d.e.hidden {
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
			return nil
		}
	}
	r := taken[best].res
	return metadata.MD{
		MetadataLimit:     {r.Limit.String()},
		MetadataRemaining: {strconv.Itoa(r.Remaining)},
		MetadataReset:     {strconv.FormatInt(resetSeconds(r), 10)},
	}
}

// resetSeconds is the reset of a Result in whole seconds, rounded up:
// RetryAfter (at least 1) when denied, ResetAfter when admitted.
func resetSeconds(r ratelimit.Result) int64 {
	d, lo := r.ResetAfter, int64(0)
	if !r.Allowed {
		d, lo = r.RetryAfter, 1
	}
	s := int64(d / time.Second)
	if d%time.Second > 0 {
		s++
	}
	return max(s, lo)
}

// ceilMillis rounds d up to the millisecond.
func ceilMillis(d time.Duration) time.Duration {
	if r := d % time.Millisecond; r > 0 {
		d += time.Millisecond - r
	}
	return d
}
