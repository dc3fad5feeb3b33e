package ratelimit

import (
	"fmt"
	"strings"
	"time"
)

// maxLimitText bounds the input ParseLimit reads, so that error messages that
// quote it stay short.
const maxLimitText = 64

// periodUnits are the periods written as a bare unit, as in "10/s".
var periodUnits = map[string]time.Duration{
	"us": time.Microsecond,
	"µs": time.Microsecond,
	"ms": time.Millisecond,
	"s":  time.Second,
	"m":  time.Minute,
	"h":  time.Hour,
	"d":  24 * time.Hour,
}

// ParseLimit parses a rate written as "<limit>/<period>", the syntax of the
// ratelimit command's flags, into the values of Config.Limit and Config.Period.
//
// limit is a positive decimal integer. period is either a bare unit meaning one
// of it ("s", "m", "h", "d" for 24h, "ms", "us"), a whole number of days ("7d"),
// or a positive Go duration as read by time.ParseDuration ("1m", "15m",
// "500ms", "1h30m"). Examples: "100/1m", "5/15m", "10/s", "10/1s", "1000/h",
// "3/500ms". Spaces around the text are ignored, spaces inside are not allowed.
//
// ParseLimit checks the syntax and that both parts are positive; New checks the
// rest (for example that the rate is at most one event per microsecond). Errors
// quote the input. FormatLimit writes a rate back in this syntax.
func ParseLimit(s string) (limit int, period time.Duration, err error) {
	text := strings.TrimSpace(s)
	if len(text) > maxLimitText {
		return 0, 0, fmt.Errorf("ratelimit: limit %.*q...: longer than %d bytes", maxLimitText, text, maxLimitText)
	}
	fail := func(format string, args ...any) (int, time.Duration, error) {
		return 0, 0, fmt.Errorf("ratelimit: limit %q: "+format+" (want <count>/<period>, e.g. 100/1m, 5/15m, 10/s)", append([]any{s}, args...)...)
	}
	count, per, ok := strings.Cut(text, "/")
	switch {
	case text == "":
		return fail("empty")
	case !ok:
		return fail("missing '/'")
	case count == "":
		return fail("missing count before '/'")
	case per == "":
		return fail("missing period after '/'")
	}
	limit, ok = parseCount(count)
	if !ok {
		return fail("count %q is not a positive integer", count)
	}
	period, err = parsePeriod(per)
	if err != nil {
		return fail("period %q: %v", per, err)
	}
	return limit, period, nil
}

// parseCount parses a positive decimal integer of at most 18 digits (so it
// cannot overflow an int64, and 32-bit ints are checked below).
func parseCount(s string) (int, bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if n < 1 || int64(int(n)) != n {
		return 0, false
	}
	return int(n), true
}

func parsePeriod(s string) (time.Duration, error) {
	if d, ok := periodUnits[s]; ok {
		return d, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, ok := parseCount(days)
		if !ok || int64(n) > int64((1<<63-1)/(24*time.Hour)) {
			return 0, fmt.Errorf("want a positive whole number of days")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	if strings.ContainsAny(s, " \t+-") {
		return 0, fmt.Errorf("want a positive duration such as 1m, 15m, 500ms or a unit such as s, m, h")
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("want a duration such as 1m, 15m, 500ms or a unit such as s, m, h")
	}
	if d <= 0 {
		return 0, fmt.Errorf("must be positive")
	}
	return d, nil
}

// FormatLimit writes limit per period in the syntax ParseLimit reads, as short
// as it can: FormatLimit(10, time.Second) is "10/s", FormatLimit(5,
// 15*time.Minute) is "5/15m". ParseLimit(FormatLimit(l, p)) returns l and p for
// every positive l and p.
func FormatLimit(limit int, period time.Duration) string {
	per := period.String()
	switch period {
	case time.Second:
		per = "s"
	case time.Minute:
		per = "m"
	case time.Hour:
		per = "h"
	default:
		// time.Duration.String writes 15m as "15m0s" and 2h as "2h0m0s".
		if p, ok := strings.CutSuffix(per, "m0s"); ok {
			per = p + "m"
		}
		if p, ok := strings.CutSuffix(per, "h0m"); ok {
			per = p + "h"
		}
	}
	return fmt.Sprintf("%d/%s", limit, per)
}
