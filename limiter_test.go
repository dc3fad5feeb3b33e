package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// step is one call in a scenario and the reply it must get.
type step struct {
	at   int64 // ms after the start
	n    int
	op   Op
	lock time.Duration // if > 0, call Lock(d) instead
	want reply
}

// reply is a Result in µs, for tables.
type reply struct {
	allowed, locked, lockStarted   bool
	remaining, retry, reset, delay int64
}

func replyOf(r Result) reply {
	return reply{
		allowed: r.Allowed, locked: r.Locked(), lockStarted: r.LockStarted,
		remaining: int64(r.Remaining), retry: int64(r.RetryAfter / time.Microsecond),
		reset: int64(r.ResetAfter / time.Microsecond), delay: int64(r.Delay / time.Microsecond),
	}
}

func TestScenarios(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		steps []step
	}{
		{
			name: "token bucket refills continuously and a denial changes nothing",
			cfg:  Config{Algorithm: TokenBucket, Limit: 10, Period: time.Second, Burst: 3},
			steps: []step{
				{at: 0, n: 1, want: reply{allowed: true, remaining: 2, reset: 100_000}},
				{at: 0, n: 1, want: reply{allowed: true, remaining: 1, reset: 200_000}},
				{at: 0, n: 1, want: reply{allowed: true, remaining: 0, reset: 300_000}},
				{at: 0, n: 1, want: reply{remaining: 0, retry: 100_000, reset: 300_000}},
				{at: 50, n: 1, want: reply{remaining: 0, retry: 50_000, reset: 250_000}},
				{at: 100, n: 1, want: reply{allowed: true, remaining: 0, reset: 300_000}},
				{at: 100, n: 2, want: reply{remaining: 0, retry: 200_000, reset: 300_000}},
				{at: 1000, n: 1, op: OpPeek, want: reply{allowed: true, remaining: 3}},
				{at: 1000, n: 0, want: reply{allowed: true, remaining: 3}},
				{at: 1000, n: 3, want: reply{allowed: true, remaining: 0, reset: 300_000}},
				{at: 1000, n: 2, op: OpRefund, want: reply{allowed: true, remaining: 2, reset: 100_000}},
				{at: 1000, n: 3, op: OpRefund, want: reply{allowed: true, remaining: 3}},
			},
		},
		{
			name: "token bucket moves its expiry when the debt outgrows it",
			cfg:  Config{Algorithm: TokenBucket, Limit: 10, Period: time.Second, Burst: 2},
			steps: []step{
				{at: 0, n: 2, want: reply{allowed: true, remaining: 0, reset: 200_000}},
				{at: 100, n: 1, want: reply{allowed: true, remaining: 0, reset: 200_000}},
				{at: 200, n: 1, want: reply{allowed: true, remaining: 0, reset: 200_000}},
				{at: 300, n: 1, want: reply{allowed: true, remaining: 0, reset: 200_000}},
				{at: 300, n: 1, want: reply{retry: 100_000, reset: 200_000}},
				{at: 450, n: 1, op: OpPeek, want: reply{allowed: true, remaining: 1, reset: 50_000}},
			},
		},
		{
			name: "leaky bucket reports the queue ahead as delay",
			cfg:  Config{Algorithm: LeakyBucket, Limit: 10, Period: time.Second, Burst: 3},
			steps: []step{
				{at: 0, n: 1, want: reply{allowed: true, remaining: 2, reset: 100_000}},
				{at: 0, n: 1, want: reply{allowed: true, remaining: 1, reset: 200_000, delay: 100_000}},
				{at: 0, n: 1, want: reply{allowed: true, remaining: 0, reset: 300_000, delay: 200_000}},
				{at: 0, n: 1, want: reply{retry: 100_000, reset: 300_000}},
				{at: 250, n: 1, op: OpPeek, want: reply{allowed: true, remaining: 2, reset: 50_000, delay: 50_000}},
			},
		},
		{
			name: "lockout denies everything until it ends, then the key is fresh",
			cfg:  Config{Algorithm: LeakyBucket, Limit: 10, Period: time.Second, Burst: 2, BlockFor: time.Second},
			steps: []step{
				{at: 0, n: 2, want: reply{allowed: true, remaining: 0, reset: 200_000}},
				{at: 0, n: 1, op: OpPeek, want: reply{retry: 100_000, reset: 200_000}},
				{at: 0, n: 1, want: reply{locked: true, lockStarted: true, retry: 1_000_000, reset: 1_000_000}},
				{at: 500, n: 1, want: reply{locked: true, retry: 500_000, reset: 500_000}},
				{at: 999, n: 1, op: OpRefund, want: reply{locked: true, retry: 1000, reset: 1000}},
				{at: 1000, n: 1, want: reply{allowed: true, remaining: 1, reset: 100_000}},
			},
		},
		{
			name: "a lockout is rounded up to the millisecond, keeps the state under it; an explicit longer lock",
			cfg:  Config{Algorithm: TokenBucket, Limit: 1, Period: time.Minute, BlockFor: 1500 * time.Microsecond},
			steps: []step{
				{at: 0, n: 1, want: reply{allowed: true, reset: 60_000_000}},
				{at: 1, n: 1, want: reply{locked: true, lockStarted: true, retry: 2000, reset: 2000}},
				{at: 2, n: 1, want: reply{locked: true, retry: 1000, reset: 1000}},
				// After the lock the bucket is as spent as before it: denied, so locked again.
				{at: 3, n: 1, want: reply{locked: true, lockStarted: true, retry: 2000, reset: 2000}},
				{at: 5, n: 1, op: OpPeek, want: reply{retry: 59_995_000, reset: 59_995_000}},
				{at: 60_000, n: 1, want: reply{allowed: true, reset: 60_000_000}},
				{at: 60_000, lock: time.Hour},
				{at: 60_001, n: 1, op: OpPeek, want: reply{locked: true, retry: 3_599_999_000, reset: 3_599_999_000}},
			},
		},
		{
			name: "sliding window weighs the previous window by its overlap",
			cfg:  Config{Algorithm: SlidingWindow, Limit: 4, Period: time.Second},
			steps: []step{
				{at: 0, n: 1, want: reply{allowed: true, remaining: 3, reset: 2_000_000}},
				{at: 0, n: 3, want: reply{allowed: true, remaining: 0, reset: 2_000_000}},
				{at: 500, n: 1, want: reply{retry: 750_000, reset: 1_500_000}},
				{at: 1250, n: 1, want: reply{allowed: true, remaining: 0, reset: 1_750_000}},
				{at: 1250, n: 1, want: reply{retry: 250_000, reset: 1_750_000}},
				{at: 1500, n: 1, want: reply{allowed: true, remaining: 0, reset: 1_500_000}},
				{at: 1500, n: 2, op: OpRefund, want: reply{allowed: true, remaining: 2, reset: 500_000}},
				{at: 1500, n: 1, op: OpPeek, want: reply{allowed: true, remaining: 2, reset: 500_000}},
				{at: 2100, n: 1, op: OpPeek, want: reply{allowed: true, remaining: 4}},
				{at: 3100, n: 1, op: OpPeek, want: reply{allowed: true, remaining: 4}},
			},
		},
		{
			name: "sliding window lockout",
			cfg:  Config{Algorithm: SlidingWindow, Limit: 1, Period: time.Second, BlockFor: 10 * time.Second},
			steps: []step{
				{at: 0, n: 1, want: reply{allowed: true, remaining: 0, reset: 2_000_000}},
				{at: 1, n: 1, want: reply{locked: true, lockStarted: true, retry: 10_000_000, reset: 10_000_000}},
				{at: 10_001, n: 1, want: reply{allowed: true, remaining: 0, reset: 2_000_000}},
			},
		},
		{
			name: "sliding window too large to pack its reply",
			cfg:  Config{Algorithm: SlidingWindow, Limit: 1_000_000, Period: 1000 * time.Hour},
			steps: []step{
				{at: 0, n: 400_000, want: reply{allowed: true, remaining: 600_000, reset: 7_200_000_000_000}},
				{at: 0, n: 700_000, want: reply{remaining: 600_000, retry: 4_500_000_000_000, reset: 7_200_000_000_000}},
				{at: 1, n: 1, op: OpPeek, want: reply{allowed: true, remaining: 600_000, reset: 7_199_999_999_000}},
			},
		},
	}
	for _, b := range backends(t) {
		for i, tt := range tests {
			t.Run(b.name+"/"+tt.name, func(t *testing.T) {
				cfg := tt.cfg
				cfg.Name = fmt.Sprintf("scenario%d", i)
				v := newVirtual(t, b, mustNew(t, b.client, cfg))
				for j, s := range tt.steps {
					v.now = s.at
					if s.lock > 0 {
						v.lock(s.lock)
						continue
					}
					if got := replyOf(v.call(s.n, s.op)); got != s.want {
						t.Errorf("step %d (at +%dms, %s n=%d) = %+v, want %+v", j, s.at, s.op, s.n, got, s.want)
					}
				}
			})
		}
	}
}

