package ratelimit

import "time"

// Outcome says how a call was decided.
type Outcome uint8

// Outcomes. A Result and an Event carry exactly one of them.
const (
	// OutcomeError means no decision was made: the call returned an error.
	OutcomeError Outcome = iota
	// OutcomeAllowed means Redis admitted the call.
	OutcomeAllowed
	// OutcomeDenied means Redis denied the call because the limit was reached.
	OutcomeDenied
	// OutcomeLockedOut means the key is locked (Config.BlockFor): either this call
	// started the lock or an earlier denial did.
	OutcomeLockedOut
	// OutcomeFailedOpen means Redis could not decide and FailOpen admitted the call.
	OutcomeFailedOpen
	// OutcomeFailedClosed means Redis could not decide and FailClosed denied the call.
	OutcomeFailedClosed
	// OutcomeFailedLocal means Redis could not decide and FailLocal decided in
	// this process; Result.Allowed says how.
	OutcomeFailedLocal
	// OutcomeShadowDenied means the call would have been denied (or met a
	// lockout) and Config.Shadow admitted it: decided and charged as usual,
	// never enforced.
	OutcomeShadowDenied
)

var outcomeNames = [...]string{"error", "allowed", "denied", "locked_out", "failed_open", "failed_closed", "failed_local", "shadow_denied"}

// String returns the outcome's name in snake case, e.g. "locked_out", suitable as a
// metric label value.
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// Op is the kind of call an Event reports.
type Op uint8

// Ops.
const (
	// OpAllow is Allow, AllowN (n > 0) or a step of Wait: a decision that consumes.
	OpAllow Op = iota
	// OpPeek is Peek or AllowN with n = 0: a decision that consumes and writes nothing.
	OpPeek
	// OpRefund is Refund: units given back, no decision.
	OpRefund
)

var opNames = [...]string{"allow", "peek", "refund"}

// String returns "allow", "peek" or "refund".
func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return "unknown"
}

// Source says which layer reported an Event.
type Source uint8

// Sources.
const (
	// SourceLimiter is a Limiter's own call: every decision Redis (or the
	// Limiter's Config.OnFailure, or its deny cache) made, and every error.
	SourceLimiter Source = iota
	// SourceAdapter is a decision an adapter made on top of a limiter (the
	// HTTP middleware's or the gRPC interceptors' OnFailure after the limiter
	// returned an error, the login Guard's, or a cost the adapter refused):
	// the limiter's own Event, if any, has already reported the call, so
	// metrics count these apart and never twice.
	SourceAdapter
)

var sourceNames = [...]string{"limiter", "adapter"}

// String returns "limiter" or "adapter".
func (s Source) String() string {
	if int(s) < len(sourceNames) {
		return sourceNames[s]
	}
	return "unknown"
}

// Event describes one decision of a Limiter, for an Observer. It never contains the
// rate-limit key: keys are personal data and unbounded label values.
type Event struct {
	// Limiter is Config.Name.
	Limiter string
	// Algorithm is Config.Algorithm.
	Algorithm Algorithm
	// Outcome is how the call was decided.
	Outcome Outcome
	// Op is the kind of call.
	Op Op
	// LockStarted reports whether this call's denial started a lockout (Config.BlockFor).
	LockStarted bool
	// ScriptReloaded reports whether Redis had lost the script (NOSCRIPT) and the
	// call fell back to EVAL with the full script, which also reloaded it.
	ScriptReloaded bool
	// Cached reports whether the local deny cache (Config.DenyCache) answered
	// the call, with no Redis round trip.
	Cached bool
	// Duration is the time spent in Redis calls, including a NOSCRIPT fallback.
	Duration time.Duration
	// Err is the error from Redis, if any. With a failure policy (FailOpen,
	// FailClosed, FailLocal) Err is set while the call itself returned a
	// decision and no error. In an adapter's Event (Source) it is the error
	// the adapter's policy answered, or one wrapping ErrInvalidCost.
	Err error
	// Source says who reported the Event: the Limiter (the zero value) or an
	// adapter deciding on top of it.
	Source Source
}

// Observer receives one Event per decision. Observe may be called concurrently
// from many goroutines and must not block; it runs on the caller's goroutine.
// A nil Observer in Config observes nothing.
type Observer interface {
	Observe(Event)
}

// ObserverFunc adapts a function to an Observer.
type ObserverFunc func(Event)

// Observe calls f(e).
func (f ObserverFunc) Observe(e Event) { f(e) }
