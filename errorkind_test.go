package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit/internal/redistest"
)

// redisErr is an error as go-redis returns it for a Redis error reply.
type redisErr string

func (e redisErr) Error() string { return string(e) }
func (redisErr) RedisError()     {}

func TestErrorKind(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("ratelimit: api: %w", err) }
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{wrap(redisErr("OOM command not allowed when used memory > 'maxmemory'.")), KindOOM},
		{wrap(redisErr("ERR Error running script (call to f_x): @user_script:1: OOM command not allowed when used memory > 'maxmemory'.")), KindOOM},
		{wrap(redisErr("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.")), KindBusy},
		{wrap(redisErr("LOADING Redis is loading the dataset in memory")), KindLoading},
		{wrap(redisErr("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.")), KindUnavailable},
		{wrap(redisErr("CLUSTERDOWN The cluster is down")), KindUnavailable},
		{wrap(redisErr("TRYAGAIN Multiple keys request during rehashing of slot")), KindUnavailable},
		{wrap(redisErr("READONLY You can't write against a read only replica.")), KindUnavailable},
		{wrap(redisErr("NOPERM this user has no permissions to access one of the keys used as arguments")), KindNoPerm},
		{wrap(redisErr("ERR The user executing the script can't run this command or subcommand script: x")), KindNoPerm},
		{wrap(redisErr("ERR unknown command")), KindOther},
		{wrap(fmt.Errorf("%w: 42", ErrUnexpectedReply)), KindReply},
		{wrap(context.DeadlineExceeded), KindTimeout},
		{wrap(&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}), KindTimeout},
		{wrap(context.Canceled), KindCanceled},
		{wrap(io.EOF), KindConnection},
		{wrap(redis.ErrClosed), KindConnection},
		{wrap(&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), KindConnection},
		{errors.New("something else"), KindOther},
	}
	for _, tt := range tests {
		if got := ErrorKind(tt.err); got != tt.want {
			t.Errorf("ErrorKind(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// TestErrorKindReal classifies errors produced by a real redis-server.
func TestErrorKindReal(t *testing.T) {
	s := redistest.Start(t)
	c := s.Client(t)
	ctx := context.Background()
	l := mustNew(t, c, Config{Name: "kinds", Limit: 1, Period: time.Hour, Timeout: 300 * time.Millisecond})

	// maxmemory below what is used: every write fails with OOM (noeviction).
	if err := c.Set(ctx, "filler", "x", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	_, err := l.Allow(ctx, "k")
	if got := ErrorKind(err); got != KindOOM {
		t.Errorf("under maxmemory: %v is %q, want oom", err, got)
	}
	if err := c.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	// A paused server: the call times out.
	if err := c.ClientPause(ctx, time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	_, err = l.Allow(ctx, "k")
	if got := ErrorKind(err); got != KindTimeout {
		t.Errorf("while paused: %v is %q, want timeout", err, got)
	}
	// A stopped server: connection errors.
	s.Kill()
	_, err = l.Allow(ctx, "k")
	if got := ErrorKind(err); got != KindConnection {
		t.Errorf("server gone: %v is %q, want connection", err, got)
	}
}

// TestPipelineDialErrorKind: a pipeline that never gets a connection (nothing
// listens on the port) fails each of its calls as a connection error, through
// AllowAll and through the coalescer. go-redis returns a dial error from a
// pipeline's Exec without setting its commands' errors; read as replies, they
// were nil and failed as ErrUnexpectedReply (kind reply).
func TestPipelineDialErrorKind(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	c := redis.NewClient(redistest.Options(addr))
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	l := mustNew(t, c, Config{Name: "nodial", Limit: 5, Period: time.Hour, Timeout: time.Second, OnFailure: FailError})

	_, errs := AllowAll(ctx, Request{Limiter: l, Key: "a"}, Request{Limiter: l, Key: "b"}, Request{Limiter: l, Key: "c"})
	for i, err := range errs {
		if got := ErrorKind(err); got != KindConnection {
			t.Errorf("AllowAll request %d: %v is %q, want %q", i, err, got, KindConnection)
		}
	}

	// Enough concurrent calls that most of them are coalesced into pipelines.
	const calls = 64
	kinds := make(chan string, calls)
	var start sync.WaitGroup
	start.Add(1)
	for i := 0; i < calls; i++ {
		go func() {
			start.Wait()
			_, err := l.Allow(ctx, fmt.Sprintf("k%d", i))
			kinds <- ErrorKind(err)
		}()
	}
	start.Done()
	seen := map[string]int{}
	for i := 0; i < calls; i++ {
		seen[<-kinds]++
	}
	if seen[KindConnection] != calls {
		t.Errorf("concurrent calls failed as %v, want all %d %q", seen, calls, KindConnection)
	}
}
