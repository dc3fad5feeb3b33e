package ratelimit

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit/internal/redistest"
)

// The core suite also runs on a real Redis Cluster (3 primaries, 3 replicas),
// started once for the test binary and stopped by TestMain.
var (
	clusterOnce sync.Once
	cluster     *redistest.Cluster
	clusterErr  error
)

func init() {
	extraBackends = append(extraBackends, clusterBackend)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if cluster != nil {
		cluster.Stop()
	}
	os.Exit(code)
}

// sharedCluster returns the test binary's cluster, starting it on first use.
func sharedCluster(t *testing.T) *redistest.Cluster {
	t.Helper()
	redistest.Binary(t)
	redistest.CLI(t)
	clusterOnce.Do(func() { cluster, clusterErr = redistest.NewCluster() })
	if clusterErr != nil {
		t.Fatalf("Redis Cluster: %v", clusterErr)
	}
	return cluster
}

func clusterBackend(t *testing.T) backend {
	c := sharedCluster(t)
	newClient := func(t *testing.T) redis.UniversalClient { return c.Client(t) }
	cc := c.Client(t)
	return backend{
		name:      "cluster",
		real:      true,
		client:    cc,
		newClient: newClient,
		forEachNode: func(ctx context.Context, fn func(ctx context.Context, c *redis.Client) error) error {
			return cc.ForEachMaster(ctx, fn)
		},
	}
}

// TestClusterSpreadsIdentities: keys of many identities land on all three
// primaries (no hot hash tag), and no call is refused with CROSSSLOT.
func TestClusterSpreadsIdentities(t *testing.T) {
	c := sharedCluster(t)
	cc := c.Client(t)
	ctx := context.Background()
	limiters := []*Limiter{
		mustNew(t, cc, Config{Name: "spread.ip", Limit: 10, Period: time.Minute}),
		mustNew(t, cc, Config{Name: "spread.user", Algorithm: SlidingWindow, Limit: 10, Period: time.Minute}),
	}
	const identities = 300
	var reqs []Request
	for i := 0; i < identities; i++ {
		for _, l := range limiters {
			reqs = append(reqs, Request{Limiter: l, Key: fmt.Sprintf("user-%d", i)})
		}
	}
	_, errs := AllowAll(ctx, reqs...)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	perPrimary := map[string]int64{}
	var mu sync.Mutex
	err := cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		keys, err := n.Keys(ctx, "rl:spread.*").Result()
		mu.Lock()
		perPrimary[n.Options().Addr] += int64(len(keys))
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for addr, n := range perPrimary {
		total += n
		if n < 2*identities/3/2 { // each primary holds a third of 600 keys, give or take
			t.Errorf("primary %s holds %d keys of %d: a hot hash tag?", addr, n, 2*identities)
		}
	}
	if total != 2*identities || len(perPrimary) != 3 {
		t.Errorf("keys per primary %v, want %d over 3 primaries", perPrimary, 2*identities)
	}
	// The keys of one identity share a slot: both limiters of user-7 on one node.
	s1 := cc.ClusterKeySlot(ctx, limiters[0].redisKey("user-7")).Val()
	s2 := cc.ClusterKeySlot(ctx, limiters[1].redisKey("user-7")).Val()
	if s1 != s2 {
		t.Errorf("one identity's keys in slots %d and %d, want one", s1, s2)
	}
}

// TestClusterFailover kills a primary (SIGKILL) while clients make decisions:
// the replica is promoted with an empty script cache, and decisions resume
// through the NOSCRIPT fallback with no code in the application. It measures
// the time without decisions, the errors, and the over-admission caused by
// writes lost in asynchronous replication: a measured bound, not "never".
func TestClusterFailover(t *testing.T) {
	c, err := redistest.NewCluster() // its own cluster: this test breaks one
	if err != nil {
		redistest.Binary(t)
		t.Fatal(err)
	}
	defer c.Stop()
	rec := newRecorder(t)
	cc := c.Client(t)
	const limit = 200
	l := mustNew(t, cc, Config{Name: "failover", Limit: limit, Period: time.Hour, Timeout: 300 * time.Millisecond, Observer: rec})
	ctx := context.Background()

	// The identities whose keys live on the primary we will kill.
	victim := c.Primaries()[0]
	if c.ReplicaOf(victim) == "" {
		t.Fatalf("primary %s has no replica in sync: the cluster was not ready", victim)
	}
	var keys []string
	for i := 0; len(keys) < 8; i++ {
		k := fmt.Sprintf("id-%d", i)
		addr, err := masterOf(ctx, cc, l.redisKey(k))
		if err != nil {
			t.Fatal(err)
		}
		if addr == victim {
			keys = append(keys, k)
		}
	}

	run := runFailover(t, l, rec, keys, 16, func() { c.Node(victim).Kill() })
	over := run.over(limit)
	t.Logf("failover: primary %s killed; decisions resumed after %v; %d calls failed (policy FailError) and %d succeeded; %d NOSCRIPT fallbacks; over-admission %d units over %d keys of limit %d (writes lost with the primary)",
		victim, run.resumedAfter, run.failed, run.ok, run.reloads, over, len(keys), limit)
	// Lost writes are bounded by what the replica had not yet received.
	if over > int64(len(keys))*limit/2 {
		t.Errorf("over-admission %d units: more than half the budget of every key", over)
	}
}

// masterOf returns the address of the primary that serves key.
func masterOf(ctx context.Context, cc *redis.ClusterClient, key string) (string, error) {
	slot := cc.ClusterKeySlot(ctx, key).Val()
	slots, err := cc.ClusterSlots(ctx).Result()
	if err != nil {
		return "", err
	}
	for _, s := range slots {
		if int64(s.Start) <= slot && slot <= int64(s.End) {
			return s.Nodes[0].Addr, nil
		}
	}
	return "", fmt.Errorf("no node serves slot %d", slot)
}
