package ratelimit

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit/internal/faultproxy"
	"github.com/seed68425060/ratelimit/internal/redistest"
)

// proxiedCluster puts a faultproxy in front of every node of the shared
// cluster and returns a ClusterClient that reaches the nodes only through
// them (the nodes announce their own addresses; the Dialer maps each to its
// proxy), with the client options New requires and the given MaxRedirects.
func proxiedCluster(t *testing.T, maxRedirects int) (*redis.ClusterClient, map[string]*faultproxy.Proxy) {
	t.Helper()
	c := sharedCluster(t)
	proxies := map[string]*faultproxy.Proxy{}
	for _, addr := range c.Addrs() {
		p, err := faultproxy.Start(addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		proxies[addr] = p
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                 c.Addrs(),
		MaxRetries:            -1,
		ContextTimeoutEnabled: true,
		MaxRedirects:          maxRedirects,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if p, ok := proxies[addr]; ok {
				addr = p.Addr
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	})
	t.Cleanup(func() { cc.Close() })
	return cc, proxies
}

// TestClusterCutConnectionCharges: on a ClusterClient, a call whose
// connection is cut after the script ran (the reply never arrives) fails with
// a connection error and is charged once, whatever MaxRedirects is. go-redis's
// redirect loop would send the script again on a fresh connection (charging it
// twice at the default MaxRedirects); the runner sends through the primary's
// node client instead (script.runOnPrimary).
func TestClusterCutConnectionCharges(t *testing.T) {
	for _, maxRedirects := range []int{0, -1} { // go-redis's default, and off
		t.Run(fmt.Sprintf("MaxRedirects=%d", maxRedirects), func(t *testing.T) {
			cc, proxies := proxiedCluster(t, maxRedirects)
			ctx := context.Background()
			name := "cut" + strconv.Itoa(maxRedirects+1)
			const limit = 100 // Burst >= 16: a second call only adds (INCRBY), so the stored value changes
			l := mustNew(t, cc, Config{Name: name, Limit: limit, Period: time.Hour, Timeout: 3 * time.Second})
			if _, err := l.Allow(ctx, "k"); err != nil { // connect, load the script
				t.Fatal(err)
			}
			addr, err := masterOf(ctx, cc, l.redisKey("k"))
			if err != nil {
				t.Fatal(err)
			}
			direct := redis.NewClient(redistest.Options(addr))
			defer direct.Close()
			before := direct.Get(ctx, l.redisKey("k")).Val()

			p := proxies[addr]
			p.DelayOpenReplies(time.Minute) // the reply to the next call is held back...
			done := make(chan error, 1)
			go func() {
				_, err := l.Allow(ctx, "k")
				done <- err
			}()
			for deadline := time.Now().Add(2 * time.Second); direct.Get(ctx, l.redisKey("k")).Val() == before; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the script did not run within 2s")
				}
			}
			p.Cut() // ...and lost: the script has run, its connection is cut
			err = <-done
			if err == nil {
				t.Error("Allow with its connection cut succeeded, want an error")
			}
			if err != nil && ErrorKind(err) != KindConnection {
				t.Errorf("error %v is %q, want %q", err, ErrorKind(err), KindConnection)
			}
			peek := mustNew(t, sharedCluster(t).Client(t), Config{Name: name, Limit: limit, Period: time.Hour})
			r, err := peek.Peek(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			if charged := limit - 1 - r.Remaining; charged != 1 {
				t.Errorf("one call whose connection was cut was charged %d times, want once", charged)
			}
		})
	}
}

// TestClusterCutPipelineCharges is TestClusterCutConnectionCharges for a
// pipeline (AllowAll; Config.Pipeline takes the same path): three scripts on
// one node run, the connection is cut before their replies arrive. Each call
// fails and is charged once. go-redis's ClusterClient pipelines would send the
// node's whole pipeline again at the default MaxRedirects (each call charged
// twice and reported as decided); AllowAll pipelines to each primary through
// its node client instead (runOnPrimaries).
func TestClusterCutPipelineCharges(t *testing.T) {
	for _, maxRedirects := range []int{0, -1} { // go-redis's default, and off
		t.Run(fmt.Sprintf("MaxRedirects=%d", maxRedirects), func(t *testing.T) {
			cc, proxies := proxiedCluster(t, maxRedirects)
			ctx := context.Background()
			const limit = 100 // Burst >= 16: a second call only adds (INCRBY), so the stored value changes
			var ls []*Limiter
			var reqs []Request
			for i := 0; i < 3; i++ { // one identity: one slot, one node, one pipeline
				name := fmt.Sprintf("cutpipe%d-%d", maxRedirects+1, i)
				l := mustNew(t, cc, Config{Name: name, Limit: limit, Period: time.Hour, Timeout: 3 * time.Second})
				ls = append(ls, l)
				reqs = append(reqs, Request{Limiter: l, Key: "k"})
			}
			if _, errs := AllowAll(ctx, reqs...); errs != nil { // connect, load the scripts
				t.Fatal(errs)
			}
			addr, err := masterOf(ctx, cc, ls[0].redisKey("k"))
			if err != nil {
				t.Fatal(err)
			}
			direct := redis.NewClient(redistest.Options(addr))
			defer direct.Close()
			before := make([]string, len(ls))
			for i, l := range ls {
				before[i] = direct.Get(ctx, l.redisKey("k")).Val()
			}
			ran := func() bool { // every script of the batch has run
				for i, l := range ls {
					if direct.Get(ctx, l.redisKey("k")).Val() == before[i] {
						return false
					}
				}
				return true
			}

			p := proxies[addr]
			p.DelayOpenReplies(time.Minute)
			done := make(chan []error, 1)
			go func() {
				_, errs := AllowAll(ctx, reqs...)
				done <- errs
			}()
			for deadline := time.Now().Add(2 * time.Second); !ran(); time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the scripts did not run within 2s")
				}
			}
			p.Cut()
			errs := <-done
			if errs == nil {
				t.Error("AllowAll with its connection cut succeeded, want errors")
			}
			for i, l := range ls {
				peek := mustNew(t, sharedCluster(t).Client(t), Config{Name: l.cfg.Name, Limit: limit, Period: time.Hour})
				r, err := peek.Peek(ctx, "k")
				if err != nil {
					t.Fatal(err)
				}
				if charged := limit - 1 - r.Remaining; charged != 1 {
					t.Errorf("request %d of a pipeline whose connection was cut was charged %d times, want once", i, charged)
				}
			}
		})
	}
}

