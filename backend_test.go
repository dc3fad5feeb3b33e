package ratelimit

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit/internal/redistest"
)

// backend is one Redis the core suite runs on.
type backend struct {
	name string
	// real reports whether this is a real redis-server (not miniredis).
	real bool
	// client is a client for limiters.
	client redis.UniversalClient
	// newClient returns another client with its own connection pool, as a
	// separate app server would have.
	newClient func(t *testing.T) redis.UniversalClient
	// forEachNode runs fn on every primary (one for a standalone server).
	forEachNode func(ctx context.Context, fn func(ctx context.Context, c *redis.Client) error) error
}

// flushScripts empties the script cache of every node.
func (b backend) flushScripts(t *testing.T) {
	t.Helper()
	err := b.forEachNode(context.Background(), func(ctx context.Context, c *redis.Client) error {
		return c.ScriptFlush(ctx).Err()
	})
	if err != nil {
		t.Fatalf("%s: SCRIPT FLUSH: %v", b.name, err)
	}
}

// backends returns the Redis servers every core test runs on: miniredis, a real
// redis-server started for the test, and any extra ones (a real Redis Cluster).
// Each test should use its own KeyPrefix or Name. When the test ends, every key
// on every backend must have a TTL.
func backends(t *testing.T) []backend {
	t.Helper()
	mr := miniredis.RunT(t)
	bs := []backend{singleBackend(t, "miniredis", false, mr.Addr()), singleBackend(t, "redis", true, redistest.Start(t).Addr)}
	for _, extra := range extraBackends {
		bs = append(bs, extra(t))
	}
	for _, b := range bs {
		t.Cleanup(func() { checkAllKeysHaveTTL(t, b) })
	}
	return bs
}

// extraBackends add backends beyond miniredis and one redis-server.
var extraBackends []func(t *testing.T) backend

// realBackends is backends without miniredis.
func realBackends(t *testing.T) []backend {
	t.Helper()
	var out []backend
	for _, b := range backends(t) {
		if b.real {
			out = append(out, b)
		}
	}
	return out
}

func singleBackend(t *testing.T, name string, real bool, addr string) backend {
	newClient := func(t *testing.T) redis.UniversalClient {
		c := redis.NewClient(redistest.Options(addr))
		t.Cleanup(func() { c.Close() })
		return c
	}
	c := newClient(t).(*redis.Client)
	return backend{
		name:      name,
		real:      real,
		client:    c,
		newClient: newClient,
		forEachNode: func(ctx context.Context, fn func(ctx context.Context, c *redis.Client) error) error {
			return fn(ctx, c)
		},
	}
}

// checkAllKeysHaveTTL fails t if any key on b has no TTL.
func checkAllKeysHaveTTL(t *testing.T, b backend) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var seen atomic.Int64
	err := b.forEachNode(ctx, func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, "*", 1000).Iterator()
		for iter.Next(ctx) {
			seen.Add(1)
			ttl, err := c.PTTL(ctx, iter.Val()).Result()
			if err != nil {
				return err
			}
			if ttl == -1 {
				t.Errorf("%s: key %q has no TTL", b.name, iter.Val())
			}
		}
		return iter.Err()
	})
	if err != nil {
		t.Errorf("%s: scanning keys for TTLs: %v", b.name, err)
	}
}

// mustNew is New that fails the test on error.
func mustNew(t testing.TB, c redis.Scripter, cfg Config) *Limiter {
	t.Helper()
	l, err := New(c, cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return l
}

// recorder is an Observer that keeps every Event, up to 65,536. It never
// blocks the limiter: events beyond that are counted, and the test fails.
type recorder struct {
	events  chan Event
	dropped atomic.Int64
}

func newRecorder(t testing.TB) *recorder {
	r := &recorder{events: make(chan Event, 1<<16)}
	t.Cleanup(func() {
		if n := r.dropped.Load(); n > 0 {
			t.Errorf("the test's recorder was full and dropped %d events", n)
		}
	})
	return r
}

func (r *recorder) Observe(e Event) {
	select {
	case r.events <- e:
	default:
		r.dropped.Add(1)
	}
}

func (r *recorder) drain() []Event {
	var out []Event
	for {
		select {
		case e := <-r.events:
			out = append(out, e)
		default:
			return out
		}
	}
}
