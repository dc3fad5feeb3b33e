package ratelimit_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/seed68425060/ratelimit"
)

var parseLimitTests = []struct {
	name   string
	in     string
	limit  int
	period time.Duration
	err    string // substring of the error; "" means success
}{
	{name: "per minute", in: "100/1m", limit: 100, period: time.Minute},
	{name: "fifteen minutes", in: "5/15m", limit: 5, period: 15 * time.Minute},
	{name: "bare second", in: "10/s", limit: 10, period: time.Second},
	{name: "one second", in: "10/1s", limit: 10, period: time.Second},
	{name: "bare hour", in: "1000/h", limit: 1000, period: time.Hour},
	{name: "bare minute", in: "60/m", limit: 60, period: time.Minute},
	{name: "milliseconds", in: "3/500ms", limit: 3, period: 500 * time.Millisecond},
	{name: "bare millisecond", in: "1/ms", limit: 1, period: time.Millisecond},
	{name: "microseconds", in: "1/250us", limit: 1, period: 250 * time.Microsecond},
	{name: "micro sign", in: "1/µs", limit: 1, period: time.Microsecond},
	{name: "bare day", in: "10000/d", limit: 10000, period: 24 * time.Hour},
	{name: "days", in: "3/7d", limit: 3, period: 7 * 24 * time.Hour},
	{name: "compound", in: "7/1h30m", limit: 7, period: 90 * time.Minute},
	{name: "fraction", in: "2/1.5s", limit: 2, period: 1500 * time.Millisecond},
	{name: "outer spaces", in: "  100/1m\n", limit: 100, period: time.Minute},
	{name: "leading zeros", in: "007/s", limit: 7, period: time.Second},
	{name: "min", in: "10/min", limit: 10, period: time.Minute},
	{name: "sec", in: "5/sec", limit: 5, period: time.Second},
	{name: "hour", in: "100/hour", limit: 100, period: time.Hour},
	{name: "day", in: "1000/day", limit: 1000, period: 24 * time.Hour},
	{name: "week", in: "3/week", limit: 3, period: 7 * 24 * time.Hour},
	{name: "bare week", in: "3/w", limit: 3, period: 7 * 24 * time.Hour},
	{name: "plural", in: "5/seconds", limit: 5, period: time.Second},
	{name: "minute", in: "60/minute", limit: 60, period: time.Minute},
	{name: "hr", in: "60/hr", limit: 60, period: time.Hour},
	{name: "msec", in: "1/msec", limit: 1, period: time.Millisecond},
	{name: "upper case", in: "10/MIN", limit: 10, period: time.Minute},
	{name: "title case", in: "10/Hour", limit: 10, period: time.Hour},
	{name: "number and word", in: "5/15min", limit: 5, period: 15 * time.Minute},
	{name: "number and plural", in: "2/3days", limit: 2, period: 72 * time.Hour},
	{name: "two weeks", in: "1/2w", limit: 1, period: 14 * 24 * time.Hour},

	{name: "empty", in: "", err: "empty"},
	{name: "spaces only", in: "   ", err: "empty"},
	{name: "no slash", in: "100", err: "missing '/'"},
	{name: "no count", in: "/1m", err: "missing count"},
	{name: "no period", in: "100/", err: "missing period"},
	{name: "zero count", in: "0/1m", err: "not a positive integer"},
	{name: "negative count", in: "-1/1m", err: "not a positive integer"},
	{name: "plus count", in: "+1/1m", err: "not a positive integer"},
	{name: "fractional count", in: "1.5/1m", err: "not a positive integer"},
	{name: "count overflow", in: "1234567890123456789/s", err: "not a positive integer"},
	{name: "zero period", in: "1/0s", err: "must be positive"},
	{name: "zero bare number", in: "1/0", err: "must be positive"},
	{name: "bare number", in: "1/60", err: "want a duration"},
	{name: "negative period", in: "1/-1s", err: "positive duration"},
	{name: "unknown unit", in: "1/1fortnight", err: "want a duration"},
	{name: "year", in: "1/year", err: "unit such as s, sec, min, hour, day"},
	{name: "per word", in: "10/per min", err: "positive duration"},
	{name: "zero words", in: "1/0min", err: "must be positive"},
	{name: "inner space", in: "100 / 1m", err: "not a positive integer"},
	{name: "space in period", in: "100/1 m", err: "positive duration"},
	{name: "two slashes", in: "1/2/3", err: "want a duration"},
	{name: "zero days", in: "1/0d", err: "must be positive"},
	{name: "too many days", in: "1/999999999d", err: "999999999 d is too long"},
	{name: "duration overflow", in: "1/9999999999h", err: "too long"},
	{name: "count too long", in: "1/1234567890123456789s", err: "too long"},
	{name: "sub-nanosecond", in: "1/0.1ns", err: "must be positive"},
	{name: "long", in: strings.Repeat("1", 100) + "/s", err: "longer than"},
}

