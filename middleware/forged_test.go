package middleware_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit"
	"github.com/seed68425060/ratelimit/clientip"
	"github.com/seed68425060/ratelimit/internal/redistest"
	"github.com/seed68425060/ratelimit/middleware"
)

// Loopback peers: the reverse proxy, and two clients that reach the server
// directly. On the real backend they are the source addresses of real TCP
// connections.
const (
	proxyPeer    = "127.0.0.1"
	attackerPeer = "127.0.0.2"
	victimPeer   = "127.0.0.3"
)

// sender sends one GET from the loopback address peer with the given headers
// and returns the status.
type sender func(t *testing.T, peer string, hdr http.Header) int

// burst is every client's budget in the forged-header tests.
const burst = 3

// forgedHeaderScenarios run on every backend; send is bound to a handler made
// by mw with Limit burst per hour.
func forgedHeaderScenarios(t *testing.T, newSend func(t *testing.T, cfg middleware.Config) sender) {
	t.Run("direct: forged headers give no fresh bucket", func(t *testing.T) {
		send := newSend(t, middleware.Config{})
		admitted := 0
		for i := 0; i < 50; i++ {
			forged := fmt.Sprintf("198.51.100.%d", i)
			hdr := http.Header{
				"X-Forwarded-For": {forged},
				"Forwarded":       {"for=" + forged},
				"X-Real-Ip":       {forged},
			}
			if send(t, attackerPeer, hdr) == http.StatusOK {
				admitted++
			}
		}
		if admitted != burst {
			t.Errorf("attacker with 50 forged addresses got %d requests admitted, want %d", admitted, burst)
		}
	})
	t.Run("direct: forged victim address does not exhaust the victim", func(t *testing.T) {
		send := newSend(t, middleware.Config{})
		for i := 0; i < 20; i++ {
			send(t, attackerPeer, http.Header{"X-Forwarded-For": {victimPeer}, "Forwarded": {"for=" + victimPeer}})
		}
		for i := 0; i < burst; i++ {
			if got := send(t, victimPeer, nil); got != http.StatusOK {
				t.Fatalf("victim request %d: status %d, want 200", i+1, got)
			}
		}
	})

	trusted := middleware.Config{ClientIP: clientip.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix(proxyPeer + "/32")}}}
	// viaProxy is what the proxy forwards: the client's own X-Forwarded-For
	// lines, with the client's real address appended to the last one.
	viaProxy := func(real string, clientXFF ...string) http.Header {
		lines := append([]string(nil), clientXFF...)
		if len(lines) == 0 {
			lines = []string{real}
		} else {
			lines[len(lines)-1] += ", " + real
		}
		return http.Header{"X-Forwarded-For": lines}
	}
	t.Run("proxy: forged leftmost entries give no fresh bucket", func(t *testing.T) {
		send := newSend(t, trusted)
		admitted := 0
		for i := 0; i < 50; i++ {
			hdr := viaProxy("192.0.2.66", fmt.Sprintf("198.51.100.%d", i), fmt.Sprintf("10.0.0.%d", i))
			hdr.Set("Forwarded", fmt.Sprintf("for=198.51.100.%d", i)) // not the configured header
			if send(t, proxyPeer, hdr) == http.StatusOK {
				admitted++
			}
		}
		if admitted != burst {
			t.Errorf("attacker behind the proxy with forged entries got %d admitted, want %d", admitted, burst)
		}
	})
	t.Run("proxy: forged victim address does not exhaust the victim", func(t *testing.T) {
		send := newSend(t, trusted)
		for i := 0; i < 20; i++ {
			send(t, proxyPeer, viaProxy("192.0.2.66", "203.0.113.7"))
			send(t, proxyPeer, viaProxy("192.0.2.66", "203.0.113.7", "203.0.113.7"))
			send(t, proxyPeer, http.Header{"X-Forwarded-For": {"192.0.2.66"}, "Forwarded": {"for=203.0.113.7"}})
		}
		for i := 0; i < burst; i++ {
			if got := send(t, proxyPeer, viaProxy("203.0.113.7")); got != http.StatusOK {
				t.Fatalf("victim request %d through the proxy: status %d, want 200", i+1, got)
			}
		}
	})
	t.Run("proxy bypassed: headers from an untrusted peer are ignored", func(t *testing.T) {
		send := newSend(t, trusted)
		for i := 0; i < 20; i++ {
			send(t, attackerPeer, http.Header{"X-Forwarded-For": {"203.0.113.7"}})
		}
		for i := 0; i < burst; i++ {
			if got := send(t, proxyPeer, viaProxy("203.0.113.7")); got != http.StatusOK {
				t.Fatalf("victim request %d: status %d, want 200", i+1, got)
			}
		}
		if got := send(t, attackerPeer, http.Header{"X-Forwarded-For": {"198.51.100.200"}}); got != http.StatusTooManyRequests {
			t.Errorf("attacker's direct bucket after 20 requests: status %d, want 429", got)
		}
	})
	t.Run("proxy: IPv6 rotation inside a /64 gives no fresh bucket", func(t *testing.T) {
		send := newSend(t, trusted)
		admitted := 0
		for i := 0; i < 50; i++ {
			if send(t, proxyPeer, viaProxy(fmt.Sprintf("2001:db8:1:2::%x", i+1))) == http.StatusOK {
				admitted++
			}
		}
		if admitted != burst {
			t.Errorf("50 addresses in one /64 got %d admitted, want %d", admitted, burst)
		}
		if got := send(t, proxyPeer, viaProxy("2001:db8:1:3::1")); got != http.StatusOK {
			t.Errorf("neighbouring /64: status %d, want 200", got)
		}
	})
}

// limitedHandler builds the handler under test on rdb.
func limitedHandler(t *testing.T, rdb redis.Scripter, cfg middleware.Config) http.Handler {
	t.Helper()
	cfg.Limiters = []*ratelimit.Limiter{newLimiter(t, rdb, ratelimit.Config{
		Name: "per-client", Limit: burst, Period: time.Hour, KeyPrefix: "forged-" + fmt.Sprint(time.Now().UnixNano()) + ":",
	})}
	cfg.OnFailure = ratelimit.FailClosed
	return newMiddleware(t, cfg).Handler(&okHandler{})
}

func TestForgedHeadersMiniredis(t *testing.T) {
	forgedHeaderScenarios(t, func(t *testing.T, cfg middleware.Config) sender {
		_, rdb := newMini(t)
		h := limitedHandler(t, rdb, cfg)
		return func(t *testing.T, peer string, hdr http.Header) int {
			return do(h, net.JoinHostPort(peer, "40000"), hdr).Code
		}
	})
}

// TestForgedHeadersReal serves the middleware over real TCP (httptest) on a real
// redis-server; the clients connect from distinct loopback addresses.
func TestForgedHeadersReal(t *testing.T) {
	s := redistest.Start(t)
	rdb := s.Client(t)
	forgedHeaderScenarios(t, func(t *testing.T, cfg middleware.Config) sender {
		srv := httptest.NewServer(limitedHandler(t, rdb, cfg))
		t.Cleanup(srv.Close)
		return func(t *testing.T, peer string, hdr http.Header) int {
			t.Helper()
			tr := &http.Transport{
				DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(peer)}, Timeout: 5 * time.Second}).DialContext,
				DisableKeepAlives: true,
			}
			defer tr.CloseIdleConnections()
			req, err := http.NewRequest(http.MethodGet, srv.URL+"/api", nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range hdr {
				req.Header[k] = v
			}
			resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
			if err != nil {
				t.Fatalf("GET from %s: %v", peer, err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
	})
}
