package ratelimit

import (
	"testing"
	"time"
)

// TestRateStringRoundTrip: Rate.String writes what ParseLimit reads back.
func TestRateStringRoundTrip(t *testing.T) {
	for _, r := range []Rate{PerSecond(10), PerMinute(2), PerHour(5), PerDay(1000), {Limit: 3, Period: 15 * time.Minute}, {Limit: 7, Period: 1500 * time.Millisecond}} {
		l, p, err := ParseLimit(r.String())
		if err != nil || l != r.Limit || p != r.Period {
			t.Errorf("ParseLimit(%q) = %d, %v, %v; want %d, %v", r.String(), l, p, err, r.Limit, r.Period)
		}
	}
}
