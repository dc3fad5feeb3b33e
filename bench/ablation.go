package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ablation is a script skeleton, called with the shape of a bucket script's
// call (keys, ARGV), to show what each part of a script costs in Redis.
type ablation struct {
	// Shape is shapeNew (this library's scripts now: PTTL, no TIME) or
	// shapeOld (the scripts before: TIME, GET, SET … PX), kept to compare.
	Shape string
	Name  string
	Lua   string
	// Check, if set, must hold for every reply: it proves the skeleton ran
	// on the path it models (e.g. on a key that exists, with a TTL).
	Check func(reply int64) bool
	Cells []cell
}

// Ablation shapes.
const (
	shapeNew = "current"
	shapeOld = "old script shape"
)

const (
	ablTime = "local t = redis.call('TIME')\nlocal now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
	ablGet  = "local v = tonumber(redis.call('GET', KEYS[1]) or '') or now\nlocal tat = math.max(v, now) + tonumber(ARGV[1])\n"
	ablLock = "local l = redis.call('PTTL', KEYS[1])\n"
	ablPTTL = ablLock + "local p = redis.call('PTTL', KEYS[2])\n"
)

// Key prefixes of the skeletons' keys, one per shape.
const (
	ablOldPrefix = "ab:{"
	ablNewPrefix = "ab2:{"
)

func ablations() []ablation {
	return []ablation{
		{Shape: shapeNew, Name: "`return 1` (2 keys, 5 ARGV)", Lua: "return 1"},
		{Shape: shapeNew, Name: "+ PTTL of the lock key", Lua: ablLock + "return l",
			Check: func(l int64) bool { return l == -2 }},
		{Shape: shapeNew, Name: "+ PTTL of the state key", Lua: ablPTTL + "return p",
			Check: func(p int64) bool { return p > 0 }},
		{Shape: shapeNew, Name: "+ INCRBY (an admission on a key in use: the buckets' hot path)",
			Lua: ablPTTL + "local x = redis.call('INCRBY', KEYS[2], string.format('%d', tonumber(ARGV[2], 16) * tonumber(ARGV[4], 16)))\nreturn x",
			// The keys hold o < 0 (see ablationState); INCRBY on a missing
			// key would return ARGV[1] > 0.
			Check: func(x int64) bool { return x < 0 }},
		{Shape: shapeOld, Name: "`return 1` (1 key, 6 ARGV)", Lua: "return 1"},
		{Shape: shapeOld, Name: "+ TIME", Lua: ablTime + "return 1"},
		{Shape: shapeOld, Name: "+ TIME, GET", Lua: ablTime + ablGet + "return 1"},
		{Shape: shapeOld, Name: "+ TIME, GET, SET (no TTL)", Lua: ablTime + ablGet +
			"redis.call('SET', KEYS[1], string.format('%d', tat))\nreturn 1"},
		{Shape: shapeOld, Name: "+ TIME, GET, SET … PX (the old buckets' Redis calls)", Lua: ablTime + ablGet +
			"redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', 3600000)\nreturn 1"},
		{Shape: shapeOld, Name: "+ TIME, GET, SET … PX, 7-integer reply (the old reply)", Lua: ablTime + ablGet +
			"redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', 3600000)\nreturn {1, 99, 0, tat - now, 0, 0, 0}"},
	}
}

// bucketArgs are the ARGV this library's TokenBucket and LeakyBucket send
// for a plain Allow under lim (Burst = Limit): the mode (consume), the cost
// (1), no lockout, the interval and the capacity in µs, every number in
// hexadecimal.
func bucketArgs(lim limitSpec) []any {
	c := intervalMicros(lim)
	return []any{"", "1", "", strconv.FormatInt(c, 16), strconv.FormatInt(int64(lim.Limit)*c, 16)}
}

// intervalMicros is Period/Limit in µs, rounded up, as the library has it.
func intervalMicros(lim limitSpec) int64 {
	p := int64(lim.Period / time.Microsecond)
	if lim.Period%time.Microsecond != 0 {
		p++
	}
	return (p + int64(lim.Limit) - 1) / int64(lim.Limit)
}

// ablationState is what a bucket script writes on a fresh key under lim: the
// stored o = TAT - 1000·E (< 0) and the TTL in ms, a sixteenth of a refill
// ahead.
func ablationState(lim limitSpec) (o, ms int64) {
	c := intervalMicros(lim)
	capacity := int64(lim.Limit) * c
	ms = (c + (capacity+15)/16 + 999) / 1000
	return c - 1000*ms, ms
}

// oldArgs are the six ARGV of the old scripts' calls.
var oldArgs = []any{"3600", "1000000", "1", "0", "0", ""}

// measureAblations runs each skeleton once on many keys at conc goroutines
// and appends the cell to it. Before, it sets every skeleton key as a bucket
// script would under lim (a long TTL), so every call reads, and the current
// shape's INCRBY updates, a key that exists, in every repetition alike.
func measureAblations(ctx context.Context, client, admin *redis.Client, abs []ablation, keys []string, conc int, dur time.Duration, lim limitSpec) error {
	o, ms := ablationState(lim)
	if err := setKeys(ctx, admin, keys, ablNewPrefix, o, time.Duration(ms)*time.Millisecond); err != nil {
		return err
	}
	if err := setKeys(ctx, admin, keys, ablOldPrefix, time.Now().UnixMicro(), time.Hour); err != nil {
		return err
	}
	newArgs := bucketArgs(lim)
	s := subject{Commands: []string{"evalsha"}}
	for i := range abs {
		a := &abs[i]
		sha, err := client.ScriptLoad(ctx, a.Lua).Result()
		if err != nil {
			return fmt.Errorf("ablation %q: %w", a.Name, err)
		}
		prefix, args := ablNewPrefix, newArgs
		if a.Shape == shapeOld {
			prefix, args = ablOldPrefix, oldArgs
		}
		d := func(ctx context.Context, key string) (bool, error) {
			keys := []string{prefix + key + "}"} // the old shape: the state
			if a.Shape == shapeNew {
				// The lock (absent) and the state, as the library's scripts take them.
				keys = []string{prefix + key + "}:lock", prefix + key + "}"}
			}
			cmd := client.EvalSha(ctx, sha, keys, args...)
			if a.Check == nil {
				return true, cmd.Err()
			}
			v, err := cmd.Int64()
			return err == nil && a.Check(v), err
		}
		c, err := runCell(ctx, admin, s, d, keys, "hot", conc, dur, false)
		if err != nil {
			return fmt.Errorf("ablation %q: %w", a.Name, err)
		}
		if c.Errors > 0 {
			return fmt.Errorf("ablation %q: %d errors, e.g. %s", a.Name, c.Errors, c.FirstErr)
		}
		if c.Allowed != c.Decisions {
			return fmt.Errorf("ablation %q: %d of %d replies off the path it models", a.Name, c.Decisions-c.Allowed, c.Decisions)
		}
		a.Cells = append(a.Cells, c)
	}
	return nil
}

// setKeys sets prefix+key+"}" to v with TTL ttl for every key, pipelined.
func setKeys(ctx context.Context, c *redis.Client, keys []string, prefix string, v int64, ttl time.Duration) error {
	const batch = 1000
	val := strconv.FormatInt(v, 10)
	for i := 0; i < len(keys); i += batch {
		pipe := c.Pipeline()
		for _, k := range keys[i:min(i+batch, len(keys))] {
			pipe.Set(ctx, prefix+k+"}", val, ttl)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("set %s… keys: %w", prefix, err)
		}
	}
	return nil
}