// virtual drives a Limiter on a virtual millisecond clock, in step with a
// model: before each call it stores the model's keys (the lock and each
// rate's state) with a TTL far beyond the test, and the model's PTTL of each
// in a companion key that the test's variant of the script reads instead of
// PTTL (see virtualScript); after the call it runs the model and checks that
// the script's reply and the state it left (values and TTLs) are the
// model's. On miniredis, whose TTLs only move with FastForward, the TTLs must
// match exactly; on a real server, within the time the test took.
type virtual struct {
	t    *testing.T
	b    backend
	l    *Limiter
	m    *model
	keys []string // the lock, then each rate's state
	now  int64    // ms
}

// farTTL is the TTL of the injected state: no step may set one this long.
const farTTL = 10_000 * time.Hour

// virtualScript is src with every PTTL read from the key's companion
// (key .. ":vp", in the same hash slot), which holds the PTTL the test
// wants the script to see: the production script, on a virtual clock.
func virtualScript(src string) string {
	const read = "redis.call('PTTL', "
	if !strings.Contains(src, read) {
		panic("virtualScript: the script reads no PTTL")
	}
	return "local function vpttl(k) return tonumber(redis.call('GET', k .. ':vp')) or -2 end\n" +
		strings.ReplaceAll(src, read, "vpttl(")
}

func newVirtual(t *testing.T, b backend, l *Limiter) *virtual {
	l.script = newScript(virtualScript(l.script.src))
	v := &virtual{t: t, b: b, l: l, m: newModel(len(l.rates.shapes), ceilMillis(l.cfg.BlockFor)), keys: l.keys("k")}
	t.Cleanup(func() {
		for _, k := range v.keys {
			b.client.Del(context.Background(), k, k+":vp")
		}
	})
	return v
}

// state is the model's key i (0: the lock).
func (v *virtual) state(i int) *keyState {
	if i == 0 {
		return &v.m.lock
	}
	return &v.m.st[i-1]
}

