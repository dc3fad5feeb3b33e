package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// loneSubjects are measured as a lone caller that calls once a second: the
// latency an idle client sees, where coalescing can only cost.
var loneSubjects = []string{"ours TokenBucket", pipelineOff, "redis_rate"}

// measureLone calls each lone subject once per interval, calls times, on the
// key "lone", taking turns in rotating order, and keeps the latencies.
func measureLone(ctx context.Context, rep *report, deciders []decideFunc, calls int, interval time.Duration, progress io.Writer) error {
	var idx []int
	for _, name := range loneSubjects {
		for i, sr := range rep.Subjects {
			if sr.S.Name == name {
				idx = append(idx, i)
			}
		}
	}
	if len(idx) == 0 {
		return nil
	}
	fmt.Fprintf(progress, "lone caller: %d calls each, one per %v\n", calls, interval)
	// The subjects' calls are spread over the interval, so that each finds
	// the process and Redis as idle as the others' do (back to back, the
	// first call of a round paid the wake-up and the others did not).
	tick := time.NewTicker(interval / time.Duration(len(idx)))
	defer tick.Stop()
	for c := 0; c < calls; c++ {
		for j := range idx {
			<-tick.C
			i := idx[(j+c)%len(idx)]
			start := time.Now()
			if _, err := deciders[i](ctx, "lone"); err != nil {
				return fmt.Errorf("%s: lone caller: %w", rep.Subjects[i].S.Name, err)
			}
			rep.Subjects[i].Lone = append(rep.Subjects[i].Lone, time.Since(start))
		}
	}
	return nil
}

// loneTable renders the lone-caller latencies.
func (r *report) loneTable() string {
	var b strings.Builder
	for _, sr := range r.Subjects {
		if len(sr.Lone) == 0 {
			continue
		}
		if b.Len() == 0 {
			fmt.Fprintf(&b, "## A lone caller\n\nOne call a second per subject (%d calls each, the subjects taking turns, their calls spread over the second), so every call finds an idle client: what coalescing costs when there is nothing to coalesce. Idle wake-ups make these latencies spread widely (see max).\n\n", len(sr.Lone))
			b.WriteString("| Subject | p50 µs | max µs |\n|---|---:|---:|\n")
		}
		p50, mx := loneStats(sr.Lone)
		fmt.Fprintf(&b, "| %s | %s | %s |\n", sr.S.Name, fmtDur(float64(p50)), fmtDur(float64(mx)))
	}
	if b.Len() > 0 {
		b.WriteString("\n")
	}
	return b.String()
}

// loneStats returns the median and the maximum of d.
func loneStats(d []time.Duration) (p50, mx time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)-1]
}
