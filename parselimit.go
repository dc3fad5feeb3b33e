package ratelimit

import (
	"fmt"
	"strings"
	"time"
)

// maxLimitText bounds the input ParseLimit reads, so that error messages that
// quote it stay short.
const maxLimitText = 64

// periodUnits are the units ParseLimit reads after an optional whole number,
// as in "10/s", "10/sec", "5/15min" or "1000/day", in lower case.
var periodUnits = map[string]time.Duration{
	"us": time.Microsecond, "µs": time.Microsecond,
	"ms": time.Millisecond, "msec": time.Millisecond, "millisecond": time.Millisecond, "milliseconds": time.Millisecond,
	"s": time.Second, "sec": time.Second, "secs": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "min": time.Minute, "mins": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hr": time.Hour, "hrs": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
	"w": 7 * 24 * time.Hour, "wk": 7 * 24 * time.Hour, "week": 7 * 24 * time.Hour, "weeks": 7 * 24 * time.Hour,
}

// limitSyntax is what ParseLimit's errors say to type.
const limitSyntax = "want <count>/<period>, e.g. 100/min, 10/s, 5/15m, 1000/day, 3/500ms"

// ParseLimit parses a rate written as "<limit>/<period>", the syntax of the
// ratelimit command's flags, into the values of Config.Limit and Config.Period.
//
// limit is a positive decimal integer. period is a unit, optionally after a
// whole number ("s", "10s", "min", "15min", "day", "7d"), or a positive Go
// duration as read by time.ParseDuration ("1m", "500ms", "1h30m", "1.5s").
// Units, in any case: us or µs; ms, msec, millisecond(s); s, sec(s),
// second(s); m, min(s), minute(s); h, hr(s), hour(s); d, day(s) (24h); w, wk,
// week(s) (7 days). Examples: "10/min", "5/sec", "100/hour", "1000/day",
// "100/1m", "5/15m", "10/s", "3/500ms". Spaces around the text are ignored,
// spaces inside are not allowed.
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
		return 0, 0, fmt.Errorf("ratelimit: limit %q: "+format+" ("+limitSyntax+")", append([]any{s}, args...)...)
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

// parsePeriod parses the period of ParseLimit.
func parsePeriod(s string) (time.Duration, error) {
	digits := strings.TrimLeft(s, "0123456789")
	num, word := s[:len(s)-len(digits)], strings.ToLower(digits)
	if unit, ok := periodUnits[word]; ok {
		if num == "" {
			return unit, nil
		}
		n, ok := parseCount(num)
		if !ok {
			if strings.Trim(num, "0") == "" {
				return 0, fmt.Errorf("must be positive")
			}
			return 0, fmt.Errorf("%s %s is too long", num, word)
		}
		if int64(n) > int64(1<<63-1)/int64(unit) {
			return 0, fmt.Errorf("%s %s is too long (at most about 290 years)", num, word)
		}
		return time.Duration(n) * unit, nil
	}
	if strings.ContainsAny(s, " \t+-") {
		return 0, fmt.Errorf("want a positive duration such as 1m, 15m, 500ms or a unit such as s, min, hour, day")
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("want a duration such as 1m, 15m, 500ms or a unit such as s, sec, min, hour, day")
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
