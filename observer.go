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
)

var outcomeNames = [...]string{"error", "allowed", "denied", "locked_out", "failed_open", "failed_closed", "failed_local"}

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
	// ByCaller reports whether a caller of the Limiter made this decision with
	// its own failure policy, not the Limiter: package middleware sets it when
	// its OnFailure decides a request whose key function or AllowN returned an
	// error. The Limiter never sets it. For an AllowN error the Limiter has
	// already reported the call (Outcome OutcomeError), so an Observer that
	// counts calls must count a ByCaller event apart, not as a second call of
	// the Limiter; its Err is the error already reported (or the key function's)
	// and not a new Redis error, and its Duration is zero. A decision the
	// Limiter's own Config.OnFailure made has ByCaller false: it is the only
	// event of its call.
	ByCaller bool
	// Duration is the time spent in Redis calls, including a NOSCRIPT fallback.
	// It is zero when no Redis call was made (Cached, ByCaller).
	Duration time.Duration
	// Err is the error from Redis, if any. With a failure policy (FailOpen,
	// FailClosed, FailLocal) Err is set while the call itself returned a
	// decision and no error; Outcome is OutcomeError only when the call
	// returned Err.
	Err error
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
