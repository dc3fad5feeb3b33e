// Package ratelimitgrpc rate-limits gRPC servers with the limiters of package
// ratelimit: unary and stream server interceptors that decide before the
// handler runs, in Redis, shared by every server process.
//
// It lives in a module of its own (github.com/seed68425060/ratelimit/grpc), so
// that users of the core never download gRPC. Its name follows otelgrpc's
// (what it provides, then the framework) and does not clash with package grpc.
//
//	in, err := ratelimitgrpc.New(ratelimitgrpc.Config{
//		Limiters:  []*ratelimit.Limiter{perClient},
//		OnFailure: ratelimit.FailOpen,
//	})
//	srv := grpc.NewServer(
//		grpc.ChainUnaryInterceptor(in.Unary),
//		grpc.ChainStreamInterceptor(in.Stream),
//	)
//
// # Which limiters, which key
//
// [Config.Limiters] check every call; [Config.Methods] gives a method
// ("/pkg.Service/Method") or a service ("/pkg.Service/") limiters of its own,
// the most specific entry deciding. By default a call is counted under its
// client's address: the peer's, or behind proxies listed in
// Config.ClientIP.TrustedProxies the one their x-forwarded-for metadata names,
// found by package clientip with exactly the rules of the HTTP middleware.
// [Config.KeyFunc] and [Config.Keys] key calls by anything else (an API key in
// the metadata, the authenticated peer). [Config.Rates] checks a call against
// rates of its own, a customer's plan, through [ratelimit.Limiter.With].
//
// # Answers
//
//   - Admitted: the handler runs; the response metadata carries
//     [MetadataLimit], [MetadataRemaining] and [MetadataReset].
//   - Denied: codes.ResourceExhausted with a google.rpc.RetryInfo detail (the
//     limiter's RetryAfter rounded up to the millisecond: a client that waits
//     it is admitted if nothing else happened), a google.rpc.QuotaFailure
//     naming the limiter, and the same metadata.
//   - A cost out of range (ratelimit.ErrInvalidCost): codes.InvalidArgument.
//   - Redis cannot decide: [Config.OnFailure] serves the call (FailOpen) or
//     answers codes.Unavailable with a RetryInfo (FailClosed).
//   - Shadow mode (ratelimit.Config.Shadow): served and counted as
//     ratelimit.OutcomeShadowDenied by the limiter's Observer.
//
// A stream is one call: it is decided once, when it starts.
package ratelimitgrpc
