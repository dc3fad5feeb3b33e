package ratelimit

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/seed68425060/ratelimit/internal/redistest"
)

// TestSentinelFailover kills the primary (SIGKILL) of a Sentinel-managed pair
// while clients make decisions through redis.NewFailoverClient, with the
// replication stream held back (a lagging replica, the worst case of
// asynchronous replication). Sentinel promotes the replica, the failover
// client follows it, and decisions resume through the NOSCRIPT fallback with
// no code in the application. It measures the time without decisions, the
// errors, and the over-admission: every write the replica had not received is
// lost, so keys admit again what they had admitted during the lag. That is the
// promise, and the bound asserted: over-admission at most the admissions made
// during the replication lag.
func TestSentinelFailover(t *testing.T) {
	s := redistest.StartSentinel(t)
	rec := newRecorder(t)
	const limit = 100
	l := mustNew(t, s.Client(t), Config{Name: "sentinel", Limit: limit, Period: time.Hour, Timeout: 300 * time.Millisecond, Observer: rec})
	ctx := context.Background()
	if _, err := l.Peek(ctx, "warm"); err != nil {
		t.Fatal(err)
	}

	keys := make([]string, 8)
	for i := range keys {
		keys[i] = fmt.Sprintf("id-%d", i)
	}
	s.Link.DelayReplies(time.Hour) // from now on the replica receives nothing
	run := runFailover(t, l, rec, keys, 8, func() {
		s.Primary.Kill()
		s.Link.Cut() // the writes held back die with the primary
	})
	if addr, err := s.MasterAddr(); err != nil || addr != s.Replica.Addr {
		t.Errorf("Sentinel reports primary %q (%v), want the promoted replica %s", addr, err, s.Replica.Addr)
	}
	over, duringLag := run.over(limit), run.admittedAtKill
	t.Logf("sentinel failover with the replica lagging 300ms: decisions resumed after %v; %d calls failed (policy FailError) and %d succeeded; %d NOSCRIPT fallbacks; %d units admitted during the lag, over-admission %d units over %d keys of limit %d",
		run.resumedAfter, run.failed, run.ok, run.reloads, duringLag, over, len(keys), limit)
	if over > duringLag {
		t.Errorf("over-admission %d units, more than the %d admitted during the replication lag", over, duringLag)
	}
	if over == 0 {
		t.Error("no over-admission although the replica lost every write of the lag: the test measured nothing")
	}
}
