package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/seed68425060/ratelimit/internal/redistest"
)

// newTestDemo returns the demo's handler on a miniredis, with flags args.
func newTestDemo(t *testing.T, args ...string) (*httptest.Server, *demo) {
	t.Helper()
	return newTestDemoOn(t, miniredis.RunT(t), args...)
}

// newTestDemoOn is newTestDemo on a given miniredis, for tests that also run
// a command against it.
func newTestDemoOn(t *testing.T, m *miniredis.Miniredis, args ...string) (*httptest.Server, *demo) {
	t.Helper()
	var cfg serveConfig
	fs := newFlagSet("serve")
	cfg.register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	c := &conn{client: redis.NewClient(redistest.Options(m.Addr())), desc: "test"}
	t.Cleanup(func() { c.client.Close() })
	d, err := newDemo(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.handler())
	t.Cleanup(srv.Close)
	return srv, d
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestServePing(t *testing.T) {
	srv, _ := newTestDemo(t, "-api-limit", "3/1m")
	for i := range 3 {
		resp, body := get(t, srv.URL+"/api/ping")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("ping %d: status %d, want 200: %s", i+1, resp.StatusCode, body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("ping %d: Content-Type %q, want application/json", i+1, ct)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Errorf("ping %d: body %q is not JSON: %v", i+1, body, err)
		}
		if got, want := resp.Header.Get("RateLimit"), fmt.Sprintf(`"api";r=%d;`, 2-i); !strings.HasPrefix(got, want) {
			t.Errorf("ping %d: RateLimit = %q, want prefix %q", i+1, got, want)
		}
		if got, want := resp.Header.Get("RateLimit-Policy"), `"api";q=3;w=60`; got != want {
			t.Errorf("ping %d: RateLimit-Policy = %q, want %q", i+1, got, want)
		}
	}
	resp, body := get(t, srv.URL+"/api/ping")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("ping 4: status %d, want 429: %s", resp.StatusCode, body)
	}
	ra := resp.Header.Get("Retry-After")
	if ra != "20" { // 3 per minute: one token every 20s
		t.Errorf("ping 4: Retry-After %q, want 20", ra)
	}
	var v struct {
		Error      string  `json:"error"`
		RetryAfter float64 `json:"retry_after_seconds"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil || v.Error != "rate limited" || v.RetryAfter != 20 {
		t.Errorf("ping 4: body %q (%v), want JSON with error and retry_after_seconds 20", body, err)
	}
}

func TestServeBurst(t *testing.T) {
	srv, d := newTestDemo(t, "-api-limit", "1/1h", "-api-burst", "5")
	if d.apiLimit.Burst != 5 {
		t.Errorf("burst = %d, want 5", d.apiLimit.Burst)
	}
	n := 0
	for range 8 {
		if resp, _ := get(t, srv.URL+"/api/ping"); resp.StatusCode == http.StatusOK {
			n++
		}
	}
	if n != 5 {
		t.Errorf("with -api-burst 5: %d of 8 admitted, want 5", n)
	}
}

func TestServeIndex(t *testing.T) {
	srv, _ := newTestDemo(t, "-api-limit", "7/1m")
	resp, body := get(t, srv.URL+"/")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, s := range []string{"ratelimit demo", "/api/ping", "/login", "/metrics", "7/m", demoUser, demoPassword, "<script>"} {
		if !strings.Contains(body, s) {
			t.Errorf("GET / lacks %q", s)
		}
	}
	if resp, _ := get(t, srv.URL+"/nope"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nope = %d, want 404", resp.StatusCode)
	}
	resp, err := http.Post(srv.URL+"/api/ping", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /api/ping = %d, want 405", resp.StatusCode)
	}
}

// startServe runs "serve" in this process on a free port and returns its base
// URL and a function that stops it (like SIGINT) and returns the exit status.
func startServe(t *testing.T, args ...string) (base string, out *syncBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out = &syncBuffer{}
	var errOut syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"serve", "-addr", "127.0.0.1:0"}, args...), out, &errOut) }()
	re := regexp.MustCompile(`listening on +(http://\S+)`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			base = m[1]
			break
		}
		select {
		case code := <-done:
			cancel()
			t.Fatalf("serve exited with %d before listening:\n%s%s", code, out, errOut.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve did not print its address within 10s:\n%s", out)
		}
	}
	stopped := false
	stop = func() int {
		stopped = true
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(10 * time.Second):
			t.Fatal("serve did not stop within 10s of the signal")
			return -1
		}
	}
	t.Cleanup(func() {
		if !stopped {
			stop()
		}
	})
	return base, out, stop
}

