package middleware_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit"
	"github.com/seed68425060/ratelimit/clientip"
	"github.com/seed68425060/ratelimit/middleware"
)

// benchHandler is the middleware hot path on miniredis: one admitted request
// behind a trusted proxy, draft headers. miniredis shows Go overhead only;
// quote latency from a real redis-server.
func benchHandler(b *testing.B) (http.Handler, *http.Request) {
	_, rdb := newMini(b)
	lim := newLimiter(b, rdb, ratelimit.Config{Name: "bench", Limit: 1_000_000_000, Period: time.Hour})
	mw := newMiddleware(b, middleware.Config{
		Limiters:  []*ratelimit.Limiter{lim},
		OnFailure: ratelimit.FailOpen,
		ClientIP:  clientip.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
	})
	r := httptest.NewRequest(http.MethodGet, "/api", nil)
	r.RemoteAddr = "10.0.0.1:40000"
	r.Header.Set("X-Forwarded-For", "198.51.100.1, 2001:db8:1:2::7")
	return mw.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})), r
}

// nopWriter is a ResponseWriter that keeps headers and discards the rest.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(int)             {}

func BenchmarkHandler(b *testing.B) {
	h, r := benchHandler(b)
	w := &nopWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, r)
	}
	if w.h.Get(middleware.HeaderRateLimit) == "" {
		b.Fatal("request was not rate-limited")
	}
}

func BenchmarkHandlerParallel(b *testing.B) {
	h, r := benchHandler(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &nopWriter{h: http.Header{}}
		for pb.Next() {
			clear(w.h)
			h.ServeHTTP(w, r)
		}
	})
}

// BenchmarkClientIPKey is the pure-Go part: finding and masking the client.
func BenchmarkClientIPKey(b *testing.B) {
	c := &clientip.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	r := httptest.NewRequest(http.MethodGet, "/api", nil)
	r.RemoteAddr = "10.0.0.1:40000"
	r.Header.Set("X-Forwarded-For", "198.51.100.1, 2001:db8:1:2::7, 10.0.0.9")
	b.ReportAllocs()
	for b.Loop() {
		c.Key(r)
	}
}

// fixedScripter is a redis.Scripter whose every script call returns an admitted
// token-bucket reply, to measure the middleware's own cost without any Redis.
type fixedScripter struct{ redis.Scripter }

func (fixedScripter) reply(ctx context.Context) *redis.Cmd {
	c := redis.NewCmd(ctx)
	c.SetVal(int64(0)) // a bucket's debt before the call: empty, so admitted

	return c
}
func (f fixedScripter) EvalSha(ctx context.Context, _ string, _ []string, _ ...any) *redis.Cmd {
	return f.reply(ctx)
}
func (f fixedScripter) Eval(ctx context.Context, _ string, _ []string, _ ...any) *redis.Cmd {
	return f.reply(ctx)
}

// BenchmarkHandlerNoRedis is the middleware alone: key, headers, next.
func BenchmarkHandlerNoRedis(b *testing.B) {
	lim := newLimiter(b, fixedScripter{}, ratelimit.Config{Name: "bench", Limit: 100, Period: time.Hour})
	mw := newMiddleware(b, middleware.Config{
		Limiters:  []*ratelimit.Limiter{lim},
		OnFailure: ratelimit.FailOpen,
		ClientIP:  clientip.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
	})
	h := mw.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	r := httptest.NewRequest(http.MethodGet, "/api", nil)
	r.RemoteAddr = "10.0.0.1:40000"
	r.Header.Set("X-Forwarded-For", "198.51.100.1, 2001:db8:1:2::7")
	w := &nopWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, r)
	}
	if got := w.h.Get(middleware.HeaderRateLimit); got != `"bench";r=99;t=36` {
		b.Fatalf("RateLimit = %q", got)
	}
}