func (v *virtual) inject() {
	v.t.Helper()
	ctx := context.Background()
	for i, k := range v.keys {
		st := v.state(i)
		var err error
		if p := st.pttl(v.now); p >= 0 {
			err = v.b.client.Set(ctx, k, st.v, farTTL).Err()
			if err == nil {
				err = v.b.client.Set(ctx, k+":vp", p, 0).Err()
			}
		} else {
			err = v.b.client.Del(ctx, k, k+":vp").Err()
		}
		if err != nil {
			v.t.Fatal(err)
		}
	}
}

// snapshot copies the model's keys.
func (v *virtual) snapshot() []keyState {
	out := []keyState{v.m.lock}
	return append(out, v.m.st...)
}

// call makes one call of cost n and returns its Result, failing the test
// unless the script and the model agree.
func (v *virtual) call(n int, op Op) Result {
	v.t.Helper()
	v.inject()
	was := v.snapshot()
	got, err := v.l.do(context.Background(), "k", n, op)
	if err != nil {
		v.t.Fatalf("at %dms, %s n=%d: %v", v.now, op, n, err)
	}
	if op == OpAllow && n == 0 {
		op = OpPeek // as AllowN does
	}
	raw := v.m.step(v.l.rates, v.now, int64(n), op)
	want, err := v.l.rates.decode(raw, int64(n), op)
	if err != nil {
		v.t.Fatalf("at %dms, %s n=%d: the model's reply %v: %v", v.now, op, n, raw, err)
	}
	if op == OpAllow {
		want = v.l.shadow(want)
	}
	if got != want {
		v.t.Fatalf("at %dms (%s n=%d, state %+v): script %+v, model %+v", v.now, op, n, was, got, want)
	}
	v.check(was)
	return got
}

// lock calls Lock(d) on the script and the model.
func (v *virtual) lock(d time.Duration) {
	v.t.Helper()
	v.inject()
	was := v.snapshot()
	if err := v.l.Lock(context.Background(), "k", d); err != nil {
		v.t.Fatal(err)
	}
	v.m.lockFor(v.now, ceilMillis(d))
	v.check(was)
}

// check compares the keys with the model after a step from the states was.
func (v *virtual) check(was []keyState) {
	v.t.Helper()
	ctx := context.Background()
	for i, k := range v.keys {
		st := v.state(i)
		val, err := v.b.client.Get(ctx, k).Result()
		if err == redis.Nil {
			// A real server's clock runs on: a key the model keeps for under
			// the slack may be gone already.
			if st.pttl(v.now) >= 0 && !(v.b.real && st.pttl(v.now) < 2000) {
				v.t.Fatalf("at %dms: no key %s, the model has %d until %dms", v.now, k, st.v, st.e)
			}
			continue
		}
		if err != nil {
			v.t.Fatal(err)
		}
		if st.pttl(v.now) < 0 || val != strconv.FormatInt(st.v, 10) {
			v.t.Fatalf("at %dms: %s stored %s, the model has %v %d", v.now, k, val, st.pttl(v.now) >= 0, st.v)
		}
		ttl, err := v.b.client.PTTL(ctx, k).Result()
		if err != nil {
			v.t.Fatal(err)
		}
		want := time.Duration(st.e-v.now) * time.Millisecond
		slack := time.Duration(0)
		if v.b.real {
			slack = 2 * time.Second
		}
		switch {
		case ttl <= want && ttl >= want-slack:
		case ttl > farTTL-time.Minute && st.e == was[i].e && was[i].pttl(v.now) >= 0:
			// The script kept the injected TTL, and the model its expiry.
		default:
			v.t.Fatalf("at %dms: %s PTTL %v, the model expires in %v", v.now, k, ttl, want)
		}
	}
}

// do makes one call, as Peek, AllowN or Refund.
func (l *Limiter) do(ctx context.Context, key string, n int, op Op) (Result, error) {
	switch {
	case op == OpPeek && n == 1:
		return l.Peek(ctx, key)
	case op == OpRefund:
		return l.Refund(ctx, key, n)
	}
	return l.AllowN(ctx, key, n)
}

// TestDifferential drives each script and the pure-Go model with the same
// random sequence of (time step, cost, operation) and compares every reply and
// the state left in Redis.
func TestDifferential(t *testing.T) {
	const steps = 3_000
	configs := []Config{
		{Algorithm: TokenBucket, Limit: 7, Period: 3 * time.Second, Burst: 5},
		{Algorithm: TokenBucket, Limit: 100, Period: time.Minute, BlockFor: 2 * time.Second},
		{Algorithm: LeakyBucket, Limit: 3, Period: time.Second, Burst: 4, BlockFor: 700 * time.Millisecond},
		{Algorithm: LeakyBucket, Limit: 1000, Period: time.Second, Burst: 50},
		{Algorithm: SlidingWindow, Limit: 5, Period: time.Second},
		{Algorithm: SlidingWindow, Limit: 60, Period: 7 * time.Second, BlockFor: 500 * time.Millisecond},
		{Algorithm: SlidingWindow, Limit: 2_000_000, Period: 100 * 24 * time.Hour},
	}
	for _, b := range backends(t) {
		for i, cfg := range configs {
			t.Run(fmt.Sprintf("%s/%s/%d", b.name, cfg.Algorithm, i), func(t *testing.T) {
				t.Parallel()
				cfg.Name = fmt.Sprintf("diff%d", i)
				l := mustNew(t, b.client, cfg)
				v := newVirtual(t, b, l)
				rng := rand.New(rand.NewPCG(uint64(i), 42))
				v.now = rng.Int64N(int64(time.Hour / time.Millisecond))
				period := int64(cfg.Period / time.Millisecond)
				scale := max(1, period/int64(cfg.Limit))
				var allowed, denied, locked int
				for s := 0; s < steps; s++ {
					switch k := rng.IntN(20); {
					case k < 12: // within a few events' spacing
						v.now += rng.Int64N(2 * scale)
					case k < 18:
						v.now += rng.Int64N(3)
					case k < 19: // across periods
						v.now += rng.Int64N(3 * period)
					}
					op := OpAllow
					switch rng.IntN(10) {
					case 0:
						op = OpPeek
					case 1:
						op = OpRefund
					}
					n := rng.IntN(l.Config().Burst + 1)
					if rng.IntN(3) > 0 {
						n = 1
					}
					if op == OpPeek {
						n = 1
					}
					if rng.IntN(500) == 0 {
						v.lock(time.Duration(1+rng.Int64N(int64(cfg.Period))) / time.Microsecond * time.Microsecond)
						continue
					}
					got := v.call(n, op)
					switch {
					case got.Locked():
						locked++
					case got.Allowed:
						allowed++
					default:
						denied++
					}
				}
				// The walk must have visited every kind of answer to mean anything.
				if allowed == 0 || denied == 0 || (cfg.BlockFor > 0 && locked == 0) {
					t.Errorf("walk too narrow: %d allowed, %d denied, %d locked", allowed, denied, locked)
				}
			})
		}
	}
}

