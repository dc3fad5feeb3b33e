package login

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit/clientip"
	"github.com/seed68425060/ratelimit/internal/redistest"
)

// app is a login handler that verifies passwords with a counting verifier and
// answers 200, 401, or a status forced by the "status" field.
type app struct {
	v       *verifier
	calls   atomic.Int64
	limited atomic.Value // the username from Username(ctx)
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.calls.Add(1)
	if u, ok := Username(r.Context()); ok {
		a.limited.Store(u)
	}
	var user, pass, status string
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var body struct{ Username, Password, Status string }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		user, pass, status = body.Username, body.Password, body.Status
	} else {
		user, pass, status = r.FormValue("username"), r.FormValue("password"), r.FormValue("status")
	}
	if status != "" {
		code := map[string]int{"400": 400, "500": 500, "302": 302}[status]
		w.WriteHeader(code)
		return
	}
	if !a.v.verify(user, pass) {
		http.Error(w, "wrong username or password", http.StatusUnauthorized)
		return
	}
	w.Write([]byte("welcome"))
}

func formRequest(ip string, v url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(v.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.RemoteAddr = ip + ":4321"
	return r
}

func jsonRequest(ip, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json; charset=utf-8")
	r.RemoteAddr = ip + ":4321"
	return r
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func newHTTP(t *testing.T, c redis.Scripter, cfg Config) (*HTTP, *app, http.Handler) {
	t.Helper()
	a := &app{v: &verifier{password: map[string]string{"alice": "right"}}}
	h := &HTTP{Guard: newGuard(t, c, cfg)}
	return h, a, h.Handler(a)
}

var smallLimits = Config{
	User:     Limit{Limit: 3, Period: 24 * time.Hour, BlockFor: 90 * time.Minute},
	IP:       Limit{Limit: 10, Period: 24 * time.Hour},
	Pair:     Limit{Limit: 10, Period: 24 * time.Hour},
	KnownFor: -1,
}

func TestHTTPRefusal(t *testing.T) {
	forEachBackend(t, func(t *testing.T, c *redis.Client) {
		_, a, h := newHTTP(t, c, smallLimits)
		for i := range 3 {
			w := serve(h, formRequest("192.0.2.1", url.Values{"username": {"alice"}, "password": {"x"}}))
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("wrong password %d: status %d, want 401", i, w.Code)
			}
		}
		w := serve(h, formRequest("192.0.2.1", url.Values{"username": {"alice"}, "password": {"right"}}))
		if w.Code != http.StatusTooManyRequests {
			t.Fatalf("after 3 failures: status %d, want 429", w.Code)
		}
		if got := w.Header().Get("Retry-After"); got != "5400" {
			t.Errorf("Retry-After = %q, want 5400 (90 minutes)", got)
		}
		for name := range w.Header() {
			if strings.Contains(strings.ToLower(name), "ratelimit") {
				t.Errorf("refusal sends %s: login routes must not show the budget", name)
			}
		}
		if got := a.calls.Load(); got != 3 {
			t.Errorf("handler calls = %d, want 3 (not called when refused)", got)
		}
	})
}

func TestRetryAfterRoundsUp(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{{0, "1"}, {time.Microsecond, "1"}, {time.Second, "1"}, {time.Second + time.Microsecond, "2"}, {90 * time.Minute, "5400"}} {
		w := httptest.NewRecorder()
		refuse(w, http.StatusTooManyRequests, tt.d)
		if got := w.Header().Get("Retry-After"); got != tt.want {
			t.Errorf("refuse(%v): Retry-After = %q, want %q", tt.d, got, tt.want)
		}
	}
}

// Existing and unknown usernames get byte-identical refusals.
func TestHTTPSameAnswerForUnknownUsers(t *testing.T) {
	_, _, h := newHTTP(t, backends[0].client(t), smallLimits)
	answers := map[string]string{}
	for _, user := range []string{"alice", "nobody"} {
		var w *httptest.ResponseRecorder
		for range 4 {
			w = serve(h, formRequest("192.0.2.1", url.Values{"username": {user}, "password": {"x"}}))
		}
		var b strings.Builder
		w.Result().Header.Write(&b)
		answers[user] = w.Result().Status + "\n" + b.String() + w.Body.String()
	}
	if answers["alice"] != answers["nobody"] {
		t.Errorf("refusals differ:\nalice:\n%s\nnobody:\n%s", answers["alice"], answers["nobody"])
	}
}

// Success (2xx, 3xx) gives back its own units and forgives the pair; 401/403 count; anything else gives
// the units back.
func TestHTTPStatusReporting(t *testing.T) {
	forEachBackend(t, func(t *testing.T, c *redis.Client) {
		hp, a, h := newHTTP(t, c, smallLimits)
		g := hp.Guard
		const ip = "192.0.2.5"
		post := func(v url.Values) int { return serve(h, formRequest(ip, v)).Code }
		post(url.Values{"username": {"alice"}, "password": {"x"}})
		post(url.Values{"username": {"alice"}, "password": {"x"}})
		if got := remaining(t, g, ScopeUser, "alice", ip); got != 1 {
			t.Fatalf("after two 401s: user remaining %d, want 1", got)
		}
		for _, s := range []string{"400", "500"} {
			if code := post(url.Values{"username": {"alice"}, "status": {s}}); strconv.Itoa(code) != s {
				t.Fatalf("status %s: got %d", s, code)
			}
			if got := remaining(t, g, ScopeUser, "alice", ip); got != 1 {
				t.Errorf("after a %s: user remaining %d, want 1 (given back)", s, got)
			}
		}
		if code := post(url.Values{"username": {"alice"}, "status": {"302"}}); code != 302 {
			t.Fatalf("302: got %d", code)
		}
		if got := remaining(t, g, ScopeUser, "alice", ip); got != 1 {
			t.Errorf("after a 302: user remaining %d, want 1 (a redirect is a success: its own unit comes back, the two failures stay)", got)
		}
		if got := remaining(t, g, ScopeIP, "alice", ip); got != 8 {
			t.Errorf("after a 302: IP remaining %d, want 8 (two failures stay)", got)
		}
		if u, _ := a.limited.Load().(string); u != "alice" {
			t.Errorf("Username(ctx) = %q, want alice", u)
		}
	})
}

func TestHTTPJSONAndBody(t *testing.T) {
	forEachBackend(t, func(t *testing.T, c *redis.Client) {
		_, a, h := newHTTP(t, c, smallLimits)
		// The wrapped handler gets the whole body back.
		w := serve(h, jsonRequest("192.0.2.1", `{"username":" Alice ","password":"right"}`))
		if w.Code != http.StatusOK {
			t.Fatalf("JSON login: %d %s, want 200", w.Code, w.Body)
		}
		for range 3 {
			serve(h, jsonRequest("192.0.2.1", `{"username":"alice","password":"x"}`))
		}
		// encoding/json fills Username from the last case-insensitive match:
		// the helper must limit that one, not the exact-case decoy.
		calls := a.calls.Load()
		w = serve(h, jsonRequest("192.0.2.2", `{"username":"decoy","USERNAME":"alice","password":"right"}`))
		if w.Code != http.StatusTooManyRequests || a.calls.Load() != calls {
			t.Errorf("decoy field: %d, want 429 without calling the handler", w.Code)
		}
		// A username only in the query is what FormValue reads too.
		r := formRequest("192.0.2.3", url.Values{"password": {"right"}})
		r.URL.RawQuery = "username=ALICE"
		if w := serve(h, r); w.Code != http.StatusTooManyRequests {
			t.Errorf("username in the query: %d, want 429", w.Code)
		}
		// Multipart forms.
		var b strings.Builder
		b.WriteString("--X\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalice\r\n--X--\r\n")
		r = httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(b.String()))
		r.Header.Set("Content-Type", "multipart/form-data; boundary=X")
		r.RemoteAddr = "192.0.2.4:1"
		if w := serve(h, r); w.Code != http.StatusTooManyRequests {
			t.Errorf("multipart: %d, want 429", w.Code)
		}
	})
}

