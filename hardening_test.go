package ratelimit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/seed68425060/ratelimit/internal/faultproxy"
	"github.com/seed68425060/ratelimit/internal/redistest"
)

// TestLockoutNeverRaisesAdmissions: with Limit 10/h and a 50ms lockout,
// hammering a key for a second admits 10, for every algorithm (before the
// lock kept the state, the key was fresh after each lock: 200 admitted).
func TestLockoutNeverRaisesAdmissions(t *testing.T) {
	for _, b := range realBackends(t) {
		for _, alg := range []Algorithm{TokenBucket, LeakyBucket, SlidingWindow} {
			t.Run(b.name+"/"+alg.String(), func(t *testing.T) {
				l := mustNew(t, b.client, Config{Name: "lockraise-" + alg.String(), Algorithm: alg, Limit: 10, Period: time.Hour, BlockFor: 50 * time.Millisecond})
				ctx := context.Background()
				admitted := 0
				for end := time.Now().Add(time.Second); time.Now().Before(end); {
					r, err := l.Allow(ctx, "k")
					if err != nil {
						t.Fatal(err)
					}
					if r.Allowed {
						admitted++
					}
					if r.Locked() {
						time.Sleep(r.RetryAfter)
					}
				}
				if admitted != 10 {
					t.Errorf("admitted %d in a second, want 10 (Limit 10/h)", admitted)
				}
				// The same through Lock: a key that spent its budget is as spent
				// after a short lock as before it.
				for i := 0; i < 10; i++ {
					l.Allow(ctx, "j")
				}
				if err := l.Lock(ctx, "j", 10*time.Millisecond); err != nil {
					t.Fatal(err)
				}
				time.Sleep(20 * time.Millisecond)
				if r, err := l.Peek(ctx, "j"); err != nil || r.Allowed || r.Locked() {
					t.Errorf("after a 10ms Lock on a spent key: %+v, %v; want denied by the kept state, not fresh", r, err)
				}
			})
		}
	}
}

// TestRetryAfterNeverEarly: at 1000 per ms, a denied call's RetryAfter is a
// time after which the same call is admitted on Redis's clock (it said 1µs
// when RetryAfter was in µs, and 90 of 100 waits were too short).
func TestRetryAfterNeverEarly(t *testing.T) {
	for _, b := range realBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			l := mustNew(t, b.client, Config{Name: "early", Limit: 1000, Period: time.Millisecond})
			ctx := context.Background()
			late := 0
			for i := 0; i < 100; i++ {
				l.AllowN(ctx, "k", 1000)
				r, err := l.AllowN(ctx, "k", 1000)
				if err != nil {
					t.Fatal(err)
				}
				if r.Allowed {
					continue // the clock moved between the two calls
				}
				if r.RetryAfter < time.Millisecond || r.RetryAfter%time.Millisecond != 0 {
					t.Fatalf("RetryAfter %v, want whole milliseconds", r.RetryAfter)
				}
				time.Sleep(r.RetryAfter)
				if r, err := l.AllowN(ctx, "k", 1000); err != nil || !r.Allowed {
					late++
				}
			}
			if late > 0 {
				t.Errorf("%d of 100 calls that waited RetryAfter were still denied", late)
			}
		})
	}
}