func TestParseLimit(t *testing.T) {
	for _, tt := range parseLimitTests {
		t.Run(tt.name, func(t *testing.T) {
			limit, period, err := ratelimit.ParseLimit(tt.in)
			if tt.err == "" {
				if err != nil {
					t.Fatalf("ParseLimit(%q) error: %v", tt.in, err)
				}
				if limit != tt.limit || period != tt.period {
					t.Fatalf("ParseLimit(%q) = %d, %v; want %d, %v", tt.in, limit, period, tt.limit, tt.period)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseLimit(%q) = %d, %v; want an error containing %q", tt.in, limit, period, tt.err)
			}
			if !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseLimit(%q) error = %q, want it to contain %q", tt.in, err, tt.err)
			}
			// The error names the input so a user sees which flag was wrong.
			quoted := fmt.Sprintf("%q", tt.in)
			if len(strings.TrimSpace(tt.in)) > 64 {
				quoted = fmt.Sprintf("%.*q", 64, strings.TrimSpace(tt.in))
			}
			if !strings.Contains(err.Error(), quoted) {
				t.Errorf("ParseLimit(%q) error = %q, want it to quote the input", tt.in, err)
			}
			if limit != 0 || period != 0 {
				t.Errorf("ParseLimit(%q) = %d, %v with an error, want zeros", tt.in, limit, period)
			}
		})
	}
}

func TestFormatLimit(t *testing.T) {
	tests := []struct {
		limit  int
		period time.Duration
		want   string
	}{
		{10, time.Second, "10/s"},
		{100, time.Minute, "100/m"},
		{1000, time.Hour, "1000/h"},
		{5, 15 * time.Minute, "5/15m"},
		{2, 2 * time.Hour, "2/2h"},
		{7, 90 * time.Minute, "7/1h30m"},
		{3, 500 * time.Millisecond, "3/500ms"},
		{1, 24 * time.Hour, "1/24h"},
		{1, 90 * time.Second, "1/1m30s"},
		{1, 2 * time.Second, "1/2s"},
	}
	for _, tt := range tests {
		if got := ratelimit.FormatLimit(tt.limit, tt.period); got != tt.want {
			t.Errorf("FormatLimit(%d, %v) = %q, want %q", tt.limit, tt.period, got, tt.want)
		}
		limit, period, err := ratelimit.ParseLimit(tt.want)
		if err != nil || limit != tt.limit || period != tt.period {
			t.Errorf("ParseLimit(%q) = %d, %v, %v; want %d, %v", tt.want, limit, period, err, tt.limit, tt.period)
		}
	}
}

// FuzzParseLimit checks that ParseLimit never panics, returns positive values
// or an error naming the input, and that a parsed rate formats back to text
// that parses to the same rate.
func FuzzParseLimit(f *testing.F) {
	for _, tt := range parseLimitTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		limit, period, err := ratelimit.ParseLimit(s)
		if err != nil {
			if limit != 0 || period != 0 {
				t.Fatalf("ParseLimit(%q) = %d, %v with error %v, want zeros", s, limit, period, err)
			}
			if !strings.HasPrefix(err.Error(), "ratelimit: limit ") {
				t.Fatalf("ParseLimit(%q) error %q does not start with the prefix", s, err)
			}
			return
		}
		if limit < 1 || period <= 0 {
			t.Fatalf("ParseLimit(%q) = %d, %v, want both positive", s, limit, period)
		}
		text := ratelimit.FormatLimit(limit, period)
		limit2, period2, err := ratelimit.ParseLimit(text)
		if err != nil {
			t.Fatalf("ParseLimit(FormatLimit(%d, %v) = %q) error: %v", limit, period, text, err)
		}
		if limit2 != limit || period2 != period {
			t.Fatalf("ParseLimit(%q) = %d, %v; want %d, %v (from %q)", text, limit2, period2, limit, period, s)
		}
	})
}

func ExampleParseLimit() {
	limit, period, err := ratelimit.ParseLimit("5/15m")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(limit, period)
	limit, period, _ = ratelimit.ParseLimit("10/min")
	fmt.Println(limit, period)
	_, _, err = ratelimit.ParseLimit("5 per minute")
	fmt.Println(err)
	// Output:
	// 5 15m0s
	// 10 1m0s
	// ratelimit: limit "5 per minute": missing '/' (want <count>/<period>, e.g. 100/min, 10/s, 5/15m, 1000/day, 3/500ms)
}
