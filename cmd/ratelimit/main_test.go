package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed68425060/ratelimit"
)

// syncBuffer is a bytes.Buffer safe for a command writing while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runCmd runs the command line args and returns its exit status and output.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut syncBuffer
	code = run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestHelp(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string // substrings of stdout
		stderr   []string // substrings of stderr
		noStdout bool
	}{
		{name: "no args", args: nil, code: exitUsage, stderr: []string{"Commands:", "serve", "doctor"}, noStdout: true},
		{name: "help", args: []string{"help"}, code: exitOK, stdout: []string{"Commands:", "inspect", "reset", "bench", "ratelimit serve"}},
		{name: "-h", args: []string{"-h"}, code: exitOK, stdout: []string{"Commands:"}},
		{name: "help serve", args: []string{"help", "serve"}, code: exitOK, stdout: []string{"ratelimit serve", "Examples:", "-api-limit", "-trusted-proxies", "-redis"}},
		{name: "help unknown", args: []string{"help", "nope"}, code: exitUsage, stderr: []string{`unknown command "nope"`}},
		{name: "unknown command", args: []string{"serv"}, code: exitUsage, stderr: []string{`unknown command "serv"`, "Commands:"}},
	}
	for _, c := range commands() {
		tests = append(tests, struct {
			name     string
			args     []string
			code     int
			stdout   []string
			stderr   []string
			noStdout bool
		}{name: c.name + " -h", args: []string{c.name, "-h"}, code: exitOK, stdout: []string{"ratelimit " + c.name, "Usage:", "Examples:", "Flags:", "-redis"}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, tt.args...)
			if code != tt.code {
				t.Errorf("run(%q) = %d, want %d; stderr:\n%s", tt.args, code, tt.code, stderr)
			}
			for _, s := range tt.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("run(%q) stdout lacks %q:\n%s", tt.args, s, stdout)
				}
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("run(%q) stderr lacks %q:\n%s", tt.args, s, stderr)
				}
			}
			if tt.noStdout && stdout != "" {
				t.Errorf("run(%q) wrote to stdout:\n%s", tt.args, stdout)
			}
		})
	}
}

func TestBadFlags(t *testing.T) {
	t.Setenv(redisURLEnv, "")
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"serve unknown flag", []string{"serve", "-nope"}, exitUsage, "flag provided but not defined: -nope"},
		{"serve bad limit", []string{"serve", "-api-limit", "100"}, exitUsage, `limit "100": missing '/'`},
		{"serve bad login limit", []string{"serve", "-login-limit", "0/1m"}, exitUsage, `limit "0/1m"`},
		{"serve bad proxies", []string{"serve", "-trusted-proxies", "10.0.0.0/33"}, exitUsage, `"10.0.0.0/33" is not a CIDR`},
		{"serve negative burst", []string{"serve", "-api-burst", "-1"}, exitUsage, "-api-burst = -1"},
		{"serve stray argument", []string{"serve", "extra"}, exitUsage, `unexpected argument "extra"`},
		{"serve redis and cluster", []string{"serve", "-redis", "redis://127.0.0.1:1", "-cluster", "127.0.0.1:2"}, exitFail, "not both"},
		{"serve bad url", []string{"serve", "-redis", "http://x:1"}, exitFail, "-redis"},
		{"serve bad cluster", []string{"serve", "-cluster", "nohost"}, exitFail, `node "nohost" is not host:port`},
		{"serve unreachable", []string{"serve", "-redis", "redis://127.0.0.1:1"}, exitFail, "cannot reach redis://127.0.0.1:1/0"},
		{"inspect no redis", []string{"inspect", "-name", "api", "-limit", "1/s", "-key", "k"}, exitUsage, "no Redis"},
		{"inspect missing", []string{"inspect", "-redis", "redis://127.0.0.1:1"}, exitUsage, "-name is required\n-key is required\n-limit is required"},
		{"inspect bad algorithm", []string{"inspect", "-algorithm", "gcra"}, exitUsage, `unknown algorithm "gcra"`},
		{"inspect unreachable", []string{"inspect", "-redis", "redis://127.0.0.1:1", "-name", "api", "-limit", "1/s", "-key", "k"}, exitFail, "cannot reach"},
		{"reset missing key", []string{"reset", "-redis", "redis://127.0.0.1:1", "-name", "api"}, exitUsage, "-key is required"},
		{"doctor no redis", []string{"doctor"}, exitUsage, "no Redis"},
		{"doctor bad n", []string{"doctor", "-redis", "redis://127.0.0.1:1", "-n", "0"}, exitUsage, "-n = 0"},
		{"bench no redis", []string{"bench"}, exitUsage, "no Redis"},
		{"bench bad values", []string{"bench", "-redis", "redis://127.0.0.1:1", "-c", "0", "-d", "0s", "-keys", "0", "-algorithms", "x"}, exitUsage, "-c = 0"},
		{"bench unreachable", []string{"bench", "-redis", "redis://127.0.0.1:1"}, exitFail, "cannot reach"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCmd(t, tt.args...)
			if code != tt.code {
				t.Errorf("run(%q) = %d, want %d; stderr:\n%s", tt.args, code, tt.code, stderr)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("run(%q) stderr lacks %q:\n%s", tt.args, tt.stderr, stderr)
			}
			if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
				t.Errorf("run(%q) printed a stack trace:\n%s", tt.args, stderr)
			}
		})
	}
}

