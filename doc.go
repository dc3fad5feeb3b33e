// Package ratelimit is a distributed rate limiter for Go on Redis: every
// decision is made inside Redis, atomically, by a Lua script, so any number of
// app servers behind a load balancer share one exact view of every limit.
//
// # Algorithms
//
// Three algorithms, each one embedded Lua script with one Redis key per
// (limiter, identity): [TokenBucket], [LeakyBucket] and [SlidingWindow]. All
// time comes from Redis's own clock, each key's expiry read with PTTL (no
// TIME call, two Redis calls per admission), so app servers with different
// clocks agree; decisions are exact on that millisecond clock.
//
// # Use
//
// Create a [Limiter] with [New] and call [Limiter.Allow] (or [Limiter.AllowN])
// with the identity to limit. A denial is a [Result] with Allowed false, not an
// error. [Limiter.Peek] reports the state without consuming, [Limiter.Refund]
// gives units back, [Limiter.Reset] clears a key and [Limiter.Wait] blocks until
// admitted.
//
// # Fewer round trips
//
// [AllowAll] decides several limits (per IP, per user) in one pipeline, and
// [Config.Pipeline] coalesces concurrent calls of a Limiter into pipelines.
// Both stay correct when Redis has lost its scripts and never run a call twice.
//
// # Scripts
//
// Each call runs EVALSHA; when Redis has lost the script (restart, failover,
// SCRIPT FLUSH) it answers NOSCRIPT and the call is sent once more with EVAL,
// which also reloads the script. No "loaded" flag is kept.
//
// # Observing
//
// [Config.Observer] receives one [Event] per call; package metrics turns events
// into Prometheus series. Events never carry the rate-limit key.
package ratelimit
