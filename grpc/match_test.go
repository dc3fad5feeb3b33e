package ratelimitgrpc

import (
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit"
)

// TestMatch: which list of limiters each method name gets, including names
// without the leading slash, which must not escape their entry.
func TestMatch(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	lim := func(name string) *ratelimit.Limiter {
		l, err := ratelimit.New(rdb, ratelimit.Config{Name: name, Limit: 1, Period: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	in, err := New(Config{
		Limiters: []*ratelimit.Limiter{lim("default")},
		Methods: map[string][]*ratelimit.Limiter{
			"/pkg.Svc/Login": {lim("login")},
			"/pkg.Svc/":      {lim("svc")},
			"/pkg.Svc/Ping":  {},
		},
		OnFailure: ratelimit.FailOpen,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ method, want string }{
		{"/pkg.Svc/Login", "login"},
		{"pkg.Svc/Login", "login"},
		{"/pkg.Svc/Other", "svc"},
		{"pkg.Svc/Other", "svc"},
		{"/pkg.Svc/Ping", ""},
		{"/pkg.Svc2/Login", "default"},
		{"/pkg.Svc", "default"},
		{"", "default"},
		{"/pkg.Svc/Login/x", "default"},
	} {
		got := ""
		if list := in.match(tt.method); len(list) > 0 {
			got = list[0].name
		}
		if got != tt.want {
			t.Errorf("match(%q) = %q, want %q", tt.method, got, tt.want)
		}
	}
}

// TestCeilMillis: RetryInfo delays are rounded up to the millisecond, never down.
func TestCeilMillis(t *testing.T) {
	for _, tt := range []struct{ in, want time.Duration }{
		{0, 0}, {1, time.Millisecond}, {time.Millisecond, time.Millisecond},
		{time.Millisecond + 1, 2 * time.Millisecond}, {1500 * time.Microsecond, 2 * time.Millisecond},
	} {
		if got := ceilMillis(tt.in); got != tt.want {
			t.Errorf("ceilMillis(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
