package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit/internal/faultproxy"
	"github.com/seed68425060/ratelimit/internal/respguard"
)

// MasterName is the name under which a Sentinel from StartSentinel monitors its primary.
const MasterName = "limiter"

// Sentinel is a primary, one replica and one Sentinel (quorum 1) on loopback.
type Sentinel struct {
	Primary, Replica *Server
	Addr             string // the Sentinel's 127.0.0.1:port
	// Link is the replication link: the replica reaches the primary through
	// this proxy, so a test can hold the replication stream back (the lag of
	// asynchronous replication) and cut it.
	Link *faultproxy.Proxy
}

// StartSentinel starts a primary, a replica of it and a Sentinel that
// monitors it as MasterName, with down-after-milliseconds 1000 so that a
// failover takes seconds. It waits until the replica is in sync and the
// Sentinel knows it, and stops everything when the test ends.
func StartSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	bin := Binary(tb)
	primary := Start(tb, "--repl-diskless-sync-delay", "0") // sync the replica at once
	link, err := faultproxy.Start(primary.Addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(link.Close)
	_, linkPort, _ := strings.Cut(link.Addr, ":")
	replica := Start(tb, "--replicaof", "127.0.0.1", linkPort)
	s := &Sentinel{Primary: primary, Replica: replica, Link: link}
	if err := waitFor(10*time.Second, func() error {
		if st := replicaState(replica.Addr); st != "connected" {
			return fmt.Errorf("replica link %q", st)
		}
		return nil
	}); err != nil {
		tb.Fatal(err)
	}

	dir := tb.TempDir()
	port := FreePort(tb)
	s.Addr = "127.0.0.1:" + strconv.Itoa(port)
	conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n"+
		"sentinel monitor %s 127.0.0.1 %d 1\n"+
		"sentinel down-after-milliseconds %[3]s 1000\n"+
		"sentinel failover-timeout %[3]s 60000\n", port, dir, MasterName, primary.Port)
	// A long failover-timeout: Sentinel also waits that long before it re-points
	// a replica whose primary address (here the Link) is not the one it monitors.
	path := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, path, "--sentinel")
	cmd.Dir = dir
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer sc.Close()
	if err := waitFor(10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		replicas, err := sc.Replicas(ctx, MasterName).Result()
		if err != nil {
			return err
		}
		for _, r := range replicas {
			if r["port"] == strconv.Itoa(replica.Port) && !strings.Contains(r["flags"], "down") {
				return nil
			}
		}
		return fmt.Errorf("sentinel does not know the replica yet: %v", replicas)
	}); err != nil {
		tb.Fatalf("%v\n%s", err, out.String())
	}
	return s
}

// Client returns a Sentinel failover client for a limiter (no retries,
// context deadlines honoured), closed when the test ends.
func (s *Sentinel) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:            MasterName,
		SentinelAddrs:         []string{s.Addr},
		MaxRetries:            -1,
		ContextTimeoutEnabled: true,
		Dialer:                respguard.Dialer(nil, 0, nil),
	})
	tb.Cleanup(func() { c.Close() })
	return c
}

// MasterAddr returns the primary's address as the Sentinel reports it now.
func (s *Sentinel) MasterAddr() (string, error) {
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer sc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	hp, err := sc.GetMasterAddrByName(ctx, MasterName).Result()
	if err != nil {
		return "", err
	}
	return hp[0] + ":" + hp[1], nil
}

// waitFor polls check every 50ms until it returns nil, or returns its last
// error after timeout.
func waitFor(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
