package main

import (
	"math"
	"testing"
)

func seq(n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = float64(i + 1)
	}
	return v
}

func TestMedianInterval(t *testing.T) {
	tests := []struct {
		n        int
		lo, hi   float64 // 1-based ranks
		coverage float64
	}{
		{1, 1, 1, 0},
		{5, 1, 5, 1 - 2.0/32},          // too few for 95%: the range
		{6, 1, 6, 1 - 2.0/64},          // P(B <= 0) = 1/64 <= 2.5%
		{7, 1, 7, 1 - 2.0/128},         // P(B <= 1) = 8/128 > 2.5%
		{15, 4, 12, 1 - 2*576.0/32768}, // P(B <= 3) = 576/2^15
		{20, 6, 15, 1 - 2*(1+20+190+1140+4845+15504)/1048576.0},
	}
	for _, tt := range tests {
		lo, hi, cov := medianInterval(seq(tt.n))
		if lo != tt.lo || hi != tt.hi || math.Abs(cov-tt.coverage) > 1e-12 {
			t.Errorf("n=%d: ranks %v–%v, coverage %.4f; want %v–%v, %.4f", tt.n, lo, hi, cov, tt.lo, tt.hi, tt.coverage)
		}
		if tt.n >= 6 && cov < 0.95 {
			t.Errorf("n=%d: coverage %.4f below 95%%", tt.n, cov)
		}
	}
}

func TestRatioTargetJudge(t *testing.T) {
	// 15 ratios: the median is the 8th, the interval the 4th and 12th.
	spread := func(lo4, med, hi12 float64) []float64 {
		v := []float64{lo4 - 0.03, lo4 - 0.02, lo4 - 0.01, lo4, lo4 + 0.001, lo4 + 0.002, med - 0.001, med, med + 0.001, hi12 - 0.002, hi12 - 0.001, hi12, hi12 + 0.01, hi12 + 0.02, hi12 + 0.03}
		return v
	}
	tests := []struct {
		name           string
		v              []float64
		want           float64
		strict         bool
		met, undecided bool
	}{
		{"clearly met", spread(0.90, 0.95, 1.00), 0.85, false, true, false},
		{"clearly missed", spread(0.70, 0.75, 0.80), 0.85, false, false, false},
		{"met within noise", spread(0.80, 0.86, 0.92), 0.85, false, true, true},
		{"missed within noise", spread(0.80, 0.84, 0.92), 0.85, false, false, true},
		{"equal counts for at least", spread(0.85, 0.90, 0.95), 0.85, false, true, false},
		{"equal does not count for ahead", spread(1.00, 1.05, 1.10), 1, true, true, true},
	}
	for _, tt := range tests {
		met, undecided, _ := ratioTarget{tt.v, tt.want, tt.strict}.judge()
		if met != tt.met || undecided != tt.undecided {
			t.Errorf("%s: met %v, undecided %v; want %v, %v", tt.name, met, undecided, tt.met, tt.undecided)
		}
	}
}