// TestExactness runs many independent clients (separate pools, as separate app
// servers) with many goroutines each against one key: exactly Limit admitted.
func TestExactness(t *testing.T) {
	const clients, workers, calls = 4, 16, 10
	for _, b := range realBackends(t) {
		for _, alg := range []Algorithm{TokenBucket, LeakyBucket, SlidingWindow} {
			for _, v := range []struct {
				block    time.Duration
				pipeline int
			}{{0, -1}, {time.Hour, -1}, {0, 0}, {time.Hour, 0}, {0, 1}} {
				block := v.block
				t.Run(fmt.Sprintf("%s/%s/block=%v/pipeline=%d", b.name, alg, block, v.pipeline), func(t *testing.T) {
					cfg := Config{Name: fmt.Sprintf("exact-%s-%d-%d", alg, block/time.Hour, v.pipeline), Algorithm: alg, Limit: 97, Period: 24 * time.Hour, BlockFor: block, Pipeline: v.pipeline}
					var allowed, lockedSeen atomic.Int64
					var firstDenial atomic.Int64 // admission index after which no admission may follow
					var seq atomic.Int64
					var wg sync.WaitGroup
					for c := 0; c < clients; c++ {
						l := mustNew(t, b.newClient(t), cfg)
						for w := 0; w < workers; w++ {
							wg.Add(1)
							go func() {
								defer wg.Done()
								for i := 0; i < calls; i++ {
									r, err := l.Allow(context.Background(), "hot")
									if err != nil {
										t.Error(err)
										return
									}
									s := seq.Add(1)
									if r.Allowed {
										allowed.Add(1)
									} else {
										firstDenial.CompareAndSwap(0, s)
									}
									if r.Locked() {
										lockedSeen.Add(1)
									}
								}
							}()
						}
					}
					wg.Wait()
					if got := allowed.Load(); got != int64(cfg.Limit) {
						t.Errorf("admitted %d of %d calls, want exactly %d", got, clients*workers*calls, cfg.Limit)
					}
					denied := int64(clients*workers*calls) - allowed.Load()
					if block > 0 && lockedSeen.Load() != denied {
						t.Errorf("with BlockFor, %d of %d denials were lockouts, want all", lockedSeen.Load(), denied)
					}
				})
			}
		}
	}
}

// TestLockoutEnds checks on a real clock that a sub-second lockout ends.
func TestLockoutEnds(t *testing.T) {
	for _, b := range realBackends(t) {
		for _, alg := range []Algorithm{TokenBucket, LeakyBucket, SlidingWindow} {
			t.Run(b.name+"/"+alg.String(), func(t *testing.T) {
				l := mustNew(t, b.client, Config{Name: "lockend-" + alg.String(), Algorithm: alg, Limit: 1, Period: time.Hour, BlockFor: 150 * time.Millisecond})
				ctx := context.Background()
				if r, _ := l.Allow(ctx, "k"); !r.Allowed {
					t.Fatalf("first call denied: %+v", r)
				}
				r, err := l.Allow(ctx, "k")
				if err != nil || !r.Locked() || r.RetryAfter <= 0 || r.RetryAfter > 150*time.Millisecond {
					t.Fatalf("second call = %+v, %v; want locked for at most 150ms", r, err)
				}
				time.Sleep(r.RetryAfter)
				// The lock is over, and the state under it was kept: the key is
				// as spent as before the lock (1 per hour), not fresh.
				r, err = l.Peek(ctx, "k")
				if err != nil || r.Allowed || r.Locked() || r.RetryAfter < 59*time.Minute {
					t.Fatalf("after the lock: %+v, %v; want denied, not locked, for about an hour", r, err)
				}
				if _, err := l.Reset(ctx, "k"); err != nil {
					t.Fatal(err)
				}
				if r, err := l.Allow(ctx, "k"); err != nil || !r.Allowed {
					t.Fatalf("after Reset: %+v, %v; want admitted", r, err)
				}
			})
		}
	}
}

