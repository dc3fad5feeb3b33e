// Package redistest starts real redis-server processes on free loopback ports
// for tests, with no persistence, and stops them when the test ends.
//
// Without redis-server on PATH the tests that need it are skipped with a message
// saying how to install it, unless RATELIMIT_REQUIRE_REDIS=1 (as in CI), when
// they fail.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/seed68425060/ratelimit/internal/respguard"
)

// RequireEnv is the environment variable that turns a missing redis-server from
// a skip into a failure.
const RequireEnv = "RATELIMIT_REQUIRE_REDIS"

const installHint = "redis-server not found on PATH: install it (apt-get install -y redis-server redis-tools) or set " + RequireEnv + "=1 to make this a failure"

// Server is one redis-server process.
type Server struct {
	Addr string // 127.0.0.1:port
	Port int

	mu   sync.Mutex
	cmd  *exec.Cmd
	args []string
	dir  string
}

// Binary returns the path of redis-server, skipping or failing tb when it is missing.
func Binary(tb testing.TB) string {
	tb.Helper()
	return lookPath(tb, "redis-server")
}

// CLI returns the path of redis-cli, skipping or failing tb when it is missing.
func CLI(tb testing.TB) string {
	tb.Helper()
	return lookPath(tb, "redis-cli")
}

func lookPath(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			tb.Fatalf("%s is required (%s=1): %v", name, RequireEnv, err)
		}
		tb.Skip(strings.Replace(installHint, "redis-server", name, 1))
	}
	return p
}

// FreePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Start starts a redis-server on a free loopback port with no persistence and
// the DEBUG command enabled, waits until it answers PING, and stops it when the
// test ends. extra are more "--name value" arguments.
func Start(tb testing.TB, extra ...string) *Server {
	tb.Helper()
	Binary(tb)
	s, err := New(extra...)
	if err != nil {
		tb.Fatalf("start redis-server: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// New starts a redis-server like Start, for code without a test to clean up
// after it (TestMain): call Stop. It fails if redis-server is not on PATH.
func New(extra ...string) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "redistest")
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), Port: port, dir: dir}
		s.args = append([]string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", dir,
			"--enable-debug-command", "local", "--logfile", "",
		}, extra...)
		if lastErr = s.start(bin); lastErr == nil {
			return s, nil
		}
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

func (s *Server) start(bin string) error {
	cmd := exec.Command(bin, s.args...)
	cmd.Dir = s.dir
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited: %s", out.String())
		default:
		}
		if Ping(s.Addr) == nil {
			s.mu.Lock()
			s.cmd = cmd
			s.mu.Unlock()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	return fmt.Errorf("redis-server on %s did not answer PING within 10s: %s", s.Addr, out.String())
}

// Ping reports whether a Redis on addr answers PING within a second.
func Ping(addr string) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
}

// Kill stops the server at once with SIGKILL, as a crash would.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		cmd.Process.Signal(syscall.SIGKILL)
		for i := 0; i < 200 && Ping(s.Addr) == nil; i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// Stop stops the server and removes its directory; Start calls it when the
// test ends.
func (s *Server) Stop() {
	s.Kill()
	os.RemoveAll(s.dir)
}

// Restart starts the server again on the same port, with empty memory, after Kill.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	if err := s.start(Binary(tb)); err != nil {
		tb.Fatalf("restart redis-server: %v", err)
	}
}

// Options returns client options for a limiter on addr: no retries (a retried
// script could charge one call twice), context deadlines honoured and replies
// bounded, as ratelimit.ClientOptions sets them.
func Options(addr string) *redis.Options {
	return &redis.Options{Addr: addr, MaxRetries: -1, ContextTimeoutEnabled: true, Dialer: respguard.Dialer(nil, 0, nil)}
}

// Client returns a new client for the server with Options, closed when the test ends.
func (s *Server) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(Options(s.Addr))
	tb.Cleanup(func() { c.Close() })
	return c
}
