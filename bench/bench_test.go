package main

import (
	"context"
	"encoding/xml"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	o.Reps, o.Duration, o.Concs = 1, 20*time.Millisecond, []int{1, 4}
	o.Keys, o.MemKeys, o.AllocCalls = 200, 200, 50
	o.BurstLimit, o.BurstG, o.BurstEach = 10, 8, 5
	o.Out, o.Chart = filepath.Join(dir, "B.md"), filepath.Join(dir, "c.svg")
	if err := run(context.Background(), o, "go run . (test)", io.Discard); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(o.Out)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range subjects(0) {
		if !strings.Contains(string(md), "| "+s.Name+" |") {
			t.Errorf("report has no row for %q", s.Name)
		}
	}
	for _, want := range []string{"](c.svg)", "go run . (test)", "## Targets (issue 7)"} {
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

// BenchmarkAllow measures one decision per subject, for profiling the client
// side: go test -bench Allow -benchmem -memprofile mem.out.
func BenchmarkAllow(b *testing.B) {
	s := startTestServer(b)
	c := newClient(s.Addr, 128)
	defer c.Close()
	ctx := context.Background()
	keys := userKeys("u", 1000)
	for _, sub := range subjects(0) {
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
