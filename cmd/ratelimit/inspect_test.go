package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/seed68425060/ratelimit"
	"github.com/seed68425060/ratelimit/internal/redistest"
)

// backend is a Redis for a test: its URL for the command line and a client.
type backend struct {
	name   string
	url    string
	client *redis.Client
}

// backends returns an embedded miniredis and, where installed, a real redis-server.
func backends(t *testing.T) []func(t *testing.T) backend {
	return []func(t *testing.T) backend{
		func(t *testing.T) backend {
			m := miniredis.RunT(t)
			c := redis.NewClient(redistest.Options(m.Addr()))
			t.Cleanup(func() { c.Close() })
			return backend{"miniredis", "redis://" + m.Addr(), c}
		},
		func(t *testing.T) backend {
			s := redistest.Start(t)
			return backend{"redis-server", "redis://" + s.Addr, s.Client(t)}
		},
	}
}

func forEachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	for i, start := range backends(t) {
		t.Run([]string{"miniredis", "redis-server"}[i], func(t *testing.T) {
			f(t, start(t))
		})
	}
}

// field returns the value of a "name   value" line of inspect's output.
func field(t *testing.T, out, name string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			return strings.TrimSpace(rest)
		}
	}
	t.Fatalf("output has no %q line:\n%s", name, out)
	return ""
}

func TestInspectReset(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		lim, err := ratelimit.New(b.client, ratelimit.Config{Name: "login-user", Limit: 3, Period: 15 * time.Minute, KeyPrefix: "t:"})
		if err != nil {
			t.Fatal(err)
		}
		flags := []string{"-redis", b.url, "-name", "login-user", "-limit", "3/15m", "-prefix", "t:", "-key", "alice"}
		inspect := func() string {
			t.Helper()
			code, stdout, stderr := runCmd(t, append([]string{"inspect"}, flags...)...)
			if code != exitOK {
				t.Fatalf("inspect = %d, stderr:\n%s", code, stderr)
			}
			return stdout
		}
		fresh, err := lim.Peek(ctx, "nobody")
		if err != nil {
			t.Fatal(err)
		}

		// A key with no state (or another limiter's flags) is said so, exit 1:
		// inspect never prints a state it did not read.
		if code, _, stderr := runCmd(t, append([]string{"inspect"}, flags...)...); code != exitFail || !strings.Contains(stderr, "no state for key") {
			t.Errorf("inspect of an unused key = %d:\n%s", code, stderr)
		}
		if fresh.Remaining != 3 {
			t.Errorf("fresh Peek remaining = %d, want 3", fresh.Remaining)
		}

		for range 2 {
			if _, err := lim.Allow(ctx, "alice"); err != nil {
				t.Fatal(err)
			}
		}
		want, err := lim.Peek(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		var out string
		for range 3 { // inspect consumes nothing: the same answer every time
			out = inspect()
			if got, w := field(t, out, "remaining"), fmt.Sprintf("%d of 3", want.Remaining); got != w {
				t.Errorf("after 2 calls: remaining = %q, want %q", got, w)
			}
		}
		if want.Remaining == fresh.Remaining {
			t.Errorf("Peek after 2 calls = %d remaining, the same as a fresh key", want.Remaining)
		}
		if got, _ := lim.Peek(ctx, "alice"); got.Remaining != want.Remaining {
			t.Errorf("after inspect: Peek remaining = %d, want %d (inspect consumed)", got.Remaining, want.Remaining)
		}
		if got := field(t, out, "locked"); got != "no" {
			t.Errorf("locked = %q, want no", got)
		}

		if err := lim.Lock(ctx, "alice", 10*time.Minute); err != nil {
			t.Fatal(err)
		}
		out = inspect()
		if got := field(t, out, "admitted now"); got != "no" {
			t.Errorf("locked key: admitted now = %q, want no", got)
		}
		if got := field(t, out, "locked"); !strings.HasPrefix(got, "yes, until ") || !strings.Contains(got, "ratelimit reset") {
			t.Errorf("locked key: locked = %q, want yes, until ... with the reset command", got)
		}
		retry, err := time.ParseDuration(field(t, out, "retry after"))
		if err != nil || retry < 9*time.Minute || retry > 10*time.Minute {
			t.Errorf("locked key: retry after = %v (%v), want about 10m", retry, err)
		}

		// Another prefix is another key: no state there, said so (exit 1),
		// never a fabricated fresh state.
		code, stdout, stderr := runCmd(t, "inspect", "-redis", b.url, "-name", "login-user", "-limit", "3/15m", "-key", "alice")
		if code != exitFail || stdout != "" || !strings.Contains(stderr, "check -name, -prefix") {
			t.Errorf("inspect with the default prefix = %d:\n%s%s", code, stdout, stderr)
		}

		if code, _, _ := runCmd(t, "reset", "-redis", b.url, "-name", "login-user", "-prefix", "t:", "-key", "alice"); code != exitUsage {
			t.Errorf("reset without -limit = %d, want %d (the Period names the key)", code, exitUsage)
		}
		code, stdout, stderr = runCmd(t, "reset", "-redis", b.url, "-name", "login-user", "-prefix", "t:", "-limit", "3/15m", "-key", "alice")
		if code != exitOK || !strings.Contains(stdout, `key "alice" of limiter "login-user" is fresh again`) {
			t.Fatalf("reset = %d, stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		got, err := lim.Peek(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if got.Locked() || !got.Allowed || got.Remaining != fresh.Remaining {
			t.Errorf("after reset: Peek = %+v, want fresh %+v", got, fresh)
		}
		// A second reset finds nothing: it says so and exits 1.
		code, _, stderr = runCmd(t, append([]string{"reset"}, flags...)...)
		if code != exitFail || !strings.Contains(stderr, "nothing was changed") {
			t.Errorf("reset of a fresh key = %d:\n%s", code, stderr)
		}
	})
}

func TestInspectAlgorithms(t *testing.T) {
	m := miniredis.RunT(t)
	url := "redis://" + m.Addr()
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true})
	defer rdb.Close()
	for _, a := range algorithms {
		lim, err := ratelimit.New(rdb, ratelimit.Config{Name: "x", Algorithm: a, Limit: 10, Period: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := lim.Allow(context.Background(), "k"); err != nil { // a state to inspect
			t.Fatal(err)
		}
		code, stdout, stderr := runCmd(t, "inspect", "-redis", url, "-name", "x", "-algorithm", a.String(), "-limit", "10/s", "-key", "k")
		if code != exitOK || !strings.Contains(stdout, "("+a.String()+", 10/s, burst 10") {
			t.Errorf("inspect -algorithm %s = %d:\n%s%s", a, code, stdout, stderr)
		}
	}
	// A config New rejects is a usage error naming the field.
	code, _, stderr := runCmd(t, "inspect", "-redis", url, "-name", "x", "-algorithm", "sliding_window", "-limit", "10/s", "-burst", "5", "-key", "k")
	if code != exitUsage || !strings.Contains(stderr, "Config.Burst = 5") {
		t.Errorf("inspect with a bad burst = %d, stderr:\n%s", code, stderr)
	}
}
