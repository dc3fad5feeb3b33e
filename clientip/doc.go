// Package clientip finds the client address of a request behind reverse
// proxies, and the rate-limit key of that client. It imports only the standard
// library; package middleware, package login and the gRPC adapter all use it,
// configured the same way by a [Config].
//
// # Who is the client
//
// By default (the zero [Config]) the client is the peer address
// (http.Request.RemoteAddr) and proxy headers are ignored: any client can write
// them. List the networks of your reverse proxies in Config.TrustedProxies:
// then, and only for requests whose peer is one of them, X-Forwarded-For (or
// RFC 7239 Forwarded, Config.Header) is walked from the right, past the
// trusted proxies, and the first other address is the client. The walk
// examines at most [MaxEntries] entries and [MaxBytes] bytes, so a hostile
// header costs what a normal one does.
//
// [Config.Addr] reads an *http.Request; [Config.AddrFrom] applies the same walk
// to a peer address and header values from elsewhere (gRPC metadata).
//
// # Keys
//
// [Config.Key] and [Config.KeyOf] group IPv6 clients by prefix (/64 by
// default), so that one host cannot rotate through its allocation for fresh
// buckets, and key NAT64 addresses (64:ff9b::/96) by the IPv4 address they
// embed. A peer that cannot be parsed (a unix socket) gets [UnknownKey].
package clientip
