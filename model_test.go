package ratelimit

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestSlidingWindowBounds checks the bounds the README documents, on the model
// (which the differential test ties to the script): at most Limit admitted in
// every aligned window, and at most 2×Limit−1 in every rolling window; and the
// worst case is reached, so the bound is not loose.
func TestSlidingWindowBounds(t *testing.T) {
	const limit, period = 10, int64(1_000_000)
	l := mustNew(t, &fakeScripter{}, Config{Name: "w", Algorithm: SlidingWindow, Limit: limit, Period: time.Second})
	for seed := uint64(0); seed < 20; seed++ {
		m := newModel(l)
		rng := rand.New(rand.NewPCG(seed, 7))
		now := t0
		var admitted []int64
		for i := 0; i < 5000; i++ {
			now += rng.Int64N(period / 5)
			if m.step(now, 1, OpAllow).allowed {
				admitted = append(admitted, now)
			}
		}
		for i, at := range admitted {
			inWindow, inRolling := 0, 0
			for _, other := range admitted[i:] {
				if other/period == at/period {
					inWindow++
				}
				if other < at+period {
					inRolling++
				}
			}
			if inWindow > limit || inRolling > 2*limit-1 {
				t.Fatalf("seed %d: %d admitted in the aligned window of %d, %d in the rolling window from it", seed, inWindow, at, inRolling)
			}
		}
	}
	// The worst case: the previous window's events at its very end, the next
	// window's right after the boundary.
	m := newModel(l)
	end := t0 + period - 1
	n := 0
	for i := 0; i < limit; i++ {
		if m.step(end, 1, OpAllow).allowed {
			n++
		}
	}
	for at := t0 + period; at < end+period; at += period / 100 {
		if m.step(at, 1, OpAllow).allowed {
			n++
		}
	}
	if n != 2*limit-1 {
		t.Errorf("worst case admitted %d in one rolling period, want %d", n, 2*limit-1)
	}
}