func TestTTLCoversState(t *testing.T) {
	for _, b := range backends(t) {
		for _, alg := range []Algorithm{TokenBucket, LeakyBucket, SlidingWindow} {
			t.Run(b.name+"/"+alg.String(), func(t *testing.T) {
				l := mustNew(t, b.client, Config{Name: "ttl-" + alg.String(), Algorithm: alg, Limit: 5, Period: 10 * time.Second, BlockFor: 3 * time.Second})
				ctx := context.Background()
				keys := l.keys("k")
				for i := 0; i < 7; i++ {
					start := time.Now()
					r, err := l.Allow(ctx, "k")
					if err != nil {
						t.Fatal(err)
					}
					// While locked, ResetAfter is the lock's rest: the lock key's TTL.
					key := keys[1]
					if r.Locked() {
						key = keys[0]
					}
					ttl, err := b.client.PTTL(ctx, key).Result()
					if err != nil {
						t.Fatal(err)
					}
					// The key must live at least as long as its state matters (PTTL
					// has counted down since the call), and not much longer: a
					// bucket's expiry moves a refill (Burst × interval) ahead at a
					// time, a window's expiry is its reset.
					extra := time.Millisecond
					if alg != SlidingWindow && !r.Locked() {
						extra += time.Duration(ceilDiv(l.rates.shapes[0].capacity(), 16)) * time.Microsecond
					}
					if ttl < r.ResetAfter-time.Since(start)-time.Millisecond || ttl > r.ResetAfter+extra {
						t.Errorf("call %d: PTTL %v, ResetAfter %v", i, ttl, r.ResetAfter)
					}
				}
				if _, err := l.Peek(ctx, "never-written"); err != nil {
					t.Fatal(err)
				}
				if exists := b.client.Exists(ctx, l.redisKey("never-written")).Val(); exists != 0 {
					t.Errorf("Peek wrote a key")
				}
			})
		}
	}
}

func TestNoScriptFallback(t *testing.T) {
	for _, b := range backends(t) {
		for _, alg := range []Algorithm{TokenBucket, LeakyBucket, SlidingWindow} {
			t.Run(b.name+"/"+alg.String(), func(t *testing.T) {
				rec := newRecorder(t)
				l := mustNew(t, b.client, Config{Name: "noscript-" + alg.String(), Algorithm: alg, Limit: 10, Period: time.Minute, Observer: rec})
				ctx := context.Background()
				for i := 0; i < 4; i++ {
					b.flushScripts(t)
					if _, err := l.Allow(ctx, "k"); err != nil {
						t.Fatalf("call %d after SCRIPT FLUSH: %v", i, err)
					}
					if _, err := l.Allow(ctx, "k"); err != nil {
						t.Fatalf("second call %d: %v", i, err)
					}
				}
				var reloaded int
				for _, e := range rec.drain() {
					if e.ScriptReloaded {
						reloaded++
					}
					if e.Outcome != OutcomeAllowed {
						t.Errorf("event %+v, want allowed", e)
					}
				}
				if reloaded != 4 {
					t.Errorf("%d calls fell back to EVAL, want 4 (one after each flush)", reloaded)
				}
				r, err := l.Peek(ctx, "k")
				if err != nil || r.Remaining != 2 {
					t.Errorf("Peek = %+v, %v; want 2 remaining (8 calls charged once each)", r, err)
				}
			})
		}
	}
}

// fakeScripter counts EVALSHA and EVAL calls and answers them with errors or a reply.
type fakeScripter struct {
	redis.Scripter // nil: other methods panic
	evalSha, eval  atomic.Int64
	shaErr         error
	evalErr        error
	reply          any
	load           func() (string, error)
}

func (f *fakeScripter) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	f.evalSha.Add(1)
	return f.result(ctx, f.shaErr)
}

func (f *fakeScripter) Eval(ctx context.Context, src string, keys []string, args ...any) *redis.Cmd {
	f.eval.Add(1)
	return f.result(ctx, f.evalErr)
}

func (f *fakeScripter) ScriptLoad(ctx context.Context, src string) *redis.StringCmd {
	cmd := redis.NewStringCmd(ctx)
	sha, err := f.load()
	cmd.SetVal(sha)
	cmd.SetErr(err)
	return cmd
}

func (f *fakeScripter) result(ctx context.Context, err error) *redis.Cmd {
	cmd := redis.NewCmd(ctx)
	if err != nil {
		cmd.SetErr(err)
	} else {
		cmd.SetVal(f.reply)
	}
	return cmd
}

// okReply is a bucket script's admission of a call on a fresh key.
var okReply any = int64(0)

func TestRunnerFallback(t *testing.T) {
	tests := []struct {
		name              string
		shaErr, evalErr   error
		wantSha, wantEval int64
		wantErr           bool
		wantReloaded      bool
	}{
		{name: "cached", wantSha: 1},
		{name: "NOSCRIPT prefix", shaErr: errors.New("NOSCRIPT No matching script. Please use EVAL."), wantSha: 1, wantEval: 1, wantReloaded: true},
		{name: "NOSCRIPT inside a proxy's text", shaErr: errors.New("ERR NOSCRIPT No matching script"), wantSha: 1, wantEval: 1, wantReloaded: true},
		{name: "at most one fallback", shaErr: errors.New("NOSCRIPT x"), evalErr: errors.New("NOSCRIPT again"), wantSha: 1, wantEval: 1, wantErr: true, wantReloaded: true},
		{name: "other errors are not retried", shaErr: errors.New("BUSY Redis is busy running a script"), wantSha: 1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeScripter{shaErr: tt.shaErr, evalErr: tt.evalErr, reply: okReply}
			rec := newRecorder(t)
			l := mustNew(t, f, Config{Name: "fake", Limit: 5, Period: time.Second, Observer: rec})
			_, err := l.Allow(context.Background(), "k")
			if (err != nil) != tt.wantErr {
				t.Fatalf("Allow error = %v, want error %v", err, tt.wantErr)
			}
			if f.evalSha.Load() != tt.wantSha || f.eval.Load() != tt.wantEval {
				t.Errorf("EVALSHA %d, EVAL %d; want %d, %d", f.evalSha.Load(), f.eval.Load(), tt.wantSha, tt.wantEval)
			}
			if e := rec.drain(); len(e) != 1 || e[0].ScriptReloaded != tt.wantReloaded {
				t.Errorf("events %+v, want one with ScriptReloaded %v", e, tt.wantReloaded)
			}
		})
	}
}