// TestHugeDurationsClamped: a lock reply of MaxInt64 µs is clamped, and Wait
// gives up at once instead of spinning.
func TestHugeDurationsClamped(t *testing.T) {
	f := &fakeScripter{reply: []any{"lock", int64(math.MaxInt64), int64(0)}}
	l := mustNew(t, f, Config{Name: "huge", Limit: 1, Period: time.Second})
	r, err := l.Allow(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	if r.RetryAfter <= 0 || r.RetryAfter > maxSpan || !r.Locked() {
		t.Errorf("RetryAfter %v for a huge lock, want locked, in (0, %v]", r.RetryAfter, maxSpan)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	before := f.evalSha.Load() + f.eval.Load()
	if err := l.Wait(ctx, "k"); !errors.Is(err, ErrWouldExceedDeadline) {
		t.Errorf("Wait = %v, want ErrWouldExceedDeadline", err)
	}
	if n := f.evalSha.Load() + f.eval.Load() - before; n != 1 {
		t.Errorf("Wait made %d calls, want 1", n)
	}
	// A lock reply of 0µs still waits a millisecond: never a spin.
	f.reply = []any{"lock", int64(0), int64(0)}
	if r, _ := l.Allow(context.Background(), "k"); r.RetryAfter < time.Millisecond {
		t.Errorf("RetryAfter %v for a lock of 0µs, want at least 1ms", r.RetryAfter)
	}
}

// hostileRedis answers the first command of each connection (go-redis's
// HELLO) with an error and every later one with reply, as a broken server or
// a man in the middle might. A command is taken to end where the bytes
// received so far end (go-redis writes each in one piece).
func hostileRedis(t *testing.T, reply string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				rd := bufio.NewReader(c)
				for n := 0; ; {
					if _, err := rd.ReadString('\n'); err != nil {
						return
					}
					if rd.Buffered() > 0 {
						continue
					}
					if n++; n == 1 {
						c.Write([]byte("-ERR unknown command\r\n"))
					} else {
						c.Write([]byte(reply))
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestHugeLengthReply: a reply announcing an array of 2^52 elements made
// go-redis panic inside Allow (makeslice); it is an error now, and the
// failure policy applies.
func TestHugeLengthReply(t *testing.T) {
	addr := hostileRedis(t, "*4503599627370496\r\n")
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, ContextTimeoutEnabled: true, Protocol: 2})
	defer c.Close()
	l := mustNew(t, c, Config{Name: "hugelen", Limit: 1, Period: time.Second, Timeout: 300 * time.Millisecond})
	_, err := l.Allow(context.Background(), "k")
	if !errors.Is(err, ErrUnexpectedReply) {
		t.Fatalf("Allow = %v, want ErrUnexpectedReply", err)
	}
	open := mustNew(t, c, Config{Name: "hugelen", Limit: 1, Period: time.Second, OnFailure: FailOpen})
	if r, err := open.Allow(context.Background(), "k"); err != nil || r.Outcome != OutcomeFailedOpen {
		t.Errorf("FailOpen: %+v, %v; want failed_open", r, err)
	}
}

// TestHugeBulkReplyWithinTimeout: a reply announcing a bulk string of 1 GB
// that never comes took 3.2s with a 300ms Timeout (go-redis allocates the
// announced length before reading). On a client from ClientOptions the
// header is refused before go-redis reads it: the call ends within its
// Timeout, as ErrUnexpectedReply, and the failure policy applies.
func TestHugeBulkReplyWithinTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	for _, reply := range []string{"$1000000000\r\n", "*4503599627370496\r\n", "+" + strings.Repeat("x", 2<<20)} {
		addr := hostileRedis(t, reply)
		c := redis.NewClient(ClientOptions(&redis.Options{Addr: addr, Protocol: 2}))
		defer c.Close()
		for _, policy := range []FailurePolicy{FailError, FailClosed} {
			l := mustNew(t, c, Config{Name: "hugebulk", Limit: 1, Period: time.Second, Timeout: timeout, OnFailure: policy})
			start := time.Now()
			r, err := l.Allow(context.Background(), "k")
			took := time.Since(start)
			switch policy {
			case FailError:
				if !errors.Is(err, ErrUnexpectedReply) || ErrorKind(err) != KindReply {
					t.Errorf("reply %.20q: Allow = %v (kind %q), want ErrUnexpectedReply", reply, err, ErrorKind(err))
				}
			case FailClosed:
				if err != nil || r.Outcome != OutcomeFailedClosed {
					t.Errorf("reply %.20q: FailClosed Allow = %+v, %v; want failed closed", reply, r, err)
				}
			}
			if took > timeout {
				t.Errorf("reply %.20q: Allow took %v with Timeout %v, want within it", reply, took, timeout)
			}
		}
	}
}

// TestLockedCallWritesNothing: under maxmemory with noeviction a write fails
// with OOM; a call on a locked key must still answer (locked), since it
// writes nothing.
func TestLockedCallWritesNothing(t *testing.T) {
	s := redistest.Start(t)
	c := s.Client(t)
	ctx := context.Background()
	l := mustNew(t, c, Config{Name: "oom", Limit: 1, Period: time.Hour})
	if err := l.Lock(ctx, "k", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := c.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	defer c.ConfigSet(ctx, "maxmemory", "0")
	r, err := l.Allow(ctx, "k")
	if err != nil || !r.Locked() {
		t.Errorf("Allow on a locked key under OOM = %+v, %v; want locked, no error", r, err)
	}
	if _, err := l.Allow(ctx, "other"); ErrorKind(err) != KindOOM {
		t.Errorf("Allow on a fresh key under OOM = %v, want an OOM error (the test's premise)", err)
	}
}

// TestPipelinedCallsWithinTimeout: on a paused Redis, every pipelined call
// ends within about its Timeout (a call queued behind the batch in flight
// took 380-400ms for a Timeout of 200ms: that batch's wait, then its own),
// decided by the failure policy, and a call that was never sent is never
// charged.
func TestPipelinedCallsWithinTimeout(t *testing.T) {
	s := redistest.Start(t)
	p, err := faultproxy.Start(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := redis.NewClient(redistest.Options(p.Addr))
	defer c.Close()
	const timeout = 200 * time.Millisecond
	rec := newRecorder(t)
	l := mustNew(t, c, Config{Name: "pipetimeout", Limit: 1000, Period: time.Hour, Pipeline: 1, Timeout: timeout, OnFailure: FailOpen, Observer: rec})
	ctx := context.Background()
	if _, err := l.Allow(ctx, "warm"); err != nil { // connect, load the script
		t.Fatal(err)
	}
	rec.drain()
	p.DelayReplies(time.Minute)
	const calls = 20
	var wg sync.WaitGroup
	var slow atomic.Int64
	outcomes := make(chan Outcome, calls)
	for i := 0; i < calls; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			r, err := l.Allow(ctx, "k")
			if took := time.Since(start); took > timeout+timeout/2 {
				slow.Add(1)
				t.Logf("a call took %v", took)
			}
			if err != nil {
				t.Error(err)
			}
			outcomes <- r.Outcome
		}()
		time.Sleep(2 * time.Millisecond) // calls arrive while a batch is in flight
	}
	wg.Wait()
	close(outcomes)
	for o := range outcomes {
		if o != OutcomeFailedOpen {
			t.Errorf("outcome %v on a paused Redis, want failed_open", o)
		}
	}
	if n := slow.Load(); n > 0 {
		t.Errorf("%d of %d pipelined calls took more than 1.5 x Timeout (%v)", n, calls, timeout)
	}
	if n := len(rec.drain()); n != calls {
		t.Errorf("%d events for %d calls, want one each", n, calls)
	}
}

// stallHook holds every command and pipeline for stall, ignoring their
// contexts, as a user's hook (or a stuck network write) might.
type stallHook struct{ stall atomic.Int64 }

func (h *stallHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *stallHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		time.Sleep(time.Duration(h.stall.Load()))
		return next(ctx, cmd)
	}
}
func (h *stallHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		time.Sleep(time.Duration(h.stall.Load()))
		return next(ctx, cmds)
	}
}

