package ratelimit

import (
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit/internal/respguard"
)

// ClientOptions returns a copy of opt that a Limiter accepts: MaxRetries -1
// (a script whose reply was lost is never re-sent, so no call is charged
// twice) and ContextTimeoutEnabled true (Config.Timeout and the caller's
// deadline interrupt a slow Redis). Its connections also check each reply's
// header before go-redis reads it: a bulk string of over 16 MiB, an array or
// map of over 2^20 elements or a simple line of over 1 MiB (no limiter reply
// comes near: a decision's is under 100 bytes) ends the connection with an
// error that the failure policy handles, where go-redis would allocate the
// announced length (a gigabyte for "$1000000000", taking seconds past any
// Timeout) or panic. Every other option is kept, the Dialer too (wrapped, or
// go-redis's default with DialTimeout and TLSConfig when nil); the copy is
// shallow (TLSConfig and hooks are shared) and opt is not changed.
// Pass it the options of an existing client, rdb.Options(), or those it was
// built from; a nil opt gives go-redis's defaults with the two fixes.
//
// Most programs already have a client with go-redis's defaults (3 retries,
// context deadlines ignored), which New rejects; one line gives the limiters
// their own:
//
//	limiterRDB := redis.NewClient(ratelimit.ClientOptions(rdb.Options()))
//
// That client is a second connection pool beside the application's: up to
// PoolSize connections to each node (if zero, go-redis's default: 10 per
// GOMAXPROCS for a Client, a Ring shard or a failover client, 5 per GOMAXPROCS
// for each Cluster node), dialled as calls need them. Build it once and share
// it among every Limiter of the program; set PoolSize on the copy to size it.
//
// For a Sentinel failover client use FailoverOptions with the options it was
// built from: a failover client's Options() holds its internal dialer.
func ClientOptions(opt *redis.Options) *redis.Options {
	var o redis.Options
	if opt != nil {
		o = *opt
	}
	o.MaxRetries, o.ContextTimeoutEnabled = -1, true
	o.Dialer = respguard.Dialer(o.Dialer, o.DialTimeout, o.TLSConfig)
	return &o
}

// ClusterOptions is ClientOptions for a *redis.ClusterClient: pass it
// cluster.Options() or the options the cluster client was built from, and give
// the result to redis.NewClusterClient. Its pool is PoolSize connections per node.
func ClusterOptions(opt *redis.ClusterOptions) *redis.ClusterOptions {
	var o redis.ClusterOptions
	if opt != nil {
		o = *opt
	}
	o.MaxRetries, o.ContextTimeoutEnabled = -1, true
	o.Dialer = respguard.Dialer(o.Dialer, o.DialTimeout, o.TLSConfig)
	return &o
}

// FailoverOptions is ClientOptions for a Sentinel failover client: pass it the
// options the client was built from, and give the result to
// redis.NewFailoverClient (or redis.NewFailoverClusterClient).
func FailoverOptions(opt *redis.FailoverOptions) *redis.FailoverOptions {
	var o redis.FailoverOptions
	if opt != nil {
		o = *opt
	}
	o.MaxRetries, o.ContextTimeoutEnabled = -1, true
	o.Dialer = respguard.Dialer(o.Dialer, o.DialTimeout, o.TLSConfig)
	return &o
}

// RingOptions is ClientOptions for a *redis.Ring: pass it ring.Options() or
// the options the ring was built from, and give the result to redis.NewRing.
// Its pool is PoolSize connections per shard.
func RingOptions(opt *redis.RingOptions) *redis.RingOptions {
	var o redis.RingOptions
	if opt != nil {
		o = *opt
	}
	o.MaxRetries, o.ContextTimeoutEnabled = -1, true
	o.Dialer = respguard.Dialer(o.Dialer, o.DialTimeout, o.TLSConfig)
	return &o
}

// checkClientOptions reports, in one error, the go-redis client options that
// would break a limiter's promises (retries that re-run a script whose reply
// was lost, charging one call twice; per-call deadlines the client would
// ignore), and the function that fixes them. Other Scripters pass.
func checkClientOptions(client redis.Scripter) error {
	var retries int
	var ctxTimeout bool
	var fix string
	switch c := client.(type) {
	case *redis.Client:
		retries, ctxTimeout = c.Options().MaxRetries, c.Options().ContextTimeoutEnabled
		fix = "redis.NewClient(ratelimit.ClientOptions(rdb.Options())), or for a Sentinel client redis.NewFailoverClient(ratelimit.FailoverOptions(opts))"
	case *redis.ClusterClient:
		retries, ctxTimeout = c.Options().MaxRetries, c.Options().ContextTimeoutEnabled
		fix = "redis.NewClusterClient(ratelimit.ClusterOptions(rdb.Options()))"
	case *redis.Ring:
		retries, ctxTimeout = c.Options().MaxRetries, c.Options().ContextTimeoutEnabled
		fix = "redis.NewRing(ratelimit.RingOptions(rdb.Options()))"
	default:
		return nil
	}
	var problems []string
	// go-redis stores a disabled MaxRetries (-1) as 0 once the client is built.
	if retries > 0 {
		problems = append(problems, fmt.Sprintf("MaxRetries = %d re-sends a script whose reply was lost, charging one call twice (want -1)", retries))
	}
	if !ctxTimeout {
		problems = append(problems, "ContextTimeoutEnabled = false ignores per-call deadlines such as Config.Timeout (want true)")
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("ratelimit: client options unsafe for a limiter: %s; give New a limiter client, a second pool built from the same options: %s: %w",
		strings.Join(problems, "; "), fix, ErrInvalidConfig)
}
