package ratelimit

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit/internal/redistest"
)

// TestFIPSOnly runs a limiter in a child process with GODEBUG=fips140=only,
// where computing SHA1 panics: the digest must come from Redis.
func TestFIPSOnly(t *testing.T) {
	if addr := os.Getenv("RATELIMIT_FIPS_CHILD_ADDR"); addr != "" {
		fipsChild(t, addr)
		return
	}
	s := redistest.Start(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestFIPSOnly$", "-test.v")
	cmd.Env = append(os.Environ(), "GODEBUG=fips140=only", "RATELIMIT_FIPS_CHILD_ADDR="+s.Addr)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "fips child: ok") {
		t.Fatalf("child under GODEBUG=fips140=only: %v\n%s", err, out)
	}
}

func fipsChild(t *testing.T, addr string) {
	if localSHA1("x") != "" {
		t.Fatal("SHA1 was computed under fips140=only: the child does not test what it should")
	}
	c := redis.NewClient(redistest.Options(addr))
	defer c.Close()
	l := mustNew(t, c, Config{Name: "fips", Limit: 2, Period: time.Hour})
	ctx := context.Background()
	for i, want := range []bool{true, true, false} {
		r, err := l.Allow(ctx, "k")
		if err != nil || r.Allowed != want {
			t.Fatalf("call %d = %+v, %v; want allowed %v", i, r, err, want)
		}
	}
	if p := l.script.sha.Load(); p == nil || len(p.hex) != 40 {
		t.Fatal("the digest was not taken from Redis")
	}
	t.Log("fips child: ok")
}

// TestRing runs a limiter over a *redis.Ring of two real servers: every key
// lives on one shard, and exactness holds per key.
func TestRing(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)
	ring := redis.NewRing(&redis.RingOptions{
		Addrs:                 map[string]string{"a": a.Addr, "b": b.Addr},
		MaxRetries:            -1,
		ContextTimeoutEnabled: true,
	})
	defer ring.Close()
	l := mustNew(t, ring, Config{Name: "ring", Limit: 3, Period: time.Hour})
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		key := "user" + string(rune('a'+i))
		for j := 0; j < 4; j++ {
			r, err := l.Allow(ctx, key)
			if err != nil || r.Allowed != (j < 3) {
				t.Fatalf("%s call %d = %+v, %v", key, j, r, err)
			}
		}
	}
	na, _ := redis.NewClient(redistest.Options(a.Addr)).DBSize(ctx).Result()
	nb, _ := redis.NewClient(redistest.Options(b.Addr)).DBSize(ctx).Result()
	if na+nb != 20 || na == 0 || nb == 0 {
		t.Errorf("keys per shard %d and %d, want 20 spread over both", na, nb)
	}
}
