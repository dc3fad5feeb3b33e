package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/seed68425060/ratelimit/internal/respguard"
)

// Cluster is a real Redis Cluster of 3 primaries and 3 replicas on loopback.
type Cluster struct {
	Nodes []*Server
}

// StartCluster starts 6 redis-server processes with cluster mode on, joins
// them with redis-cli --cluster create (one replica per primary), waits until
// every node reports cluster_state:ok with all slots covered, and stops them
// when the test ends. The node timeout is 1s, so a failover takes seconds.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	Binary(tb)
	CLI(tb)
	c, err := NewCluster()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Stop)
	return c
}

// NewCluster starts a cluster like StartCluster, for code without a test to
// clean up after it (TestMain): call Stop.
func NewCluster() (*Cluster, error) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, err
	}
	c := &Cluster{}
	for i := 0; i < 6; i++ {
		n, err := New(
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes-"+strconv.Itoa(i)+".conf",
			"--cluster-node-timeout", "1000",
			"--cluster-replica-validity-factor", "0",
			"--repl-diskless-sync-delay", "0",
		)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
	}
	args := []string{"--cluster", "create"}
	for _, n := range c.Nodes {
		args = append(args, n.Addr)
	}
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		c.Stop()
		return nil, fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out)
	}
	if err := c.WaitOK(30 * time.Second); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// Stop stops every node.
func (c *Cluster) Stop() {
	for _, n := range c.Nodes {
		n.Stop()
	}
}

// Client returns a ClusterClient for a limiter (no retries, context deadlines
// honoured), closed when the test ends.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	cc := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                 c.Addrs(),
		MaxRetries:            -1,
		ContextTimeoutEnabled: true,
		Dialer:                respguard.Dialer(nil, 0, nil),
	})
	tb.Cleanup(func() { cc.Close() })
	return cc
}

// Addrs returns every node's address.
func (c *Cluster) Addrs() []string {
	var addrs []string
	for _, n := range c.Nodes {
		addrs = append(addrs, n.Addr)
	}
	return addrs
}

// WaitOK waits until every live node says cluster_state:ok with all 16384
// slots assigned and served, and every replica's link to its primary is up
// (so writes are being replicated).
func (c *Cluster) WaitOK(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		ok := true
		for _, n := range c.Nodes {
			if Ping(n.Addr) != nil {
				continue // killed
			}
			info, err := nodeInfo(n.Addr)
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
				ok, last = false, n.Addr+": "+info
				break
			}
			if state := replicaState(n.Addr); state != "" && state != "connected" {
				ok, last = false, n.Addr+": replica link "+state
				break
			}
		}
		if ok {
			// A node that still says master without owning slots is a
			// replica that has not taken its role yet: killing its primary
			// then would promote an empty node.
			if problem := c.rolesSettled(); problem != "" {
				ok, last = false, problem
			}
		}
		if ok {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("cluster not ok after %v: %s", timeout, last)
}

// rolesSettled returns "" when every live node is either a primary that owns
// slots or a replica whose link to its primary is up, else what is not yet so.
func (c *Cluster) rolesSettled() string {
	owners := map[string]bool{}
	for _, n := range c.Nodes {
		if Ping(n.Addr) != nil {
			continue
		}
		cl := redis.NewClient(&redis.Options{Addr: n.Addr, MaxRetries: -1})
		slots, err := cl.ClusterSlots(context.Background()).Result()
		cl.Close()
		if err != nil {
			return n.Addr + ": CLUSTER SLOTS: " + err.Error()
		}
		for _, s := range slots {
			if len(s.Nodes) > 0 {
				owners[s.Nodes[0].Addr] = true
			}
		}
		break
	}
	for _, n := range c.Nodes {
		if Ping(n.Addr) != nil {
			continue
		}
		if owners[n.Addr] {
			continue
		}
		if state := replicaState(n.Addr); state != "connected" {
			return n.Addr + ": owns no slots and is not a connected replica (state " + strconv.Quote(state) + ")"
		}
	}
	return ""
}

// Primaries returns the addresses of the live nodes that are primaries now.
func (c *Cluster) Primaries() []string {
	var out []string
	for _, n := range c.Nodes {
		if Ping(n.Addr) != nil {
			continue
		}
		cl := redis.NewClient(&redis.Options{Addr: n.Addr, MaxRetries: -1})
		role, err := cl.Do(context.Background(), "ROLE").Slice()
		cl.Close()
		if err == nil && len(role) > 0 && role[0] == "master" {
			out = append(out, n.Addr)
		}
	}
	return out
}

// ReplicaOf returns the address of a live replica of the primary at addr, or
// "" if it has none.
func (c *Cluster) ReplicaOf(primary string) string {
	for _, n := range c.Nodes {
		cl := redis.NewClient(&redis.Options{Addr: n.Addr, MaxRetries: -1})
		role, err := cl.Do(context.Background(), "ROLE").Slice()
		cl.Close()
		if err == nil && len(role) > 2 && role[0] == "slave" && fmt.Sprintf("%v:%v", role[1], role[2]) == primary {
			return n.Addr
		}
	}
	return ""
}

// Node returns the node listening on addr.
func (c *Cluster) Node(addr string) *Server {
	for _, n := range c.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

func nodeInfo(addr string) (string, error) {
	cl := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return cl.ClusterInfo(ctx).Result()
}

// replicaState is ROLE's replication state for a replica ("connected" once in
// sync), or "" for a primary.
func replicaState(addr string) string {
	cl := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer cl.Close()
	role, err := cl.Do(context.Background(), "ROLE").Slice()
	if err != nil || len(role) < 4 || role[0] != "slave" {
		return ""
	}
	state, _ := role[3].(string)
	return state
}
