package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/seed68425060/ratelimit/internal/redistest"
)

func TestBench(t *testing.T) {
	s := redistest.Start(t)
	code, stdout, stderr := runCmd(t, "bench", "-redis", "redis://"+s.Addr, "-c", "2", "-d", "300ms", "-keys", "5", "-limit", "2/1h")
	if code != exitOK {
		t.Fatalf("bench = %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if strings.Contains(stdout, "\r") {
		t.Errorf("bench to a non-terminal wrote a progress line:\n%q", stdout)
	}
	if !strings.Contains(stdout, "2 workers, 300ms per algorithm, 5 keys, limit 2/h per key") {
		t.Errorf("bench header missing:\n%s", stdout)
	}
	for _, a := range algorithms {
		var row []string
		for _, line := range strings.Split(stdout, "\n") {
			if f := strings.Fields(line); len(f) == 7 && f[0] == a.String() {
				row = f
			}
		}
		if row == nil {
			t.Errorf("bench output has no row for %s:\n%s", a, stdout)
			continue
		}
		decisions, _ := strconv.Atoi(row[1])
		if decisions < 10 {
			t.Errorf("%s: %d decisions in 300ms, want at least 10", a, decisions)
		}
		// 5 keys at 2 per hour admit exactly 10 in total.
		if want := 100 * 10 / float64(decisions); row[3] != strconv.FormatFloat(want, 'f', 1, 64)+"%" {
			t.Errorf("%s: allowed %s of %d decisions, want 10 (%.1f%%)", a, row[3], decisions, want)
		}
		for _, d := range row[4:6] {
			if v, err := time.ParseDuration(d); err != nil || v <= 0 {
				t.Errorf("%s: latency %q is not a positive duration", a, d)
			}
		}
		if row[6] != "0" {
			t.Errorf("%s: %s errors; stderr:\n%s", a, row[6], stderr)
		}
	}
	n, err := s.Client(t).DBSize(context.Background()).Result()
	if err != nil || n != 0 {
		t.Errorf("DBSIZE after bench = %d, %v; want 0 (keys cleaned up)", n, err)
	}
}

func TestBenchOneAlgorithm(t *testing.T) {
	s := redistest.Start(t)
	code, stdout, stderr := runCmd(t, "bench", "-redis", "redis://"+s.Addr, "-c", "1", "-d", "100ms", "-algorithms", "leaky-bucket")
	if code != exitOK || !strings.Contains(stdout, "leaky_bucket") || strings.Contains(stdout, "token_bucket") {
		t.Errorf("bench -algorithms leaky-bucket = %d:\n%s%s", code, stdout, stderr)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	for _, tt := range []struct{ p, want int }{{50, 50}, {99, 99}, {100, 100}, {1, 1}} {
		if got := percentile(d, tt.p); got != time.Duration(tt.want) {
			t.Errorf("percentile(1..100, %d) = %d, want %d", tt.p, got, tt.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("percentile(nil) = %v, want 0", got)
	}
}

// TestBenchRedisKilled: with Redis killed mid-run, bench stops soon (it used
// to hammer for its whole duration: 2.6M failed calls), reports the error
// once, without internal names, and exits 1.
func TestBenchRedisKilled(t *testing.T) {
	s := redistest.Start(t)
	type out struct {
		code           int
		stdout, stderr string
	}
	done := make(chan out, 1)
	start := time.Now()
	go func() {
		code, stdout, stderr := runCmd(t, "bench", "-redis", "redis://"+s.Addr, "-c", "4", "-d", "60s", "-keys", "100")
		done <- out{code, stdout, stderr}
	}()
	time.Sleep(2500 * time.Millisecond)
	s.Kill()
	var o out
	select {
	case o = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("bench kept running 30s after Redis was killed")
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("bench ran %v of its 60s after Redis was killed at 2.5s", took)
	}
	if o.code != exitFail || strings.Count(o.stderr, "calls failed") != 1 || !strings.Contains(o.stderr, "stopped") {
		t.Errorf("bench with Redis killed = %d, stderr:\n%s", o.code, o.stderr)
	}
	if strings.Contains(o.stderr, ".token-bucket") || strings.Contains(o.stderr, "ratelimit: r") {
		t.Errorf("the error shows the run's internal limiter name:\n%s", o.stderr)
	}
	// Not a terminal: a progress line every 2s, before Redis died.
	if !strings.Contains(o.stdout, "decisions") || !strings.Contains(o.stdout, "errors\n") {
		t.Errorf("no progress line on a non-terminal:\n%s", o.stdout)
	}
}