func TestRedisURLEnv(t *testing.T) {
	t.Setenv(redisURLEnv, "redis://127.0.0.1:1/3")
	code, stdout, _ := runCmd(t, "doctor")
	if code != exitFail || !strings.Contains(stdout, "FAIL  connect") || !strings.Contains(stdout, "redis://127.0.0.1:1/3") {
		t.Errorf("doctor with %s: code %d, stdout:\n%s", redisURLEnv, code, stdout)
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"redis://127.0.0.1:6379", "redis://127.0.0.1:6379"},
		{"redis://:secret@host:6379/0", "redis://:xxxxx@host:6379/0"},
		{"rediss://default:p@ss@host:6380", "rediss://default:xxxxx@host:6380"},
		{"redis://user@host:6379", "redis://user@host:6379"},
		{"host:6379", "host:6379"},
	}
	for _, tt := range tests {
		if got := redactURL(tt.in); got != tt.want {
			t.Errorf("redactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseAlgorithm(t *testing.T) {
	for _, a := range algorithms {
		for _, s := range []string{a.String(), strings.ReplaceAll(a.String(), "_", "-"), strings.ToUpper(a.String())} {
			got, err := parseAlgorithm(s)
			if err != nil || got != a {
				t.Errorf("parseAlgorithm(%q) = %v, %v; want %v", s, got, err, a)
			}
		}
	}
	if _, err := parseAlgorithm("fixed_window"); err == nil {
		t.Error(`parseAlgorithm("fixed_window") succeeded, want an error`)
	}
}

// TestEmbeddedClockMoves: the embedded miniredis's key expiry, which is the
// limiters' clock, follows this host's clock, so refills happen and keys
// expire (the demo's memory stays bounded).
func TestEmbeddedClockMoves(t *testing.T) {
	t.Setenv(redisURLEnv, "")
	ctx := context.Background()
	c, err := (&redisFlags{}).connect(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l, err := ratelimit.New(c.client, ratelimit.Config{Name: "clock", Limit: 1, Period: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := l.Allow(ctx, "k"); err != nil || !r.Allowed {
		t.Fatalf("first Allow = %+v, %v", r, err)
	}
	r, err := l.Allow(ctx, "k")
	if err != nil || r.Allowed || r.RetryAfter <= 0 {
		t.Fatalf("second Allow = %+v, %v; want denied", r, err)
	}
	time.Sleep(r.RetryAfter + 3*miniTick)
	if r, err := l.Allow(ctx, "k"); err != nil || !r.Allowed {
		t.Fatalf("Allow after RetryAfter = %+v, %v; want admitted", r, err)
	}
	// The key lives at most two refills past its last admission.
	time.Sleep(200*time.Millisecond + 3*miniTick)
	if n := c.client.DBSize(ctx).Val(); n != 0 {
		t.Errorf("%d keys left after their TTL, want 0", n)
	}
}
