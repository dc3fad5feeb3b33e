package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/seed68425060/ratelimit/internal/redistest"
)

// buildBinary builds the ratelimit command into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "ratelimit")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// process is one running "ratelimit serve".
type process struct {
	cmd  *exec.Cmd
	base string
	out  *syncBuffer
	done chan error
}

// startProcess starts "bin serve" on a free port with args and waits until it
// answers GET / (the unlimited page, so that polling costs no quota).
func startProcess(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	port := redistest.FreePort(t)
	p := &process{base: "http://127.0.0.1:" + strconv.Itoa(port), out: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(bin, append([]string{"serve", "-addr", "127.0.0.1:" + strconv.Itoa(port)}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Env = append(os.Environ(), redisURLEnv+"=")
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get(p.base + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("serve exited before answering (%v):\n%s", err, p.out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve on %s did not answer within 15s:\n%s", p.base, p.out)
		}
	}
}

// stop sends SIGINT and returns the exit error (nil for status 0).
func (p *process) stop(t *testing.T) error {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("serve did not exit within 10s of SIGINT:\n%s", p.out)
		return nil
	}
}

func TestBinary(t *testing.T) {
	bin := buildBinary(t)

	t.Run("serve against real Redis", func(t *testing.T) {
		s := redistest.Start(t)
		p := startProcess(t, bin, "-redis", "redis://"+s.Addr, "-api-limit", "2/1h")
		var codes []int
		for range 3 {
			resp, _ := get(t, p.base+"/api/ping")
			codes = append(codes, resp.StatusCode)
		}
		if want := []int{200, 200, 429}; !slices.Equal(codes, want) {
			t.Errorf("pings = %v, want %v", codes, want)
		}
		if resp, body := postLogin(t, p.base, formType, "username=demo&password=wrong"); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("wrong password = %d %s, want 401", resp.StatusCode, body)
		}
		if resp, body := postLogin(t, p.base, "application/json", `{"username":"demo","password":"demo-password"}`); resp.StatusCode != http.StatusOK {
			t.Errorf("right password = %d %s, want 200", resp.StatusCode, body)
		}
		if resp, body := get(t, p.base+"/metrics"); resp.StatusCode != http.StatusOK || !strings.Contains(body, `limiter="api",outcome="denied"} 1`) {
			t.Errorf("GET /metrics = %d, want 200 with one api denial:\n%s", resp.StatusCode, body)
		}
		if err := p.stop(t); err != nil {
			t.Errorf("serve after SIGINT: %v, want exit status 0\n%s", err, p.out)
		}
		if out := p.out.String(); !strings.Contains(out, "shutting down") || !strings.Contains(out, "stopped") {
			t.Errorf("serve did not report a graceful shutdown:\n%s", out)
		}
	})

	t.Run("unreachable Redis", func(t *testing.T) {
		port := redistest.FreePort(t)
		cmd := exec.Command(bin, "serve", "-redis", "redis://127.0.0.1:"+strconv.Itoa(port))
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != exitFail {
			t.Fatalf("serve with an unreachable Redis: %v, want exit status 1\n%s", err, out)
		}
		if !strings.Contains(string(out), "cannot reach redis://127.0.0.1:") || strings.Contains(string(out), "goroutine") {
			t.Errorf("unclear error:\n%s", out)
		}
	})

	t.Run("bad flag", func(t *testing.T) {
		out, err := exec.Command(bin, "serve", "-api-limit", "lots").CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != exitUsage || !strings.Contains(string(out), `limit "lots"`) {
			t.Errorf("serve -api-limit lots: %v\n%s", err, out)
		}
	})
}

// TestProcessesShareLimit starts three serve processes on one real Redis and
// sends concurrent requests from one client IP spread over them: exactly the
// configured limit is admitted in total.
func TestProcessesShareLimit(t *testing.T) {
	const (
		limit    = 25
		requests = 90
		workers  = 15
	)
	bin := buildBinary(t)
	s := redistest.Start(t)
	var procs []*process
	for range 3 {
		// One hour per 25 requests: no refill during the test.
		procs = append(procs, startProcess(t, bin, "-redis", "redis://"+s.Addr, "-api-limit", fmt.Sprintf("%d/1h", limit)))
	}
	client := &http.Client{Timeout: 5 * time.Second}
	var (
		mu       sync.Mutex
		statuses = map[int]int{}
		perProc  = make([]int, len(procs))
		wg       sync.WaitGroup
		next     = make(chan int)
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				p := i % len(procs)
				resp, err := client.Get(procs[p].base + "/api/ping")
				mu.Lock()
				if err != nil {
					statuses[-1]++
				} else {
					resp.Body.Close()
					statuses[resp.StatusCode]++
					if resp.StatusCode == http.StatusOK {
						perProc[p]++
					}
				}
				mu.Unlock()
			}
		}()
	}
	for i := range requests {
		next <- i
	}
	close(next)
	wg.Wait()
	if statuses[http.StatusOK] != limit || statuses[http.StatusTooManyRequests] != requests-limit {
		t.Errorf("%d requests over %d processes: statuses %v, want %d×200 and %d×429", requests, len(procs), statuses, limit, requests-limit)
	}
	t.Logf("admitted per process: %v", perProc)
}