// TestFIPSDigestFromRedis: when SHA1 may not be computed here, the digest is
// taken from Redis (SCRIPT LOAD) and calls still use EVALSHA.
func TestFIPSDigestFromRedis(t *testing.T) {
	f := &fakeScripter{reply: okReply}
	loads := 0
	f.load = func() (string, error) { loads++; return strings.Repeat("a", 40), nil }
	l := mustNew(t, f, Config{Name: "fips", Limit: 5, Period: time.Second})
	l.script.sha.Store(nil) // as localSHA1 leaves it under GODEBUG=fips140=only
	for i := 0; i < 3; i++ {
		if _, err := l.Allow(context.Background(), "k"); err != nil {
			t.Fatal(err)
		}
	}
	if loads != 1 || f.evalSha.Load() != 3 || f.eval.Load() != 0 {
		t.Errorf("SCRIPT LOAD %d, EVALSHA %d, EVAL %d; want 1, 3, 0", loads, f.evalSha.Load(), f.eval.Load())
	}
	// If Redis cannot tell the digest either, calls still work through EVAL.
	f2 := &fakeScripter{reply: okReply, load: func() (string, error) { return "", errors.New("NOPERM script|load") }}
	l2 := mustNew(t, f2, Config{Name: "fips", Limit: 5, Period: time.Second})
	l2.script.sha.Store(nil)
	if _, err := l2.Allow(context.Background(), "k"); err != nil || f2.eval.Load() != 1 {
		t.Errorf("Allow = %v with %d EVAL; want success through EVAL", err, f2.eval.Load())
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error, each naming a field and value
	}{
		{"empty", Config{}, []string{"Config.Name is empty", "Config.Limit = 0", "Config.Period = 0s"}},
		{"bad name", Config{Name: "Login", Limit: 1, Period: time.Second}, []string{`Config.Name = "Login"`}},
		{"name with colon", Config{Name: "a:b", Limit: 1, Period: time.Second}, []string{`Config.Name = "a:b"`}},
		{"name too long", Config{Name: strings.Repeat("a", 65), Limit: 1, Period: time.Second}, []string{"Config.Name"}},
		{"algorithm", Config{Name: "a", Algorithm: 9, Limit: 1, Period: time.Second}, []string{"Config.Algorithm = 9"}},
		{"negative limit", Config{Name: "a", Limit: -1, Period: time.Second}, []string{"Config.Limit = -1"}},
		{"negative period", Config{Name: "a", Limit: 1, Period: -time.Second}, []string{"Config.Period = -1s"}},
		{"too fast", Config{Name: "a", Limit: 2_000_000, Period: time.Second}, []string{"faster than one event per microsecond"}},
		{"period too long", Config{Name: "a", Limit: 1, Period: 200 * 365 * 24 * time.Hour}, []string{"Config.Period = 1752000h0m0s"}},
		{"negative burst", Config{Name: "a", Limit: 1, Period: time.Second, Burst: -3}, []string{"Config.Burst = -3"}},
		{"window burst", Config{Name: "a", Algorithm: SlidingWindow, Limit: 5, Period: time.Second, Burst: 9}, []string{"Config.Burst = 9, must be 0 or Limit (5)"}},
		{"huge burst", Config{Name: "a", Limit: 1, Period: 24 * time.Hour, Burst: 1 << 30}, []string{"Config.Burst = 1073741824"}},
		{"negative block", Config{Name: "a", Limit: 1, Period: time.Second, BlockFor: -1}, []string{"Config.BlockFor = -1ns"}},
		{"nanosecond block", Config{Name: "a", Limit: 1, Period: time.Second, BlockFor: 1}, []string{"Config.BlockFor = 1ns"}},
		{"bucket under 1ms", Config{Name: "a", Limit: 10_000, Period: time.Second, Burst: 5}, []string{"Config.Burst = 5 at one event per 100µs holds under 1ms", "Burst must be at least 10"}},
		{"window period not whole ms", Config{Name: "a", Algorithm: SlidingWindow, Limit: 10, Period: 1500 * time.Microsecond}, []string{"Config.Period = 1.5ms, must be a whole number of milliseconds"}},
		{"prefix with brace", Config{Name: "a", Limit: 1, Period: time.Second, KeyPrefix: "x{y}:"}, []string{`Config.KeyPrefix = "x{y}:"`}},
		{"negative timeout", Config{Name: "a", Limit: 1, Period: time.Second, Timeout: -1}, []string{"Config.Timeout = -1ns"}},
		{"policy", Config{Name: "a", Limit: 1, Period: time.Second, OnFailure: 7}, []string{"Config.OnFailure = 7"}},
		{"local without instances", Config{Name: "a", Limit: 1, Period: time.Second, OnFailure: FailLocal}, []string{"Config.LocalInstances = 0, must be >= 1 with FailLocal"}},
		{"negative cache", Config{Name: "a", Limit: 1, Period: time.Second, DenyCache: -1}, []string{"Config.DenyCache = -1"}},
	}
	f := &fakeScripter{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(f, tt.cfg)
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New(%+v) = %v, want ErrInvalidConfig", tt.cfg, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	if f.evalSha.Load()+f.eval.Load() != 0 {
		t.Error("New called Redis")
	}
}

