package ratelimit

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit/internal/redistest"
)

// TestClientOptionsFix checks that each options helper returns a copy with the
// two fixes and every other option kept, leaves its argument alone, and gives
// a client New accepts, while a client from the original options is rejected.
func TestClientOptionsFix(t *testing.T) {
	cfg := Config{Name: "fix", Limit: 1, Period: time.Second}
	t.Run("client", func(t *testing.T) {
		orig := &redis.Options{Addr: "127.0.0.1:1", PoolSize: 7, DB: 2}
		got := ClientOptions(orig)
		if got == orig || got.MaxRetries != -1 || !got.ContextTimeoutEnabled || got.Addr != orig.Addr || got.PoolSize != 7 || got.DB != 2 {
			t.Errorf("ClientOptions(%+v) = %+v; want a copy with MaxRetries -1, ContextTimeoutEnabled true, the rest kept", orig, got)
		}
		if orig.MaxRetries != 0 || orig.ContextTimeoutEnabled {
			t.Errorf("ClientOptions changed its argument: %+v", orig)
		}
		checkNew(t, redis.NewClient(orig), redis.NewClient(got), cfg)
		// From a built client's Options(), where go-redis has filled in MaxRetries 3.
		rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
		checkNew(t, rdb, redis.NewClient(ClientOptions(rdb.Options())), cfg)
		if rdb.Options().MaxRetries != 3 {
			t.Errorf("ClientOptions(rdb.Options()) changed rdb: MaxRetries = %d", rdb.Options().MaxRetries)
		}
	})
	t.Run("cluster", func(t *testing.T) {
		orig := &redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}, MaxRetries: 4, PoolSize: 3}
		got := ClusterOptions(orig)
		if got == orig || got.MaxRetries != -1 || !got.ContextTimeoutEnabled || len(got.Addrs) != 1 || got.PoolSize != 3 {
			t.Errorf("ClusterOptions = %+v; want a fixed copy", got)
		}
		if orig.MaxRetries != 4 || orig.ContextTimeoutEnabled {
			t.Errorf("ClusterOptions changed its argument: %+v", orig)
		}
		checkNew(t, redis.NewClusterClient(orig), redis.NewClusterClient(got), cfg)
	})
	t.Run("failover", func(t *testing.T) {
		orig := &redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{"127.0.0.1:1"}, PoolSize: 5}
		got := FailoverOptions(orig)
		if got == orig || got.MaxRetries != -1 || !got.ContextTimeoutEnabled || got.MasterName != "m" || got.PoolSize != 5 {
			t.Errorf("FailoverOptions = %+v; want a fixed copy", got)
		}
		if orig.MaxRetries != 0 || orig.ContextTimeoutEnabled {
			t.Errorf("FailoverOptions changed its argument: %+v", orig)
		}
		checkNew(t, redis.NewFailoverClient(orig), redis.NewFailoverClient(got), cfg)
	})
	t.Run("ring", func(t *testing.T) {
		orig := &redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}}
		got := RingOptions(orig)
		if got == orig || got.MaxRetries != -1 || !got.ContextTimeoutEnabled || got.Addrs["a"] == "" {
			t.Errorf("RingOptions = %+v; want a fixed copy", got)
		}
		if orig.MaxRetries != 0 || orig.ContextTimeoutEnabled {
			t.Errorf("RingOptions changed its argument: %+v", orig)
		}
		checkNew(t, redis.NewRing(orig), redis.NewRing(got), cfg)
	})
	t.Run("nil", func(t *testing.T) {
		if o := ClientOptions(nil); o.MaxRetries != -1 || !o.ContextTimeoutEnabled {
			t.Errorf("ClientOptions(nil) = %+v", o)
		}
		if ClusterOptions(nil) == nil || FailoverOptions(nil) == nil || RingOptions(nil) == nil {
			t.Error("an options helper returned nil for nil")
		}
	})
}

// checkNew checks that New rejects bad, naming each problem once and the fix,
// and accepts good; it closes both.
func checkNew(t *testing.T, bad, good redis.UniversalClient, cfg Config) {
	t.Helper()
	defer bad.Close()
	defer good.Close()
	_, err := New(bad, cfg)
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New(default client) = %v, want ErrInvalidConfig", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "Options(") || strings.Count(msg, "ratelimit:") != 1 || strings.Count(msg, "\n") != 0 {
		t.Errorf("New(default client) = %q; want one line naming the Options helper", msg)
	}
	for _, p := range []string{"MaxRetries", "ContextTimeoutEnabled"} {
		if n := strings.Count(msg, p+" ="); n > 1 {
			t.Errorf("New(default client) names %s %d times: %q", p, n, msg)
		}
	}
	if _, err := New(good, cfg); err != nil {
		t.Errorf("New(fixed client) = %v, want nil", err)
	}
}

// TestClientOptionsServe runs a limiter on a client made with ClientOptions
// from a default client, on miniredis and a real redis-server.
func TestClientOptionsServe(t *testing.T) {
	mr := miniredis.RunT(t)
	for _, tt := range []struct{ name, addr string }{{"miniredis", mr.Addr()}, {"redis", redistest.Start(t).Addr}} {
		t.Run(tt.name, func(t *testing.T) {
			app := redis.NewClient(&redis.Options{Addr: tt.addr}) // go-redis defaults
			defer app.Close()
			rdb := redis.NewClient(ClientOptions(app.Options()))
			defer rdb.Close()
			l := mustNew(t, rdb, Config{Name: "reuse-" + tt.name, Limit: 2, Period: time.Hour})
			ctx := context.Background()
			for i, want := range []bool{true, true, false} {
				if r, err := l.Allow(ctx, "k"); err != nil || r.Allowed != want {
					t.Fatalf("Allow #%d = %+v, %v; want allowed %v", i+1, r, err, want)
				}
			}
			if err := app.Ping(ctx).Err(); err != nil {
				t.Errorf("the application's client: %v", err)
			}
		})
	}
}
