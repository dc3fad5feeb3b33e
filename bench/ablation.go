package main

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ablation is a script skeleton run with this library's call shape (one key,
// six ARGV), to show what each part of a bucket script costs in Redis.
type ablation struct {
	Name  string
	Lua   string
	Cells []cell
}

const (
	ablTime = "local t = redis.call('TIME')\nlocal now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
	ablGet  = "local v = tonumber(redis.call('GET', KEYS[1]) or '') or now\nlocal tat = math.max(v, now) + tonumber(ARGV[1])\n"
)

func ablations() []ablation {
	return []ablation{
		{Name: "`return 1` (1 key, 6 ARGV)", Lua: "return 1"},
		{Name: "+ TIME", Lua: ablTime + "return 1"},
		{Name: "+ TIME, GET", Lua: ablTime + ablGet + "return 1"},
		{Name: "+ TIME, GET, SET (no TTL)", Lua: ablTime + ablGet +
			"redis.call('SET', KEYS[1], string.format('%d', tat))\nreturn 1"},
		{Name: "+ TIME, GET, SET … PX (a bucket's Redis calls)", Lua: ablTime + ablGet +
			"redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', 3600000)\nreturn 1"},
		{Name: "+ TIME, GET, SET … PX, 7-integer reply", Lua: ablTime + ablGet +
			"redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', 3600000)\nreturn {1, 99, 0, tat - now, 0, 0, 0}"},
	}
}

// measureAblations runs each skeleton once on many keys at conc goroutines
// and appends the cell to it.
func measureAblations(ctx context.Context, client, admin *redis.Client, abs []ablation, keys []string, conc int, dur time.Duration) error {
	args := []any{"3600", "1000000", "1", "0", "0", ""}
	s := subject{Commands: []string{"evalsha"}}
	for i := range abs {
		sha, err := client.ScriptLoad(ctx, abs[i].Lua).Result()
		if err != nil {
			return fmt.Errorf("ablation %q: %w", abs[i].Name, err)
		}
		d := func(ctx context.Context, key string) (bool, error) {
			return true, client.EvalSha(ctx, sha, []string{"ab:{" + key + "}"}, args...).Err()
		}
		c, err := runCell(ctx, admin, s, d, keys, "hot", conc, dur, false)
		if err != nil {
			return fmt.Errorf("ablation %q: %w", abs[i].Name, err)
		}
		abs[i].Cells = append(abs[i].Cells, c)
	}
	return nil
}
