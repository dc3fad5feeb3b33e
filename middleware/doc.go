// Package middleware rate-limits net/http handlers with ratelimit Limiters and
// finds who the client is behind reverse proxies.
//
// # Protecting a route
//
// [New] takes a [Config] with one or more limiters and an explicit failure
// policy, Config.OnFailure: [ratelimit.FailOpen] or [ratelimit.FailClosed], the
// root package's vocabulary; [Middleware.Handler] wraps a handler:
//
//	mw, err := middleware.New(middleware.Config{
//		Limiters:  []*ratelimit.Limiter{perClient},
//		OnFailure: ratelimit.FailOpen,
//	})
//	mux.Handle("/api/", mw.Handler(api))
//
// Admitted requests carry the IETF draft RateLimit-Policy and RateLimit headers
// ([HeadersDraft]), the legacy X-RateLimit-* headers ([HeadersLegacy]) or none
// ([HeadersNone], for login routes). Denied requests get 429 Too Many Requests
// with Retry-After in whole seconds, rounded up.
//
// # Who is the client
//
// By default the client is the peer address (http.Request.RemoteAddr), and IPv6
// clients are grouped by /64. Behind reverse proxies, list their networks in
// Config.ClientIP.TrustedProxies: then, and only for requests that come from
// them, X-Forwarded-For (or RFC 7239 Forwarded) is walked from the right, past
// the trusted proxies. Package [clientip] does this and is usable on its own
// (login and gRPC use it too).
package middleware