func TestClientOptionsChecked(t *testing.T) {
	cfg := Config{Name: "a", Limit: 1, Period: time.Second}
	tests := []struct {
		name   string
		client redis.Scripter
		want   []string
	}{
		{"client defaults", redis.NewClient(&redis.Options{}), []string{"MaxRetries = 3", "ContextTimeoutEnabled = false"}},
		{"cluster defaults", redis.NewClusterClient(&redis.ClusterOptions{}), []string{"ContextTimeoutEnabled = false"}},
		{"cluster retries", redis.NewClusterClient(&redis.ClusterOptions{MaxRetries: 2, ContextTimeoutEnabled: true}), []string{"MaxRetries = 2"}},
		{"ring retries", redis.NewRing(&redis.RingOptions{ContextTimeoutEnabled: true}), []string{"MaxRetries = 3"}},
		{"good client", redis.NewClient(&redis.Options{MaxRetries: -1, ContextTimeoutEnabled: true}), nil},
		{"good cluster", redis.NewClusterClient(&redis.ClusterOptions{MaxRetries: -1, ContextTimeoutEnabled: true}), nil},
		{"good failover", redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{"127.0.0.1:1"}, MaxRetries: -1, ContextTimeoutEnabled: true}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.client, cfg)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("New = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New = %v, want ErrInvalidConfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestBadCostsNeverReachRedis(t *testing.T) {
	f := &fakeScripter{reply: okReply}
	l := mustNew(t, f, Config{Name: "cost", Limit: 10, Period: time.Second, Burst: 4})
	ctx := context.Background()
	for _, n := range []int{-1, 5, 1 << 40} {
		if _, err := l.AllowN(ctx, "k", n); !errors.Is(err, ErrInvalidCost) || !strings.Contains(err.Error(), fmt.Sprint(n)) {
			t.Errorf("AllowN(%d) = %v, want ErrInvalidCost naming n", n, err)
		}
		if _, err := l.Refund(ctx, "k", n); !errors.Is(err, ErrInvalidCost) {
			t.Errorf("Refund(%d) = %v, want ErrInvalidCost", n, err)
		}
		if err := l.WaitN(ctx, "k", n); !errors.Is(err, ErrInvalidCost) {
			t.Errorf("WaitN(%d) = %v, want ErrInvalidCost", n, err)
		}
	}
	if err := l.Lock(ctx, "k", 0); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Lock(0) = %v, want an error", err)
	}
	if c := f.evalSha.Load() + f.eval.Load(); c != 0 {
		t.Errorf("%d Redis calls for bad costs, want 0", c)
	}
}

func TestUnexpectedReplies(t *testing.T) {
	// Limit 10 per second: the capacity is 10 intervals of 100ms.
	for _, r := range []any{nil, "x", int64(1_000_001), int64(900_001), int64(-1_000_002), []any{int64(1)}, []any{"1", int64(0)}, []any{int64(-4), int64(0)}, []any{int64(4), int64(2)}, []any{int64(1), int64(2), int64(1)}} {
		f := &fakeScripter{reply: r}
		l := mustNew(t, f, Config{Name: "reply", Limit: 10, Period: time.Second})
		if _, err := l.Allow(context.Background(), "k"); !errors.Is(err, ErrUnexpectedReply) {
			t.Errorf("reply %#v: err = %v, want ErrUnexpectedReply", r, err)
		}
	}
}

func TestUnexpectedWindowReplies(t *testing.T) {
	// Too wide to pack (see windowFits), so the reply is the string "v rest".
	cfg := Config{Name: "reply", Algorithm: SlidingWindow, Limit: 2_000_000, Period: 100 * 24 * time.Hour}
	good := &fakeScripter{reply: "4000002000001 7"} // v = prev*(Limit+1) + cur: prev 2,000,000, cur 1; 7ms left
	r, err := mustNew(t, good, cfg).Allow(context.Background(), "k")
	if err != nil || !r.Allowed || r.Remaining != 1_999_998 || r.ResetAfter != 7*time.Millisecond+cfg.Period {
		t.Errorf("good reply: %+v, %v; want admitted, 2,000,000 - 1 - ceil(prev × 7ms/Period) remaining, reset after 7ms + Period", r, err)
	}
	for _, reply := range []any{int64(5), "", "5", "5 ", " 5", "x 5", "5 x", "5 -1", "5 5 5", "4000004000001 1", "1 8640000001", []any{int64(1), int64(2), int64(1)}} {
		f := &fakeScripter{reply: reply}
		if _, err := mustNew(t, f, cfg).Allow(context.Background(), "k"); !errors.Is(err, ErrUnexpectedReply) {
			t.Errorf("reply %#v: err = %v, want ErrUnexpectedReply", reply, err)
		}
	}
}