func TestHTTPBodyTooLarge(t *testing.T) {
	hp, a, h := newHTTP(t, backends[0].client(t), smallLimits)
	hp.MaxBodyBytes = 100
	h = hp.Handler(a)
	big := url.Values{"username": {"alice"}, "password": {strings.Repeat("x", 200)}}
	if w := serve(h, formRequest("192.0.2.1", big)); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("large body: %d, want 413", w.Code)
	}
	if a.calls.Load() != 0 {
		t.Error("handler called for a body over MaxBodyBytes")
	}
	if got := remaining(t, hp.Guard, ScopeIP, "alice", "192.0.2.1"); got != 10 {
		t.Errorf("IP remaining %d, want 10", got)
	}
}

// The client key comes from clientip.Config: forged headers are ignored
// without trusted proxies, IPv6 addresses in one /64 share a budget.
func TestHTTPClientKey(t *testing.T) {
	forEachBackend(t, func(t *testing.T, c *redis.Client) {
		cfg := smallLimits
		cfg.IP = Limit{Limit: 2, Period: 24 * time.Hour}
		hp, _, _ := newHTTP(t, c, cfg)
		a := &app{v: &verifier{}}
		h := hp.Handler(a)
		fail := func(remote, xff, user string) int {
			r := formRequest("0.0.0.0", url.Values{"username": {user}, "password": {"x"}})
			r.RemoteAddr = remote
			if xff != "" {
				r.Header.Set("X-Forwarded-For", xff)
			}
			return serve(h, r).Code
		}
		// Untrusted peer: rotating X-Forwarded-For gets no fresh budget.
		fail("203.0.113.1:1", "1.1.1.1", "u1")
		fail("203.0.113.1:1", "2.2.2.2", "u2")
		if got := fail("203.0.113.1:1", "3.3.3.3", "u3"); got != http.StatusTooManyRequests {
			t.Errorf("forged XFF: %d, want 429 (one budget for the peer)", got)
		}
		// IPv6: one /64.
		fail("[2001:db8:1:2::1]:1", "", "u1")
		fail("[2001:db8:1:2::2]:1", "", "u2")
		if got := fail("[2001:db8:1:2:ffff::3]:1", "", "u3"); got != http.StatusTooManyRequests {
			t.Errorf("third address in the /64: %d, want 429", got)
		}
		// Behind a trusted proxy, the address it appends is the client.
		hp.ClientIP = clientip.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
		h = hp.Handler(a)
		fail("10.0.0.1:1", "198.51.100.1", "u1")
		if got := fail("10.0.0.2:1", "198.51.100.2", "u2"); got != http.StatusUnauthorized {
			t.Errorf("another client behind the proxy: %d, want 401 (its own budget)", got)
		}
		fail("10.0.0.1:1", "198.51.100.1", "u3")
		if got := fail("10.0.0.1:1", "6.6.6.6, 198.51.100.1", "u4"); got != http.StatusTooManyRequests {
			t.Errorf("client prepending a forged entry: %d, want 429", got)
		}
	})
}

func TestHTTPFailClosed(t *testing.T) {
	s := redistest.Start(t)
	_, a, h := newHTTP(t, s.Client(t), Config{Timeout: 200 * time.Millisecond})
	s.Kill()
	w := serve(h, formRequest("192.0.2.1", url.Values{"username": {"alice"}, "password": {"right"}}))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" {
		t.Errorf("Redis down: %d Retry-After %q, want 503 with Retry-After 1", w.Code, w.Header().Get("Retry-After"))
	}
	if a.calls.Load() != 0 {
		t.Error("handler called while Redis was down")
	}
}

func TestHTTPNilGuard(t *testing.T) {
	a := &app{v: &verifier{}}
	w := serve((&HTTP{}).Handler(a), formRequest("192.0.2.1", url.Values{"username": {"alice"}}))
	if w.Code != http.StatusServiceUnavailable || a.calls.Load() != 0 {
		t.Errorf("nil Guard: %d, want 503 without calling the handler", w.Code)
	}
}
