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
	const limit, period = 10, int64(1000) // ms
	l := mustNew(t, &fakeScripter{}, Config{Name: "w", Algorithm: SlidingWindow, Limit: limit, Period: time.Second})
	for seed := uint64(0); seed < 20; seed++ {
		m := newModel(1, 0)
		rng := rand.New(rand.NewPCG(seed, 7))
		now := int64(0)
		var admitted []int64
		for i := 0; i < 5000; i++ {
			now += rng.Int64N(period / 5)
			if allows(t, l, m, now) {
				admitted = append(admitted, now)
			}
		}
		// Steps under a period never let the key expire: the fixed windows
		// start at the first call.
		for i, at := range admitted {
			inWindow, inRolling := 0, 0
			for _, other := range admitted[i:] {
				if (other-admitted[0])/period == (at-admitted[0])/period {
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
	// The worst case: the first call opens the window, the rest of the
	// window's events come at its very end, the next window's right after the
	// boundary. The rolling period from the end of the first window holds all
	// but the opening call.
	m := newModel(1, 0)
	if !allows(t, l, m, 0) {
		t.Fatal("the first call was denied")
	}
	end := period - 1
	n := 0
	for i := 1; i < limit; i++ {
		if allows(t, l, m, end) {
			n++
		}
	}
	for at := period; at < end+period; at += period / 100 {
		if allows(t, l, m, at) {
			n++
		}
	}
	if n != 2*limit-2 {
		t.Errorf("worst case admitted %d in one rolling period, want %d", n, 2*limit-2)
	}
}

// allows makes one call of cost 1 on m at now and reports whether it was admitted.
func allows(t *testing.T, l *Limiter, m *model, now int64) bool {
	t.Helper()
	r, err := l.rates.decode(m.step(l.rates, now, 1, OpAllow), 1, OpAllow)
	if err != nil {
		t.Fatal(err)
	}
	return r.Allowed
}
