package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/seed68425060/ratelimit"
)

// server is a redis-server process that this program started on loopback.
type server struct {
	Addr string
	cmd  *exec.Cmd
	dir  string
}

// startServer starts redis-server (bin) on a free 127.0.0.1 port with no
// persistence and waits until it answers PING.
func startServer(bin string) (*server, error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("%s not found: install it (apt-get install -y redis-server): %w", bin, err)
	}
	dir, err := os.MkdirTemp("", "ratelimit-bench-")
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s := &server{Addr: "127.0.0.1:" + strconv.Itoa(port), dir: dir}
		s.cmd = exec.Command(path,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", "")
		out := &strings.Builder{}
		s.cmd.Stdout, s.cmd.Stderr = out, out
		if lastErr = s.cmd.Start(); lastErr != nil {
			continue
		}
		exited := make(chan struct{})
		go func() { s.cmd.Wait(); close(exited) }()
		if lastErr = s.waitReady(exited, out); lastErr == nil {
			return s, nil
		}
		s.cmd.Process.Kill()
	}
	os.RemoveAll(dir)
	return nil, fmt.Errorf("start redis-server: %w", lastErr)
}

func (s *server) waitReady(exited <-chan struct{}, out *strings.Builder) error {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited: %s", out.String())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("redis-server on %s did not answer PING within 10s", s.Addr)
}

// stop kills the server and removes its directory.
func (s *server) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
	}
	os.RemoveAll(s.dir)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// newClient is the one go-redis client configuration every subject uses.
// MaxRetries -1 and ContextTimeoutEnabled are what ratelimit.New requires;
// the peers get the same, so every call is one attempt with the same deadlines.
func newClient(addr string, poolSize int) *redis.Client {
	return newClientDB(addr, poolSize, 0)
}

// newHookedClient is newClient with hooks and no idle connections dialled in
// the background: go-redis v9.3 reads the hooks while it dials them, so a
// hook added after NewClient would race with those dials.
func newHookedClient(addr string, poolSize int, hooks ...redis.Hook) *redis.Client {
	o := newOptions(addr, poolSize, 0)
	o.MinIdleConns = 0
	c := redis.NewClient(o)
	for _, h := range hooks {
		c.AddHook(h)
	}
	return c
}

// newClientDB is newClient on database db (the path cells keep their keys
// apart from the throughput cells' that way).
func newClientDB(addr string, poolSize, db int) *redis.Client {
	return redis.NewClient(newOptions(addr, poolSize, db))
}

// newOptions are the options every subject's client has: as
// ratelimit.ClientOptions makes them (no retries, deadlines honoured, reply
// lengths bounded), as a user of this library builds a limiter client.
func newOptions(addr string, poolSize, db int) *redis.Options {
	return ratelimit.ClientOptions(&redis.Options{
		Addr:         addr,
		DB:           db,
		PoolSize:     poolSize,
		MinIdleConns: poolSize / 2,
	})
}

// info returns the fields of INFO section as a map.
func info(ctx context.Context, c *redis.Client, section string) (map[string]string, error) {
	s, err := c.Info(ctx, section).Result()
	if err != nil {
		return nil, err
	}
	m := make(map[string]string)
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
			m[k] = v
		}
	}
	return m, nil
}

// redisCPU returns used_cpu_sys + used_cpu_user in seconds.
func redisCPU(ctx context.Context, c *redis.Client) (float64, error) {
	m, err := info(ctx, c, "cpu")
	if err != nil {
		return 0, err
	}
	sys, err1 := strconv.ParseFloat(m["used_cpu_sys"], 64)
	usr, err2 := strconv.ParseFloat(m["used_cpu_user"], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("INFO cpu: bad used_cpu_sys %q or used_cpu_user %q", m["used_cpu_sys"], m["used_cpu_user"])
	}
	return sys + usr, nil
}

// cmdStat is one command's INFO commandstats entry.
type cmdStat struct {
	Calls int64
	Usec  int64
}

// commandStats parses INFO commandstats, keyed by lower-case command name.
func commandStats(ctx context.Context, c *redis.Client) (map[string]cmdStat, error) {
	m, err := info(ctx, c, "commandstats")
	if err != nil {
		return nil, err
	}
	out := make(map[string]cmdStat)
	for k, v := range m {
		name, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok {
			continue
		}
		var st cmdStat
		for _, f := range strings.Split(v, ",") {
			fk, fv, _ := strings.Cut(f, "=")
			switch fk {
			case "calls":
				st.Calls, _ = strconv.ParseInt(fv, 10, 64)
			case "usec":
				st.Usec, _ = strconv.ParseInt(fv, 10, 64)
			}
		}
		out[name] = st
	}
	return out, nil
}

// usedMemory returns INFO memory used_memory in bytes.
func usedMemory(ctx context.Context, c *redis.Client) (int64, error) {
	m, err := info(ctx, c, "memory")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(m["used_memory"], 10, 64)
}
