package ratelimit

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// hashTag returns the part of a Redis key that Redis Cluster hashes, by the
// rule of the cluster spec: between the first '{' and the first '}' after it,
// if that is not empty; otherwise the whole key.
func hashTag(key string) string {
	i := strings.IndexByte(key, '{')
	if i < 0 {
		return key
	}
	j := strings.IndexByte(key[i+1:], '}')
	if j <= 0 {
		return key
	}
	return key[i+1 : i+1+j]
}

var hostileKeys = []string{
	"",
	"alice",
	"Alice",
	"203.0.113.7",
	"2001:db8::1",
	"{alice}",
	"}{",
	"a}b{c",
	"{",
	"}",
	"line\nbreak",
	"tab\tx",
	"\x00\xff\xfe binary",
	"#",
	"#AAAAAAAAAAAAAAAA",
	"émile",
	strings.Repeat("a", 64),
	strings.Repeat("a", 65),
	strings.Repeat("x", 1<<20),
	strings.Repeat("x", 1<<20) + "y",
}

func checkRedisKey(t *testing.T, l *Limiter, key string) string {
	t.Helper()
	rk := l.redisKey(key)
	id := hashTag(rk)
	if want := l.keyHead + id + "}" + l.rates.suffix[0]; rk != want {
		t.Fatalf("redisKey(%.40q) = %q: the hash tag %q is not the whole id", key, rk, id)
	}
	if len(rk) > len(l.keyHead)+maxRawKey+1+len(l.rates.suffix[0]) {
		t.Fatalf("redisKey(%.40q) is %d bytes long", key, len(rk))
	}
	if id == key {
		if strings.ContainsAny(key, "{}#") || len(key) == 0 {
			t.Fatalf("key %q used verbatim although it is not safe", key)
		}
	} else if len(id) != hashedIDLen || id[0] != '#' {
		t.Fatalf("redisKey(%.40q): id %q is neither the key nor a hash", key, id)
	}
	return rk
}

func TestHostileKeys(t *testing.T) {
	a := mustNew(t, &fakeScripter{}, Config{Name: "a", Limit: 1, Period: time.Second})
	b := mustNew(t, &fakeScripter{}, Config{Name: "a.b", Limit: 1, Period: time.Second})
	seen := map[string]string{}
	for _, l := range []*Limiter{a, b} {
		for _, k := range hostileKeys {
			rk := checkRedisKey(t, l, k)
			if prev, dup := seen[rk]; dup {
				t.Errorf("(%s, %.40q) and %.40q share Redis key %q", l.cfg.Name, k, prev, rk)
			}
			seen[rk] = l.cfg.Name + "/" + k
		}
	}
	if got := a.keys("203.0.113.7"); len(got) != 2 || got[0] != "rl:a:{203.0.113.7}:lock" || got[1] != "rl:a:{203.0.113.7}:t1s" {
		t.Errorf("keys(203.0.113.7) = %q, want readable rl:a:{203.0.113.7}:lock and :t1s", got)
	}
}

// TestHostileKeysOnRedis sends every hostile key through a real call: each gets
// its own short key and state.
func TestHostileKeysOnRedis(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			l := mustNew(t, b.client, Config{Name: "hostile", Limit: 1, Period: time.Minute})
			ctx := context.Background()
			for _, k := range hostileKeys {
				if r, err := l.Allow(ctx, k); err != nil || !r.Allowed {
					t.Fatalf("Allow(%.40q) = %+v, %v; want admitted (a fresh key of its own)", k, r, err)
				}
			}
			for _, k := range hostileKeys {
				if r, err := l.Allow(ctx, k); err != nil || r.Allowed {
					t.Fatalf("second Allow(%.40q) = %+v, %v; want denied", k, r, err)
				}
			}
			var longest int
			var mu sync.Mutex // forEachNode runs on every primary at once
			err := b.forEachNode(ctx, func(ctx context.Context, c *redis.Client) error {
				keys, err := c.Keys(ctx, "rl:hostile:*").Result()
				mu.Lock()
				defer mu.Unlock()
				for _, k := range keys {
					longest = max(longest, len(k))
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if longest > len("rl:hostile:{}:t1m")+maxRawKey {
				t.Errorf("longest Redis key is %d bytes", longest)
			}
		})
	}
}

func FuzzRedisKey(f *testing.F) {
	for _, k := range hostileKeys {
		if len(k) < 1000 {
			f.Add(k)
		}
	}
	l, err := New(&fakeScripter{}, Config{Name: "fuzz", Limit: 1, Period: time.Second})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, key string) {
		rk := checkRedisKey(t, l, key)
		if rk2 := l.redisKey(key); rk2 != rk {
			t.Fatalf("redisKey not deterministic: %q, %q", rk, rk2)
		}
		// A different key never maps to the same Redis key.
		if other := key + "x"; l.redisKey(other) == rk {
			t.Fatalf("%q and %q share %q", key, other, rk)
		}
	})
}

func TestRedisKeyAllocs(t *testing.T) {
	l := mustNew(t, &fakeScripter{}, Config{Name: "alloc", Limit: 1, Period: time.Second})
	long := strings.Repeat("z", 100)
	// One string holds every key, and one slice lists them.
	for k, want := range map[string]float64{"203.0.113.7": 2, long: 3} {
		if n := testing.AllocsPerRun(100, func() { _ = l.keys(k) }); n > want {
			t.Errorf("keys(%.20q) allocates %v times, want at most %v", k, n, want)
		}
	}
}

// redisKey is the state key of key's first rate (keys(key)[1]), for tests
// that read a limiter's state directly.
func (l *Limiter) redisKey(key string) string { return l.keys(key)[1] }
