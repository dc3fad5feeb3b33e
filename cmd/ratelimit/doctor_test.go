package main

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/seed68425060/ratelimit/internal/redistest"
)

// statusOf returns the status word of check name in doctor's output.
func statusOf(t *testing.T, out, name string) string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^(OK|WARN|FAIL) +` + name + ` `)
	m := re.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("doctor output has no %q check:\n%s", name, out)
	}
	return m[1]
}

func TestDoctor(t *testing.T) {
	tests := []struct {
		name   string
		extra  []string // redis-server arguments
		code   int
		status map[string]string
		output []string
	}{
		{
			name:   "defaults",
			code:   exitOK,
			status: map[string]string{"version": "OK", "eviction": "OK", "cluster": "OK", "scripts": "OK", "clock": "OK", "latency": "OK"},
			output: []string{"Redis 7", "maxmemory-policy noeviction", "standalone", "NOSCRIPT", "admitted 2 of 3", "0 FAIL"},
		},
		{
			name:   "evicting with maxmemory",
			extra:  []string{"--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"},
			code:   exitFail,
			status: map[string]string{"eviction": "FAIL", "scripts": "OK"},
			output: []string{"allkeys-lru with maxmemory 67108864", "fix: CONFIG SET maxmemory-policy noeviction", "1 FAIL"},
		},
		{
			name:   "evicting without maxmemory",
			extra:  []string{"--maxmemory-policy", "volatile-ttl"},
			code:   exitOK,
			status: map[string]string{"eviction": "WARN"},
			output: []string{"volatile-ttl with no maxmemory", "1 WARN"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := redistest.Start(t, tt.extra...)
			code, stdout, stderr := runCmd(t, "doctor", "-redis", "redis://"+s.Addr, "-n", "5")
			if code != tt.code {
				t.Errorf("doctor = %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout, stderr)
			}
			for name, want := range tt.status {
				if got := statusOf(t, stdout, name); got != want {
					t.Errorf("check %s = %s, want %s:\n%s", name, got, want, stdout)
				}
			}
			for _, w := range tt.output {
				if !strings.Contains(stdout, w) {
					t.Errorf("doctor output lacks %q:\n%s", w, stdout)
				}
			}
			// doctor leaves nothing behind and never flushes scripts.
			n, err := s.Client(t).DBSize(context.Background()).Result()
			if err != nil || n != 0 {
				t.Errorf("DBSIZE after doctor = %d, %v; want 0", n, err)
			}
		})
	}
}

// TestDoctorKeepsScripts checks that doctor does not flush the script cache,
// which other applications on the server rely on.
func TestDoctorKeepsScripts(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	c := s.Client(t)
	sha, err := c.ScriptLoad(ctx, "return 42").Result()
	if err != nil {
		t.Fatal(err)
	}
	if code, stdout, _ := runCmd(t, "doctor", "-redis", "redis://"+s.Addr, "-n", "1"); code != exitOK {
		t.Fatalf("doctor = %d:\n%s", code, stdout)
	}
	ok, err := c.ScriptExists(ctx, sha).Result()
	if err != nil || !ok[0] {
		t.Errorf("SCRIPT EXISTS after doctor = %v, %v; want [true]", ok, err)
	}
}

func TestDoctorScriptReload(t *testing.T) {
	s := redistest.Start(t)
	// First run on a fresh server: the limiter's script is not cached, so the
	// call falls back to EVAL. The second run finds it cached.
	_, out1, _ := runCmd(t, "doctor", "-redis", "redis://"+s.Addr, "-n", "1")
	_, out2, _ := runCmd(t, "doctor", "-redis", "redis://"+s.Addr, "-n", "1")
	if !strings.Contains(out1, "fell back to EVAL") {
		t.Errorf("first doctor run did not report the EVAL fallback:\n%s", out1)
	}
	if !strings.Contains(out2, "already cached") {
		t.Errorf("second doctor run did not find the script cached:\n%s", out2)
	}
}

func TestDoctorClusterNodeAsStandalone(t *testing.T) {
	s := redistest.Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	code, stdout, _ := runCmd(t, "doctor", "-redis", "redis://"+s.Addr, "-n", "1")
	if code != exitFail || statusOf(t, stdout, "cluster") != "FAIL" || !strings.Contains(stdout, "-cluster host:port") {
		t.Errorf("doctor on a cluster node as standalone = %d:\n%s", code, stdout)
	}
}

// TestPolicyEffect: doctor says what each maxmemory-policy means for limits
// and lockouts.
func TestPolicyEffect(t *testing.T) {
	for p, want := range map[string]string{
		"noeviction":      "locked keys still answer",
		"volatile-ttl":    "nearest their expiry",
		"volatile-lru":    "locks lift first",
		"volatile-lfu":    "locks lift first",
		"volatile-random": "locks lift first",
		"allkeys-lru":     "like cache entries",
		"allkeys-random":  "like cache entries",
	} {
		if got := policyEffect(p); !strings.Contains(got, want) {
			t.Errorf("policyEffect(%q) = %q, want it to say %q", p, got, want)
		}
	}
}

// TestRedisHostPort: -redis accepts host:port as people type it, not only a
// redis:// URL.
func TestRedisHostPort(t *testing.T) {
	s := redistest.Start(t)
	code, stdout, stderr := runCmd(t, "doctor", "-redis", s.Addr)
	if code == exitUsage || strings.Contains(stderr, "parse") || !strings.Contains(stdout, "eviction") {
		t.Errorf("doctor -redis %s = %d:\n%s%s", s.Addr, code, stdout, stderr)
	}
}