// TestQueuedCallsEndAtTheirDeadline: while the one pipeline slot is held by
// a call that does not return (a hook that ignores its context), the calls
// queued behind it end at their own deadline, answered by the failure policy
// and never sent (never charged). Only the stuck call itself is late. (The
// deadline a queued call waits on is its epoch's, see epochs; with the wait
// on it removed, these calls waited some 2s, the stuck calls' time.)
func TestQueuedCallsEndAtTheirDeadline(t *testing.T) {
	s := redistest.Start(t)
	c := s.Client(t)
	hook := &stallHook{}
	c.AddHook(hook)
	const timeout = 100 * time.Millisecond
	rec := newRecorder(t)
	l := mustNew(t, c, Config{Name: "queuedeadline", Limit: 1000, Period: time.Hour, Pipeline: 1, Timeout: timeout, OnFailure: FailOpen, Observer: rec})
	ctx := context.Background()
	if _, err := l.Allow(ctx, "warm"); err != nil { // connect, load the script
		t.Fatal(err)
	}
	rec.drain()
	hook.stall.Store(int64(time.Second))
	stuck := make(chan struct{})
	go func() { // takes the slot and stalls for a second
		defer close(stuck)
		_, _ = l.Allow(ctx, "k")
	}()
	time.Sleep(10 * time.Millisecond)
	const calls = 10
	var wg sync.WaitGroup
	var slow atomic.Int64
	for i := 0; i < calls; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			r, err := l.Allow(ctx, "k")
			if took := time.Since(start); took > timeout+timeout/2 {
				slow.Add(1)
				t.Logf("a queued call took %v", took)
			}
			if err != nil || r.Outcome != OutcomeFailedOpen {
				t.Errorf("queued call = %+v, %v; want failed_open", r, err)
			}
		}()
	}
	wg.Wait()
	if n := slow.Load(); n > 0 {
		t.Errorf("%d of %d queued calls took more than 1.5 x Timeout (%v)", n, calls, timeout)
	}
	<-stuck
	hook.stall.Store(0)
	r, err := l.Peek(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	// The stuck call may have run (once); the queued ones never did.
	if r.Remaining < 1000-1 {
		t.Errorf("Remaining = %d after %d calls that were never sent and one stuck, want at least %d", r.Remaining, calls, 1000-1)
	}
}

