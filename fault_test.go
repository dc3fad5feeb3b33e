package ratelimit

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit/internal/faultproxy"
	"github.com/seed68425060/ratelimit/internal/redistest"
)

// margin is what a call may take beyond its deadline (scheduling on a loaded
// 2-core machine under -race): a correctness bound, not a speed figure.
const margin = 500 * time.Millisecond

// countingScripter counts the scripts a Limiter sends.
type countingScripter struct {
	redis.Scripter
	calls atomic.Int64
}

func (c *countingScripter) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	c.calls.Add(1)
	return c.Scripter.EvalSha(ctx, sha, keys, args...)
}

func (c *countingScripter) Eval(ctx context.Context, src string, keys []string, args ...any) *redis.Cmd {
	c.calls.Add(1)
	return c.Scripter.Eval(ctx, src, keys, args...)
}

// TestLostReplyChargedOnce: the script runs, its reply is held back past the
// deadline on its connection. With the client options New requires, the call
// fails and is charged once. With go-redis's default retries (hidden from
// New's check) go-redis sends the script again on a fresh connection: the call
// succeeds and is charged twice, which is why New checks the options.
func TestLostReplyChargedOnce(t *testing.T) {
	s := redistest.Start(t)
	p, err := faultproxy.Start(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	remaining := func(name string) int {
		t.Helper()
		l := mustNew(t, s.Client(t), Config{Name: name, Limit: 10, Period: time.Hour})
		r, err := l.Peek(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		return r.Remaining
	}

	good := mustNew(t, redis.NewClient(redistest.Options(p.Addr)), Config{Name: "lost", Limit: 10, Period: time.Hour, Timeout: 150 * time.Millisecond})
	if _, err := good.Allow(ctx, "k"); err != nil { // connect, load the script
		t.Fatal(err)
	}
	p.DelayReplies(400 * time.Millisecond)
	_, err = good.Allow(ctx, "k")
	p.DelayReplies(0)
	if ErrorKind(err) != KindTimeout {
		t.Fatalf("Allow with the reply held back = %v, want a timeout", err)
	}
	if got := remaining("lost"); got != 8 {
		t.Errorf("after 2 calls (one reply lost): %d remaining, want 8 (each charged once)", got)
	}

	retrying := redis.NewClient(&redis.Options{Addr: p.Addr, ReadTimeout: 100 * time.Millisecond}) // MaxRetries: 3
	defer retrying.Close()
	bad := mustNew(t, struct{ redis.Scripter }{retrying}, Config{Name: "lost-retried", Limit: 10, Period: time.Hour, Timeout: 5 * time.Second})
	if _, err := bad.Allow(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	conns := p.Conns()
	p.DelayOpenReplies(300 * time.Millisecond)
	_, err = bad.Allow(ctx, "k")
	if p.Conns() == conns {
		t.Fatalf("go-redis did not retry on a new connection (call error %v)", err)
	}
	if got := remaining("lost-retried"); got != 7 {
		t.Errorf("with go-redis retries: %d remaining after 2 calls, want 7 (the retried call charged twice)", got)
	}
}

// TestRestartMidTraffic kills Redis (no persistence) under traffic: calls
// during the outage follow the failure policy within the deadline, and calls
// succeed again once the client reconnects (go-redis's pool waits up to about a
// second after many failed dials), reloading the script on the way.
func TestRestartMidTraffic(t *testing.T) {
	s := redistest.Start(t)
	var reloads atomic.Int64 // successful calls that sent the script with EVAL
	const timeout = 200 * time.Millisecond
	l := mustNew(t, s.Client(t), Config{Name: "restart", Limit: 1_000_000, Period: time.Hour, Timeout: timeout, OnFailure: FailClosed,
		Observer: ObserverFunc(func(e Event) {
			if e.ScriptReloaded && e.Err == nil {
				reloads.Add(1)
			}
		})})
	ctx := context.Background()
	var slowest atomic.Int64
	var outage atomic.Bool
	var failedClosed, wrong atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				r, err := l.Allow(ctx, "k"+strconv.Itoa(w))
				d := time.Since(start)
				if err != nil {
					wrong.Add(1)
					continue
				}
				if outage.Load() {
					if d > time.Duration(slowest.Load()) {
						slowest.Store(int64(d))
					}
					if r.Outcome == OutcomeFailedClosed {
						failedClosed.Add(1)
					}
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	outage.Store(true)
	s.Kill()
	time.Sleep(500 * time.Millisecond)
	outage.Store(false)
	reloadsBefore := reloads.Load()
	s.Restart(t)
	close(stop)
	wg.Wait()
	if wrong.Load() != 0 {
		t.Errorf("%d calls returned an error under FailClosed", wrong.Load())
	}
	if failedClosed.Load() == 0 {
		t.Error("no call failed closed during the outage")
	}
	if d := time.Duration(slowest.Load()); d > timeout+margin {
		t.Errorf("slowest call during the outage took %v, want within %v + %v", d, timeout, margin)
	}
	// After many failed dials go-redis's pool stops dialing and retries on its
	// own about once a second; until then calls still follow the policy.
	restarted := time.Now()
	for {
		r, err := l.Allow(ctx, "after")
		if err != nil {
			t.Fatalf("call after the restart: %v, want a decision under FailClosed", err)
		}
		if r.Outcome == OutcomeAllowed {
			break
		}
		if time.Since(restarted) > 3*time.Second {
			t.Fatalf("no call succeeded within 3s of the restart: %+v", r)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("first successful call %v after the restart", time.Since(restarted).Round(time.Millisecond))
	if reloads.Load() == reloadsBefore {
		t.Error("no call after the restart fell back to EVAL (the script cache is empty)")
	}
}

// TestPausedAndSlowRedis: with Redis paused (CLIENT PAUSE) or asleep (DEBUG
// SLEEP), every call returns within its deadline plus a margin, under the
// failure policy, and goroutines and connections go back to baseline after.
func TestPausedAndSlowRedis(t *testing.T) {
	s := redistest.Start(t)
	c := s.Client(t)
	admin := s.Client(t)
	const timeout = 100 * time.Millisecond
	l := mustNew(t, c, Config{Name: "pause", Limit: 1_000_000, Period: time.Hour, Timeout: timeout, OnFailure: FailOpen})
	ctx := context.Background()
	if _, err := l.Allow(ctx, "warm"); err != nil {
		t.Fatal(err)
	}
	baseline := runtime.NumGoroutine()
	for _, fault := range []struct {
		name string
		do   func()
	}{
		{"CLIENT PAUSE", func() { admin.Do(ctx, "CLIENT", "PAUSE", "800", "ALL") }},
		{"DEBUG SLEEP", func() { go admin.Do(context.Background(), "DEBUG", "SLEEP", "0.8") }},
	} {
		t.Run(fault.name, func(t *testing.T) {
			fault.do()
			time.Sleep(20 * time.Millisecond)
			var wg sync.WaitGroup
			var slowest atomic.Int64
			var open atomic.Int64
			for g := 0; g < 32; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					start := time.Now()
					r, err := l.Allow(ctx, "k"+strconv.Itoa(g))
					d := time.Since(start)
					if d > time.Duration(slowest.Load()) {
						slowest.Store(int64(d))
					}
					if err == nil && r.Outcome == OutcomeFailedOpen {
						open.Add(1)
					}
				}()
			}
			wg.Wait()
			if d := time.Duration(slowest.Load()); d > timeout+margin {
				t.Errorf("slowest call took %v, want within %v + %v", d, timeout, margin)
			}
			if open.Load() == 0 {
				t.Error("no call failed open while Redis was stalled")
			}
			// Once Redis answers again, calls succeed.
			deadline := time.Now().Add(5 * time.Second)
			for {
				r, err := l.Allow(ctx, "after")
				if err == nil && r.Outcome == OutcomeAllowed {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("Redis did not come back: %+v, %v", r, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > baseline+2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > baseline+2 {
		t.Errorf("%d goroutines after the faults, %d before", n, baseline)
	}
	if st := c.PoolStats(); st.TotalConns > 10*uint32(runtime.GOMAXPROCS(0)) {
		t.Errorf("pool holds %d connections after the faults", st.TotalConns)
	}
}

// TestOOMLeavesNoHalfState: with maxmemory reached under noeviction, a call is
// an OOM error under the failure policy and the key is left as it was.
func TestOOMLeavesNoHalfState(t *testing.T) {
	s := redistest.Start(t, "--maxmemory-policy", "noeviction")
	c := s.Client(t)
	ctx := context.Background()
	for _, alg := range []Algorithm{TokenBucket, LeakyBucket, SlidingWindow} {
		t.Run(alg.String(), func(t *testing.T) {
			rec := newRecorder(t)
			l := mustNew(t, c, Config{Name: "oom-" + alg.String(), Algorithm: alg, Limit: 3, Period: time.Hour, BlockFor: time.Hour, OnFailure: FailClosed, Observer: rec})
			l.Allow(ctx, "k")
			l.Allow(ctx, "k")
			before := c.Get(ctx, l.redisKey("k")).Val()
			if err := c.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3; i++ { // an admission, a denial, and one that would lock
				r, err := l.Allow(ctx, "k")
				if err != nil || r.Outcome != OutcomeFailedClosed {
					t.Errorf("call %d under OOM = %+v, %v; want failed closed", i, r, err)
				}
			}
			if err := c.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
				t.Fatal(err)
			}
			if after := c.Get(ctx, l.redisKey("k")).Val(); after != before {
				t.Errorf("state changed under OOM: %q, was %q", after, before)
			}
			for _, e := range rec.drain()[2:] {
				if ErrorKind(e.Err) != KindOOM {
					t.Errorf("event error %v is %q, want oom", e.Err, ErrorKind(e.Err))
				}
			}
		})
	}
}

// TestBusyIsNotRetried: while another client's script runs past
// busy-reply-threshold, calls get BUSY once each, classified, not retried.
func TestBusyIsNotRetried(t *testing.T) {
	s := redistest.Start(t, "--busy-reply-threshold", "50")
	c := s.Client(t)
	ctx := context.Background()
	counting := &countingScripter{Scripter: c}
	l := mustNew(t, counting, Config{Name: "busy", Limit: 10, Period: time.Hour, Timeout: 2 * time.Second})
	if _, err := l.Allow(ctx, "k"); err != nil { // load the script
		t.Fatal(err)
	}
	other := s.Client(t)
	started := make(chan struct{})
	go func() {
		close(started)
		// A read-only busy loop of about a second, killable with SCRIPT KILL.
		other.Eval(context.Background(), "local t = redis.call('TIME') local e = t[1] + 2 while true do local n = redis.call('TIME') if tonumber(n[1]) > tonumber(e) then break end end return 1", nil)
	}()
	<-started
	var busy error
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		before := counting.calls.Load()
		_, err := l.Allow(ctx, "k")
		if ErrorKind(err) == KindBusy {
			busy = err
			if n := counting.calls.Load() - before; n != 1 {
				t.Errorf("a BUSY call sent %d scripts, want 1 (no retry)", n)
			}
			break
		}
	}
	if busy == nil {
		t.Fatal("no call saw BUSY")
	}
	s.Client(t).Do(ctx, "SCRIPT", "KILL")
}

// fakeRedis answers every EVAL and EVALSHA with one error and counts them.
// With cluster set it is a one-node cluster that serves every slot.
type fakeRedis struct {
	reply   string
	cluster bool
	evals   atomic.Int64
	ln      net.Listener
}

func startFakeRedis(t *testing.T, cluster bool, reply string) *fakeRedis {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRedis{reply: reply, cluster: cluster, ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(conn)
		}
	}()
	return f
}

func (f *fakeRedis) serve(conn net.Conn) {
	defer conn.Close()
	host, port, _ := net.SplitHostPort(f.ln.Addr().String())
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "*")))
		var args []string
		for i := 0; i < n; i++ {
			if _, err := r.ReadString('\n'); err != nil { // $len
				return
			}
			arg, err := r.ReadString('\n')
			if err != nil {
				return
			}
			args = append(args, strings.ToUpper(strings.TrimSpace(arg)))
		}
		switch {
		case len(args) == 0:
			return
		case args[0] == "EVAL" || args[0] == "EVALSHA":
			f.evals.Add(1)
			fmt.Fprintf(conn, "-%s\r\n", f.reply)
		case f.cluster && args[0] == "CLUSTER" && len(args) > 1 && args[1] == "SLOTS":
			fmt.Fprintf(conn, "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$%d\r\n%s\r\n:%s\r\n", len(host), host, port)
		case f.cluster && args[0] == "COMMAND": // the two commands a limiter sends (Redis 5 shape)
			fmt.Fprint(conn, "*2\r\n")
			for _, name := range []string{"eval", "evalsha"} {
				fmt.Fprintf(conn, "*6\r\n$%d\r\n%s\r\n:-3\r\n*0\r\n:0\r\n:0\r\n:0\r\n", len(name), name)
			}
		case args[0] == "PING":
			fmt.Fprint(conn, "+PONG\r\n")
		default: // HELLO, CLIENT SETINFO: an old server
			fmt.Fprint(conn, "-ERR unknown command\r\n")
		}
	}
}

// TestTransientErrorsAreNotRetried: go-redis retries LOADING, MASTERDOWN,
// CLUSTERDOWN and TRYAGAIN when allowed to; with the client options New
// requires, each call sends its script once, gets a classified error, and
// never turns a sick Redis into a retry storm.
func TestTransientErrorsAreNotRetried(t *testing.T) {
	tests := []struct{ reply, kind string }{
		{"LOADING Redis is loading the dataset in memory", KindLoading},
		{"MASTERDOWN Link with MASTER is down", KindUnavailable},
		{"CLUSTERDOWN The cluster is down", KindUnavailable},
		{"TRYAGAIN Multiple keys request during rehashing of slot", KindUnavailable},
		{"BUSY Redis is busy running a script", KindBusy},
	}
	for _, tt := range tests {
		t.Run(strings.Fields(tt.reply)[0], func(t *testing.T) {
			f := startFakeRedis(t, false, tt.reply)
			c := redis.NewClient(redistest.Options(f.ln.Addr().String()))
			defer c.Close()
			l := mustNew(t, c, Config{Name: "sick", Limit: 10, Period: time.Hour})
			for i := 0; i < 5; i++ {
				_, err := l.Allow(context.Background(), "k")
				if got := ErrorKind(err); got != tt.kind {
					t.Fatalf("call %d: %v is %q, want %q", i, err, got, tt.kind)
				}
			}
			if n := f.evals.Load(); n != 5 {
				t.Errorf("5 calls sent %d scripts, want 5: nothing retried", n)
			}
		})
	}
}
