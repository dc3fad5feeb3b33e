package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/seed68425060/ratelimit"
)

// redisURLEnv is the environment variable read when -redis is not given.
const redisURLEnv = "REDIS_URL"

// pingTimeout bounds the PING that every command sends at startup, so that an
// unreachable Redis is reported in seconds, not hung on.
const pingTimeout = 3 * time.Second

// redisFlags are the flags that choose a Redis: -redis URL (or REDIS_URL) or
// -cluster host:port,...
type redisFlags struct {
	url     string
	cluster string
}

func (r *redisFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&r.url, "redis", "", "Redis `URL`, redis://[user:password@]host:port[/db] or rediss:// for TLS (default $"+redisURLEnv+")")
	fs.StringVar(&r.cluster, "cluster", "", "Redis Cluster seed nodes, `host:port,...` (instead of -redis)")
}

// configured reports whether a Redis was chosen by flag or environment.
func (r *redisFlags) configured() bool {
	return r.url != "" || r.cluster != "" || os.Getenv(redisURLEnv) != ""
}

// conn is an open Redis connection and a description of it for people.
type conn struct {
	client  redis.UniversalClient
	desc    string // e.g. "redis://127.0.0.1:6379/0", without password
	cluster bool
	mini    *miniredis.Miniredis // embedded server, or nil
	stop    chan struct{}        // stops the embedded server's clock
}

func (c *conn) Close() {
	c.client.Close()
	if c.mini != nil {
		close(c.stop)
		c.mini.Close()
	}
}

// miniTick is how often the embedded miniredis's clock is moved.
const miniTick = 10 * time.Millisecond

// runClock keeps m's key expiry, which is the limiters' clock, in step with
// this host's: miniredis expires keys and counts TTLs down only when told to
// (FastForward). Each tick costs a pass over the keys with a TTL, so the
// clock moves in steps of miniTick.
func runClock(m *miniredis.Miniredis, stop <-chan struct{}) {
	t := time.NewTicker(miniTick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			m.FastForward(now.Sub(last))
			last = now
		}
	}
}

// limiterOptions gives o a 2s dial timeout and what ratelimit.ClientOptions
// sets for a Limiter: no retries, per-call deadlines, bounded replies.
func limiterOptions(o *redis.Options) *redis.Options {
	o.DialTimeout = 2 * time.Second
	return ratelimit.ClientOptions(o)
}

// connect opens the Redis the flags choose and checks it answers PING. With
// none chosen it starts an embedded miniredis if embedded is true, and fails
// otherwise.
func (r *redisFlags) connect(ctx context.Context, embedded bool) (*conn, error) {
	url := r.url
	if url == "" {
		url = os.Getenv(redisURLEnv)
	}
	var c *conn
	switch {
	case r.url != "" && r.cluster != "":
		return nil, errors.New("use -redis or -cluster, not both")
	case r.cluster != "":
		opts, err := clusterOptions(r.cluster)
		if err != nil {
			return nil, err
		}
		c = &conn{client: redis.NewClusterClient(opts), desc: "Redis Cluster " + strings.Join(opts.Addrs, ","), cluster: true}
	case url != "":
		if !strings.Contains(url, "://") {
			url = "redis://" + url // host:port, as people type it
		}
		opts, err := redis.ParseURL(url)
		if err != nil {
			return nil, fmt.Errorf("-redis %q: %v (want redis://host:port or rediss://host:port)", redactURL(url), err)
		}
		c = &conn{client: redis.NewClient(limiterOptions(opts)), desc: describe(opts)}
	case embedded:
		m, err := miniredis.Run()
		if err != nil {
			return nil, fmt.Errorf("start embedded miniredis: %v", err)
		}
		c = &conn{
			client: redis.NewClient(limiterOptions(&redis.Options{Addr: m.Addr()})),
			desc:   "embedded miniredis at redis://" + m.Addr() + " (in memory, this process only)",
			mini:   m,
			stop:   make(chan struct{}),
		}
		go runClock(m, c.stop)
	default:
		return nil, errors.New("no Redis: give -redis redis://host:port, set " + redisURLEnv + ", or give -cluster host:port,...")
	}
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if err := c.client.Ping(pctx).Err(); err != nil {
		c.Close()
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no answer within %v", pingTimeout)
		}
		return nil, fmt.Errorf("cannot reach %s: %v", c.desc, err)
	}
	return c, nil
}

// clusterOptions reads -cluster: host:port,host:port or a redis:// URL with
// addr= parameters as redis.ParseClusterURL reads.
func clusterOptions(s string) (*redis.ClusterOptions, error) {
	var opts *redis.ClusterOptions
	if strings.Contains(s, "://") {
		var err error
		if opts, err = redis.ParseClusterURL(s); err != nil {
			return nil, fmt.Errorf("-cluster %q: %v", redactURL(s), err)
		}
	} else {
		opts = &redis.ClusterOptions{}
		for _, a := range strings.Split(s, ",") {
			a = strings.TrimSpace(a)
			if a == "" {
				continue
			}
			if !strings.Contains(a, ":") {
				return nil, fmt.Errorf("-cluster %q: node %q is not host:port", s, a)
			}
			opts.Addrs = append(opts.Addrs, a)
		}
		if len(opts.Addrs) == 0 {
			return nil, fmt.Errorf("-cluster %q: no host:port given", s)
		}
	}
	opts.DialTimeout = 2 * time.Second
	return ratelimit.ClusterOptions(opts), nil
}

// describe names a standalone Redis without its password.
func describe(o *redis.Options) string {
	scheme := "redis"
	if o.TLSConfig != nil {
		scheme = "rediss"
	}
	return fmt.Sprintf("%s://%s/%d", scheme, o.Addr, o.DB)
}

// redactURL hides the password in a Redis URL so it never reaches a terminal or log.
func redactURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return s
	}
	user, _, hasPass := strings.Cut(rest[:at], ":")
	if !hasPass {
		return s
	}
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}
