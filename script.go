package ratelimit

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// script is one Lua script and its SHA1 digest, run with EVALSHA and, when
// Redis answers NOSCRIPT, once more with EVAL.
//
// No "already loaded" state is kept: a Redis restart, SCRIPT FLUSH or failover
// empties the script cache of one node at any time, and EVAL reloads the script
// on whichever node answered. SCRIPT LOAD followed by a retry is not used, since
// in a cluster or behind a proxy the load can land on another node.
type script struct {
	src    string
	srcArg any                       // src boxed once, for EVAL's arguments
	sha    atomic.Pointer[scriptSHA] // nil until known
	mu     sync.Mutex                // serialises asking Redis for the digest
}

// scriptSHA is a script's digest, in the two forms the calls send it in.
type scriptSHA struct {
	hex string // hex SHA1 of the source
	arg any    // hex boxed once, for EVALSHA's arguments
}

func newScript(src string) *script {
	s := &script{src: src, srcArg: src}
	if sha := localSHA1(src); sha != "" {
		s.sha.Store(&scriptSHA{hex: sha, arg: sha})
	}
	return s
}

// localSHA1 returns the hex SHA1 of src, or "" when this process may not
// compute SHA1 (GODEBUG=fips140=only panics in crypto/sha1).
func localSHA1(src string) (sha string) {
	defer func() {
		if recover() != nil {
			sha = ""
		}
	}()
	sum := sha1.Sum([]byte(src))
	return hex.EncodeToString(sum[:])
}

// digest returns the script's SHA1, asking Redis (SCRIPT LOAD, which also
// caches the script on the node that answers) when it could not be computed
// locally. It returns "" if Redis could not be asked; the caller then uses EVAL.
func (s *script) digest(ctx context.Context, c redis.Scripter) string {
	if sha := s.known(ctx, c); sha != nil {
		return sha.hex
	}
	return ""
}

// known is digest's answer in both forms, or nil.
func (s *script) known(ctx context.Context, c redis.Scripter) *scriptSHA {
	if sha := s.sha.Load(); sha != nil {
		return sha
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sha := s.sha.Load(); sha != nil {
		return sha
	}
	hex, err := c.ScriptLoad(ctx, s.src).Result()
	if err != nil || len(hex) != 40 {
		return nil
	}
	sha := &scriptSHA{hex: hex, arg: hex}
	s.sha.Store(sha)
	return sha
}

// run evaluates the script on keys: EVALSHA first, and on an error whose
// text contains NOSCRIPT (some proxies put a prefix before it), one EVAL of
// the full source. reloaded reports whether that fallback happened. A panic
// inside the client (go-redis allocating for a reply that announces a huge
// length, say) is returned as an error wrapping ErrUnexpectedReply, so that
// a bad reply never crashes the application and the failure policy applies.
func (s *script) run(ctx context.Context, c redis.Scripter, keys []string, args ...any) (reply any, reloaded bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			reply, err = nil, fmt.Errorf("%w: the Redis client panicked reading the reply: %v", ErrUnexpectedReply, p)
		}
	}()
	if cc, ok := c.(*redis.ClusterClient); ok {
		return s.runOnPrimary(ctx, cc, keys, args...)
	}
	sha := s.known(ctx, c)
	if p, ok := c.(processor); ok && sha != nil {
		return s.process(ctx, p, sha.arg, keys, args)
	}
	if sha != nil {
		reply, err = c.EvalSha(ctx, sha.hex, keys, args...).Result()
		if err == nil || !isNoScript(err) {
			return reply, false, err
		}
	}
	reply, err = c.Eval(ctx, s.src, keys, args...).Result()
	return reply, sha != nil, err
}

// processor is the Process method of every go-redis client (Client, Ring,
// Conn, ClusterClient). run sends through it an argument list it builds
// itself, with the digest boxed once and no keys slice: what EvalSha and Eval
// would send, in two allocations fewer.
type processor interface {
	Process(ctx context.Context, cmd redis.Cmder) error
}

// process is run's EVALSHA (sha: the boxed digest) and NOSCRIPT fallback
// through p.
func (s *script) process(ctx context.Context, p processor, sha any, keys []string, args []any) (reply any, reloaded bool, err error) {
	cmd := evalCmd(ctx, "evalsha", sha, keys, args)
	if err = p.Process(ctx, cmd); err == nil || !isNoScript(err) {
		return cmd.Val(), false, err
	}
	cmd = evalCmd(ctx, "eval", s.srcArg, keys, args)
	err = p.Process(ctx, cmd)
	return cmd.Val(), true, err
}

// evalCmd is the command EVALSHA (script: the digest) or EVAL (the source)
// on keys with args, as go-redis's EvalSha and Eval build it. name and script
// come boxed, so that only the list and the keys are allocated.
func evalCmd(ctx context.Context, name, script any, keys []string, args []any) *redis.Cmd {
	a := make([]any, 3+len(keys)+len(args))
	a[0], a[1], a[2] = name, script, len(keys)
	for i, k := range keys {
		a[3+i] = k
	}
	copy(a[3+len(keys):], args)
	cmd := redis.NewCmd(ctx, a...)
	cmd.SetFirstKeyPos(3)
	return cmd
}

// runOnPrimary runs the script on the primary that serves key, through
// that node's own client, which makes one attempt (the ClusterClient's
// MaxRetries -1 is copied to its node clients). The ClusterClient itself is not
// used for the first attempt: its redirect loop re-sends a command after a cut
// connection, after which a script that ran would run again (one call charged
// twice), and re-sends LOADING, CLUSTERDOWN and TRYAGAIN up to MaxRedirects
// times. Only MOVED and ASK, which say the script did not run, go through the
// ClusterClient, whose loop follows the redirect (only a connection cut on that
// second, redirected attempt can still be re-sent). An error that may mean a
// changed topology (a dead node, READONLY, CLUSTERDOWN) asks the ClusterClient
// to reload its slot map in the background, so calls find a promoted replica
// without waiting for the map to age out (10s).
func (s *script) runOnPrimary(ctx context.Context, cc *redis.ClusterClient, keys []string, args ...any) (reply any, reloaded bool, err error) {
	node, err := cc.MasterForKey(ctx, keys[0])
	if err != nil {
		cc.ReloadState(ctx)
		return nil, false, err
	}
	reply, reloaded, err = s.run(ctx, node, keys, args...)
	switch {
	case err == nil:
		return reply, reloaded, nil
	case isRedirect(err):
		cc.ReloadState(ctx)
		return s.run(ctx, redirecting{cc}, keys, args...)
	case ErrorKind(err) == KindConnection || ErrorKind(err) == KindUnavailable:
		cc.ReloadState(ctx)
	}
	return reply, reloaded, err
}

// redirecting hides a ClusterClient's type from run, so that run sends through
// the ClusterClient's redirect loop.
type redirecting struct{ redis.Scripter }

// isRedirect reports whether err is a MOVED or ASK redirection: the node that
// answered does not serve the key, and the script did not run.
func isRedirect(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "MOVED ") || strings.HasPrefix(msg, "ASK ")
}

func isNoScript(err error) bool {
	return strings.Contains(err.Error(), "NOSCRIPT")
}