func TestServeEmbedded(t *testing.T) {
	t.Setenv(redisURLEnv, "")
	base, out, stop := startServe(t, "-api-limit", "2/1h")
	banner := out.String()
	for _, s := range []string{"embedded miniredis", "/api/ping     2/h per client IP", "curl -i " + base + "/api/ping",
		"password=" + demoPassword, "Ctrl-C", "ratelimit inspect -redis redis://127.0.0.1:"} {
		if !strings.Contains(banner, s) {
			t.Errorf("banner lacks %q:\n%s", s, banner)
		}
	}
	codes := []int{}
	for range 3 {
		resp, _ := get(t, base+"/api/ping")
		codes = append(codes, resp.StatusCode)
	}
	if want := []int{200, 200, 429}; !slices.Equal(codes, want) {
		t.Errorf("three pings = %v, want %v", codes, want)
	}
	if code := stop(); code != exitOK {
		t.Errorf("serve after cancel = %d, want 0", code)
	}
	if !strings.Contains(out.String(), "stopped") {
		t.Errorf("serve did not report stopping:\n%s", out)
	}
}

func TestServeRealRedis(t *testing.T) {
	s := redistest.Start(t)
	base, out, _ := startServe(t, "-redis", "redis://"+s.Addr, "-api-limit", "1/1h")
	if !strings.Contains(out.String(), "redis://"+s.Addr+"/0") {
		t.Errorf("banner does not name the Redis:\n%s", out)
	}
	if resp, _ := get(t, base+"/api/ping"); resp.StatusCode != http.StatusOK {
		t.Errorf("first ping = %d, want 200", resp.StatusCode)
	}
	if resp, _ := get(t, base+"/api/ping"); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("second ping = %d, want 429", resp.StatusCode)
	}
	// The decision lives in Redis: the key is there.
	keys, err := s.Client(t).Keys(context.Background(), "rl:api:*").Result()
	if err != nil || len(keys) != 1 || !strings.Contains(keys[0], "127.0.0.1") {
		t.Errorf("Redis keys rl:api:* = %q, %v; want one for 127.0.0.1", keys, err)
	}
}

func TestServeAddrInUse(t *testing.T) {
	srv, _ := newTestDemo(t)
	addr := strings.TrimPrefix(srv.URL, "http://")
	code, _, stderr := runCmd(t, "serve", "-addr", addr)
	if code != exitFail || !strings.Contains(stderr, "listen on -addr "+addr) {
		t.Errorf("serve on a busy port = %d, stderr:\n%s", code, stderr)
	}
}

func postLogin(t *testing.T, base, contentType, body string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Post(base+"/login", contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

const formType = "application/x-www-form-urlencoded"

func TestServeLogin(t *testing.T) {
	srv, _ := newTestDemo(t, "-login-limit", "3/15m")
	wrong := "username=demo&password=wrong"
	right := "username=demo&password=" + demoPassword

	if resp, body := postLogin(t, srv.URL, formType, right); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"ok":true`) {
		t.Fatalf("right password = %d %s, want 200", resp.StatusCode, body)
	}
	if resp, body := postLogin(t, srv.URL, "application/json", `{"username":"demo","password":"`+demoPassword+`"}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("right password as JSON = %d %s, want 200", resp.StatusCode, body)
	}
	// A success clears the failures: two failures, a success, then three more
	// failures are allowed before the lockout.
	for i := range 2 {
		if resp, body := postLogin(t, srv.URL, formType, wrong); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong password %d = %d %s, want 401", i+1, resp.StatusCode, body)
		}
	}
	if resp, _ := postLogin(t, srv.URL, formType, right); resp.StatusCode != http.StatusOK {
		t.Fatalf("right password after 2 failures = %d, want 200", resp.StatusCode)
	}
	for i := range 3 {
		if resp, body := postLogin(t, srv.URL, "application/json", `{"username":"demo","password":"nope"}`); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong password %d after a success = %d %s, want 401", i+1, resp.StatusCode, body)
		}
	}
	resp, body := postLogin(t, srv.URL, formType, wrong)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("4th wrong password = %d %s, want 429", resp.StatusCode, body)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 15*60 {
		t.Errorf("locked out: Retry-After %q, want 1..900 seconds", resp.Header.Get("Retry-After"))
	}
	// The 429 answers JSON, like the 200 and the 401.
	var refusal struct {
		Error      string  `json:"error"`
		RetryAfter float64 `json:"retry_after_seconds"`
	}
	if err := json.Unmarshal([]byte(body), &refusal); err != nil || refusal.Error == "" || refusal.RetryAfter < 1 {
		t.Errorf("locked out: body %q (%v), want JSON with error and retry_after_seconds", body, err)
	}
	// Locked out: even the right password is refused, unchecked.
	if resp, _ := postLogin(t, srv.URL, formType, right); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("right password while locked out = %d, want 429", resp.StatusCode)
	}
	// Another username is not locked.
	if resp, _ := postLogin(t, srv.URL, formType, "username=alice&password=x"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("other user = %d, want 401", resp.StatusCode)
	}
	// A request without a password check is not a guess.
	if resp, _ := postLogin(t, srv.URL, "application/json", `{"username":`); resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
		t.Errorf("malformed JSON = %d, want an error status other than 200/401", resp.StatusCode)
	}
	if resp, _ := get(t, srv.URL+"/login"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /login = %d, want 405", resp.StatusCode)
	}
}