// TestUnreadableStateReadsFresh: a rate's key holding what no script wrote
// (not an integer, another type, a number beyond exact arithmetic), with a
// TTL, reads as fresh on every path (one rate, two rates, three; peek,
// refund, consume) and never as a free pass: no call errs, the first
// admission rewrites the key as state, and the identity then admits exactly
// what a fresh one does (Burst 3, then a denial by the 3/s rate).
func TestUnreadableStateReadsFresh(t *testing.T) {
	corrupt := []struct {
		name string
		set  func(ctx context.Context, c redis.UniversalClient, key string) error
	}{
		{"not an integer", func(ctx context.Context, c redis.UniversalClient, key string) error {
			return c.Set(ctx, key, "x", time.Hour).Err()
		}},
		{"a hash", func(ctx context.Context, c redis.UniversalClient, key string) error {
			if err := c.HSet(ctx, key, "f", 1).Err(); err != nil {
				return err
			}
			return c.PExpire(ctx, key, time.Hour).Err()
		}},
		{"above 2^52", func(ctx context.Context, c redis.UniversalClient, key string) error {
			return c.Set(ctx, key, "9007199254740993", time.Hour).Err()
		}},
		{"below -2^52", func(ctx context.Context, c redis.UniversalClient, key string) error {
			return c.Set(ctx, key, "-9007199254740993", time.Hour).Err()
		}},
		{"beyond int64", func(ctx context.Context, c redis.UniversalClient, key string) error {
			return c.Set(ctx, key, "99999999999999999999", time.Hour).Err()
		}},
	}
	extra := []Rate{{Limit: 50, Period: time.Minute}, {Limit: 500, Period: time.Hour}}
	for _, b := range backends(t) {
		for _, alg := range []Algorithm{TokenBucket, LeakyBucket, SlidingWindow} {
			for k := 1; k <= 3; k++ {
				l := mustNew(t, b.client, Config{Name: fmt.Sprintf("unread-%s-%d", alg, k), Algorithm: alg, Limit: 3, Period: time.Second, Rates: extra[:k-1]})
				for j := 0; j < k; j++ {
					for ci, cr := range corrupt {
						t.Run(fmt.Sprintf("%s/%s/%d-rates/rate-%d/%s", b.name, alg, k, j, cr.name), func(t *testing.T) {
							ctx, id := context.Background(), fmt.Sprintf("id%d-%d", j, ci)
							key := l.keys(id)[1+j]
							if err := cr.set(ctx, b.client, key); err != nil {
								t.Fatal(err)
							}
							if r, err := l.Peek(ctx, id); err != nil || !r.Allowed || r.Remaining != 3 {
								t.Errorf("Peek = %+v, %v; want allowed with 3 left, no error", r, err)
							}
							if r, err := l.Refund(ctx, id, 1); err != nil || r.Remaining != 3 {
								t.Errorf("Refund = %+v, %v; want 3 left, no error", r, err)
							}
							for i := 0; i < 4; i++ {
								r, err := l.Allow(ctx, id)
								if err != nil {
									t.Fatalf("Allow %d: %v", i+1, err)
								}
								if r.Allowed != (i < 3) {
									t.Fatalf("Allow %d = %+v; want 3 admitted, then a denial", i+1, r)
								}
							}
							if typ := b.client.Type(ctx, key).Val(); typ != "string" {
								t.Fatalf("the key is a %s after the calls, want a string", typ)
							}
							v, err := b.client.Get(ctx, key).Int64()
							if err != nil || v > 1<<52 || v < -(1<<52) {
								t.Errorf("the key holds %d, %v after the calls; want state the scripts read", v, err)
							}
						})
					}
				}
			}
		}
	}
}
