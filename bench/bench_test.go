package main

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// startTestServer starts a redis-server for a test, or skips when there is
// none (fails instead when RATELIMIT_REQUIRE_REDIS=1, as in CI).
func startTestServer(tb testing.TB) *server {
	tb.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("RATELIMIT_REQUIRE_REDIS") == "1" {
			tb.Fatalf("redis-server is required: %v", err)
		}
		tb.Skip("redis-server not found on PATH: apt-get install -y redis-server")
	}
	s, err := startServer("redis-server")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.stop)
	return s
}

// TestRunTiny runs the whole harness for a few milliseconds per cell and
// checks the report: every subject measured, our limiters exact under the
// burst, and a chart that parses as XML.
func TestRunTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server and runs every subject")
	}
	startTestServer(t) // skip early if there is no redis-server
	dir := t.TempDir()
	o := defaultOptions()
	// 16 goroutines (the path cells') is not among the concurrencies, so
	// the path cells measure keys in use themselves.
	o.Reps, o.Duration, o.Concs, o.LoneCalls = 1, 20*time.Millisecond, []int{1, 20}, 2
	o.Keys, o.MemKeys, o.AllocCalls, o.FreshKeys = 200, 200, 50, 20_000
	o.BurstLimit, o.BurstG, o.BurstEach = 10, 8, 5
	o.Out, o.Chart = filepath.Join(dir, "B.md"), filepath.Join(dir, "c.svg")
	if err := run(context.Background(), o, "go run . (test)", io.Discard); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(o.Out)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range subjects() {
		if !strings.Contains(string(md), "| "+s.Name+" |") {
			t.Errorf("report has no row for %q", s.Name)
		}
	}
	for _, want := range []string{"](c.svg)", "go run . (test)", "## Targets", "## A lone caller", "### Script time by path", "### Script cost breakdown",
		"| current | + INCRBY", "| old script shape | + TIME, GET, SET … PX, 7-integer reply"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, name := range []string{"ours TokenBucket", "ours LeakyBucket", "ours SlidingWindow"} {
		row := "| " + name + " | 40 | 10 | 0 | exact |"
		if !strings.Contains(string(md), row) {
			t.Errorf("report lacks the exact-burst row %q", row)
		}
	}
	// Every stateful limiter has a by-path row: all denial calls denied.
	for _, s := range subjects() {
		if !s.byPath() {
			continue
		}
		var row string
		section := string(md)[strings.Index(string(md), "### Script time by path"):]
		for _, line := range strings.Split(section, "\n") {
			if strings.HasPrefix(line, "| "+s.Name+" | ") && strings.Contains(line, " / ") {
				row = line
				break
			}
		}
		if row == "" {
			t.Errorf("script time by path has no row for %q", s.Name)
		} else if !strings.Contains(row, "| 0 / ") {
			t.Errorf("denial cells admitted calls: %q", row)
		}
	}
	svg, err := os.ReadFile(o.Chart)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(strings.NewReader(string(svg)))
	for {
		if _, err := dec.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("chart is not well-formed XML: %v", err)
		}
	}
}

// TestAblationArgs checks that the current-shape skeletons are called with
// the ARGV this library sends for a plain Allow under the throughput limit,
// and that their keys hold what a bucket script writes on a fresh key.
func TestAblationArgs(t *testing.T) {
	s := startTestServer(t)
	ctx := context.Background()
	h := &argsHook{}
	c := newHookedClient(s.Addr, 4, h)
	defer c.Close()
	for _, sub := range subjects() {
		if sub.Name != "ours TokenBucket" && sub.Name != "ours LeakyBucket" {
			continue
		}
		d, err := sub.New(ctx, c, throughputLimit)
		if err != nil {
			t.Fatal(err)
		}
		h.args = nil
		if _, err := d(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		// EVALSHA sha 2 lock state ARGV... (or EVAL src 2 lock state ARGV...)
		if len(h.args) < 5 {
			t.Fatalf("%s: no script call seen: %v", sub.Name, h.args)
		}
		got := fmt.Sprint(h.args[5:])
		if want := fmt.Sprint(bucketArgs(throughputLimit)); got != want {
			t.Errorf("%s sends ARGV %s, the skeletons %s", sub.Name, got, want)
		}
		rk := fmt.Sprint(h.args[4])
		v, err := c.Get(ctx, rk).Int64()
		if err != nil {
			t.Fatal(err)
		}
		ttl, err := c.PTTL(ctx, rk).Result()
		if err != nil {
			t.Fatal(err)
		}
		o, ms := ablationState(throughputLimit)
		if v != o || ttl <= 0 || ttl > time.Duration(ms)*time.Millisecond || ttl < time.Duration(ms)*time.Millisecond-time.Minute {
			t.Errorf("%s wrote %d PX %v on a fresh key, the skeletons' keys hold %d PX %dms", sub.Name, v, ttl, o, ms)
		}
	}
}

// argsHook records the arguments of the last script command.
type argsHook struct{ args []any }

func (h *argsHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *argsHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if n := cmd.Name(); n == "evalsha" || n == "eval" {
			h.args = append([]any(nil), cmd.Args()...)
		}
		return next(ctx, cmd)
	}
}

func (h *argsHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// BenchmarkAllow measures one decision per subject, for profiling the client
// side: go test -bench Allow -benchmem -memprofile mem.out.
func BenchmarkAllow(b *testing.B) {
	s := startTestServer(b)
	c := newClient(s.Addr, 128)
	defer c.Close()
	ctx := context.Background()
	keys := userKeys("u", 1000)
	for _, sub := range subjects() {
		b.Run(strings.ReplaceAll(sub.Name, " ", "_"), func(b *testing.B) {
			d, err := sub.New(ctx, c, limitSpec{Limit: 1_000_000, Period: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := d(ctx, keys[i%len(keys)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
