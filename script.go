package ratelimit

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
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
	src string
	sha atomic.Pointer[string] // hex SHA1 of src; nil until known
	mu  sync.Mutex             // serialises asking Redis for the digest
}

func newScript(src string) *script {
	s := &script{src: src}
	if sha := localSHA1(src); sha != "" {
		s.sha.Store(&sha)
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
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.sha.Load(); p != nil {
		return *p
	}
	sha, err := c.ScriptLoad(ctx, s.src).Result()
	if err != nil || len(sha) != 40 {
		return ""
	}
	s.sha.Store(&sha)
	return sha
}

// run evaluates the script: EVALSHA first, and on an error whose text contains
// NOSCRIPT (some proxies put a prefix before it), one EVAL of the full source.
// reloaded reports whether that fallback happened.
func (s *script) run(ctx context.Context, c redis.Scripter, keys []string, args ...any) (reply any, reloaded bool, err error) {
	var sha string
	if p := s.sha.Load(); p != nil {
		sha = *p
	} else {
		sha = s.digest(ctx, c)
	}
	if sha != "" {
		reply, err = c.EvalSha(ctx, sha, keys, args...).Result()
		if err == nil || !isNoScript(err) {
			return reply, false, err
		}
	}
	reply, err = c.Eval(ctx, s.src, keys, args...).Result()
	return reply, sha != "", err
}

func isNoScript(err error) bool {
	return strings.Contains(err.Error(), "NOSCRIPT")
}