// TestClusterTransientErrorAttempts: on a ClusterClient each call sends one
// script for the errors of a sick cluster, classified, whatever MaxRedirects
// is. (go-redis's redirect loop would send LOADING, CLUSTERDOWN and TRYAGAIN
// calls up to MaxRedirects+1 = 4 times; the runner makes its one attempt
// through the primary's node client.)
func TestClusterTransientErrorAttempts(t *testing.T) {
	const calls = 3
	for _, tt := range []struct {
		reply, kind string
	}{
		{"LOADING Redis is loading the dataset in memory", KindLoading},
		{"CLUSTERDOWN The cluster is down", KindUnavailable},
		{"TRYAGAIN Multiple keys request during rehashing of slot", KindUnavailable},
		{"MASTERDOWN Link with MASTER is down", KindUnavailable},
		{"BUSY Redis is busy running a script", KindBusy},
	} {
		for _, redirects := range []int{0, -1} {
			t.Run(fmt.Sprintf("%s/MaxRedirects=%d", strings.Fields(tt.reply)[0], redirects), func(t *testing.T) {
				f := startFakeRedis(t, true, tt.reply)
				cc := redis.NewClusterClient(&redis.ClusterOptions{
					Addrs:                 []string{f.ln.Addr().String()},
					MaxRetries:            -1,
					ContextTimeoutEnabled: true,
					MaxRedirects:          redirects,
				})
				defer cc.Close()
				l := mustNew(t, cc, Config{Name: "sick", Limit: 10, Period: time.Hour, Timeout: 2 * time.Second})
				for i := 0; i < calls; i++ {
					_, err := l.Allow(context.Background(), "k")
					if got := ErrorKind(err); got != tt.kind {
						t.Fatalf("call %d: %v is %q, want %q", i, err, got, tt.kind)
					}
				}
				if n := f.evals.Load(); n != calls {
					t.Errorf("%d calls sent %d scripts, want %d: nothing retried", calls, n, calls)
				}
			})
		}
	}
}

// TestClusterGracefulFailover promotes a replica with CLUSTER FAILOVER (the
// way an operator moves a primary for maintenance) while clients make
// decisions on a key it serves. The old primary answers MOVED from then on,
// and the new one has an empty script cache: no call fails, and since a
// manual failover waits for the replica to catch up, no write is lost and
// none is applied twice (the key's state matches the calls admitted).
func TestClusterGracefulFailover(t *testing.T) {
	c := sharedCluster(t)
	cc := c.Client(t)
	ctx := context.Background()
	const limit = 1_000_000
	rec := newRecorder(t)
	l := mustNew(t, cc, Config{Name: "graceful", Limit: limit, Period: time.Hour, Timeout: 3 * time.Second, Observer: rec})
	primary, err := masterOf(ctx, cc, l.redisKey("k"))
	if err != nil {
		t.Fatal(err)
	}
	replicaAddr := c.ReplicaOf(primary)
	if replicaAddr == "" {
		t.Fatalf("no replica of %s", primary)
	}
	replica := redis.NewClient(redistest.Options(replicaAddr))
	defer replica.Close()

	var admitted, failed atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	for w := 0; w < 4; w++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := l.Allow(ctx, "k")
				switch {
				case err != nil:
					failed.Add(1)
					t.Logf("call failed: %v", err)
				case r.Allowed:
					admitted.Add(1)
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	if err := replica.Do(ctx, "CLUSTER", "FAILOVER").Err(); err != nil {
		t.Fatal(err)
	}
	promoted := time.Now()
	for {
		role, _ := replica.Do(ctx, "ROLE").Slice()
		if len(role) > 0 && role[0] == "master" {
			break
		}
		if time.Since(promoted) > 10*time.Second {
			t.Fatal("the replica was not promoted within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	atSwitch := admitted.Load()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	for w := 0; w < 4; w++ {
		<-done
	}
	if n := failed.Load(); n != 0 {
		t.Errorf("%d calls failed during a graceful failover, want 0", n)
	}
	if admitted.Load() == atSwitch {
		t.Error("no call was admitted after the failover")
	}
	reloads := 0
	for _, e := range rec.drain() {
		if e.ScriptReloaded {
			reloads++
		}
	}
	if reloads == 0 {
		t.Error("no call reloaded the script on the new primary")
	}
	r, err := l.Peek(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	// A million-token bucket refills about 278 tokens a second: allow for the
	// refill since the first call, and nothing else.
	if charged := int64(limit - r.Remaining); charged > admitted.Load() || charged < admitted.Load()-1000 {
		t.Errorf("the key was charged %d units for %d calls admitted", charged, admitted.Load())
	}
	t.Logf("graceful failover of %s: %d calls admitted, %d failed, %d NOSCRIPT fallbacks", primary, admitted.Load(), failed.Load(), reloads)
}