func TestFailurePolicies(t *testing.T) {
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, ContextTimeoutEnabled: true})
	defer down.Close()
	tests := []struct {
		policy  FailurePolicy
		want    Outcome
		allowed bool
		wantErr bool
	}{
		{FailError, OutcomeError, false, true},
		{FailOpen, OutcomeFailedOpen, true, false},
		{FailClosed, OutcomeFailedClosed, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.policy.String(), func(t *testing.T) {
			rec := newRecorder(t)
			l := mustNew(t, down, Config{Name: "down", Limit: 1, Period: time.Second, OnFailure: tt.policy, Observer: rec, Timeout: 200 * time.Millisecond})
			r, err := l.Allow(context.Background(), "k")
			if (err != nil) != tt.wantErr || r.Allowed != tt.allowed || (err == nil && r.Outcome != tt.want) {
				t.Errorf("Allow = %+v, %v; want outcome %v", r, err, tt.want)
			}
			ev := rec.drain()
			if len(ev) != 1 || ev[0].Outcome != tt.want || ev[0].Err == nil {
				t.Errorf("events %+v, want one %v with the error", ev, tt.want)
			}
			// The caller's own canceled context is an error whatever the policy.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if _, err := l.Allow(ctx, "k"); !errors.Is(err, context.Canceled) {
				t.Errorf("Allow(canceled ctx) = %v, want context.Canceled", err)
			}
		})
	}
}

func TestWait(t *testing.T) {
	for _, b := range realBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			l := mustNew(t, b.client, Config{Name: "wait", Limit: 1, Period: 80 * time.Millisecond})
			ctx := context.Background()
			if err := l.Wait(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if err := l.Wait(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d < 60*time.Millisecond {
				t.Errorf("second Wait returned after %v, want about 80ms", d)
			}
			short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
			defer cancel()
			// Giving up at once returns ErrWouldExceedDeadline; sleeping until the
			// deadline would return context.DeadlineExceeded instead.
			if err := l.Wait(short, "k"); !errors.Is(err, ErrWouldExceedDeadline) {
				t.Errorf("Wait with a 20ms deadline = %v, want ErrWouldExceedDeadline", err)
			}
		})
	}
}

// TestFutureTimestampIsClamped drives the scripts' clamps with the state a
// primary whose clock ran ahead left behind, a day ahead and just past the
// clamps' thresholds (where a clamp that is too loose would keep the faster
// clock's state): a window's expiry is at most two periods ahead and a
// bucket owes at most its capacity, so a call is denied for at most a refill
// or two windows and the key runs on this server's clock again.
func TestFutureTimestampIsClamped(t *testing.T) {
	const day = 24 * time.Hour
	type state struct {
		v   int64
		ttl time.Duration
	}
	ahead := []struct {
		name           string
		window, bucket state
		// After the call: at most pttl left on the key, and a RetryAfter of
		// at most retryWindow or retryBucket.
		pttlWindow, pttlBucket   time.Duration
		retryWindow, retryBucket time.Duration
	}{
		// A full window, and the state of one call of 100ms in a 1s
		// bucket, with expiries a day further out.
		{"day", state{10, 2*time.Second + day}, state{-1_000_000, 1100*time.Millisecond + day},
			2 * time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second},
		// A full window 2.5s from its expiry: clamped, 1s of it is left
		// and the first slot frees 1.1s from now (unclamped: 1.6s). A
		// bucket whose TAT is 1.5s ahead (o = -0.1s, expiry 1.6s ahead):
		// clamped to a full bucket, the next token is 100ms away
		// (unclamped: 600ms).
		{"just-beyond", state{10, 2500 * time.Millisecond}, state{-100_000, 1600 * time.Millisecond},
			2 * time.Second, 1100 * time.Millisecond, 1100 * time.Millisecond, 200 * time.Millisecond},
	}
	// The rate under test (10/s) alone, first or second of two (each has its
	// own code in the two-rate paths), or one of three.
	second, minute, hour := Rate{Limit: 10, Period: time.Second}, Rate{Limit: 100, Period: time.Minute}, Rate{Limit: 1000, Period: time.Hour}
	configs := []struct {
		name  string
		rates []Rate
		at    int // the index of the rate under test
	}{
		{"1-rate", []Rate{second}, 0},
		{"2-rates-first", []Rate{second, minute}, 0},
		{"2-rates-second", []Rate{minute, second}, 1},
		{"3-rates", []Rate{minute, second, hour}, 1},
	}
	for _, b := range backends(t) {
		for _, alg := range []Algorithm{TokenBucket, LeakyBucket, SlidingWindow} {
			for _, tc := range configs {
				for _, a := range ahead {
					t.Run(fmt.Sprintf("%s/%s/%s/%s", b.name, alg, tc.name, a.name), func(t *testing.T) {
						rates := tc.rates
						l := mustNew(t, b.client, Config{Name: fmt.Sprintf("future-%s-%s-%s", alg, tc.name, a.name), Algorithm: alg, Limit: rates[0].Limit, Period: rates[0].Period, Rates: rates[1:]})
						ctx, key := context.Background(), l.keys("k")[1+tc.at]
						st, pttl, retry := a.window, a.pttlWindow, a.retryWindow
						if alg != SlidingWindow {
							st, pttl, retry = a.bucket, a.pttlBucket, a.retryBucket
						}
						if err := b.client.Set(ctx, key, st.v, st.ttl).Err(); err != nil {
							t.Fatal(err)
						}
						r, err := l.Allow(ctx, "k")
						if err != nil {
							t.Fatal(err)
						}
						if r.Allowed || r.RetryAfter > retry {
							t.Errorf("Allow = %+v; want denied for at most %v", r, retry)
						}
						if got := b.client.PTTL(ctx, key).Val(); got <= 0 || got > pttl {
							t.Errorf("PTTL after the call = %v, want at most %v", got, pttl)
						}
					})
				}
			}
		}
	}
}