func TestServeTrustedProxies(t *testing.T) {
	ping := func(base, xff string) int {
		req, _ := http.NewRequest("GET", base+"/api/ping", nil)
		req.Header.Set("X-Forwarded-For", xff)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Behind a trusted proxy (the test client on 127.0.0.1), each forwarded
	// client has its own bucket.
	srv, _ := newTestDemo(t, "-api-limit", "1/1h", "-trusted-proxies", "127.0.0.0/8")
	if a, b, a2 := ping(srv.URL, "203.0.113.1"), ping(srv.URL, "203.0.113.2"), ping(srv.URL, "203.0.113.1"); a != 200 || b != 200 || a2 != 429 {
		t.Errorf("pings from two forwarded clients = %d, %d, then %d; want 200, 200, 429", a, b, a2)
	}
	// Without -trusted-proxies the header is ignored: one bucket for the peer.
	srv2, _ := newTestDemo(t, "-api-limit", "1/1h")
	if a, b := ping(srv2.URL, "203.0.113.1"), ping(srv2.URL, "203.0.113.2"); a != 200 || b != 429 {
		t.Errorf("untrusted X-Forwarded-For: %d, %d; want 200, 429", a, b)
	}
}

func TestServeMetrics(t *testing.T) {
	srv, _ := newTestDemo(t, "-api-limit", "2/1h")
	for range 3 {
		get(t, srv.URL+"/api/ping")
	}
	postLogin(t, srv.URL, formType, "username=demo&password=wrong")
	resp, body := get(t, srv.URL+"/metrics")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		`ratelimit_decisions_total{algorithm="token_bucket",limiter="api",outcome="allowed"} 2`,
		`ratelimit_decisions_total{algorithm="token_bucket",limiter="api",outcome="denied"} 1`,
		`limiter="login.user"`,
		`ratelimit_redis_duration_seconds_count{algorithm="token_bucket",limiter="api"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, body)
		}
	}
	// The key (the client IP, the username) never appears.
	for _, secret := range []string{"127.0.0.1", "demo"} {
		if strings.Contains(body, secret) {
			t.Errorf("/metrics contains the key %q", secret)
		}
	}
	// Only the demo's own registry: no Go runtime series from the default one.
	if strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics serves the default registry")
	}
}

// TestServeSeveralRatesAndShadow: -api-limit takes several rates that every
// request must fit in, and -shadow serves what the limit would refuse.
func TestServeSeveralRatesAndShadow(t *testing.T) {
	srv, d := newTestDemo(t, "-api-limit", "5/s,3/min")
	if got := len(d.cfg.apiLimit); got != 2 {
		t.Errorf("-api-limit 5/s,3/min parsed as %d rates, want 2", got)
	}
	codes := map[int]int{}
	for range 5 {
		resp, _ := get(t, srv.URL+"/api/ping")
		codes[resp.StatusCode]++
	}
	if codes[http.StatusOK] != 3 || codes[http.StatusTooManyRequests] != 2 {
		t.Errorf("5 pings under 5/s and 3/min: %v, want 3 served and 2 refused (the minute binds)", codes)
	}
	srv, _ = newTestDemo(t, "-api-limit", "1/min", "-shadow")
	for i := range 3 {
		if resp, _ := get(t, srv.URL+"/api/ping"); resp.StatusCode != http.StatusOK {
			t.Errorf("shadow ping %d: status %d, want 200", i, resp.StatusCode)
		}
	}
	if _, page := get(t, srv.URL+"/"); !strings.Contains(page, "shadow mode") {
		t.Errorf("the page does not say shadow mode is on")
	}
	var banner strings.Builder
	_, d = newTestDemo(t, "-api-limit", "10/s,1000/d", "-shadow")
	d.printBanner(&banner, "http://x", &conn{desc: "test"})
	if !strings.Contains(banner.String(), "10/") || !strings.Contains(banner.String(), "1000/") || !strings.Contains(banner.String(), "shadow mode") {
		t.Errorf("banner does not say what is configured:\n%s", banner.String())
	}
}
