package login

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit"
	"github.com/seed68425060/ratelimit/internal/faultproxy"
	"github.com/seed68425060/ratelimit/internal/redistest"
)

// TestOwnerSuccessHandsNoGuesses: an attacker guesses one account from a
// fresh address every minute for a day while the owner logs in every 10
// minutes. The owner's successes must not refill the per-username budget
// (they used to reset it: every guess got through, 1,440 a day).
func TestOwnerSuccessHandsNoGuesses(t *testing.T) {
	mr := miniredis.RunT(t)
	c := redis.NewClient(redistest.Options(mr.Addr()))
	defer c.Close()
	g := newGuard(t, c, Config{}) // the defaults
	v := &verifier{password: map[string]string{"alice": "owner-pass"}}
	guesses := 0
	for minute := 0; minute < 24*60; minute++ {
		ip := fmt.Sprintf("198.51.%d.%d", minute/250, minute%250)
		if d, _ := login(t, g, v, "alice", "guess", ip); d.Allowed {
			guesses++
		}
		if minute%10 == 0 {
			login(t, g, v, "alice", "owner-pass", "192.0.2.1")
		}
		mr.FastForward(time.Minute)
	}
	// 10 at once, then the 24h refill (10 more over the day) at most.
	if guesses > 20 {
		t.Errorf("the attacker verified %d guesses in a day while the owner logged in every 10 minutes, want <= 20", guesses)
	}
	t.Logf("attacker guesses in 24h at the defaults, owner logging in every 10 minutes: %d", guesses)
}

// TestSuccessCreditsOnlyItsAccount: in an application with case-sensitive
// usernames, an attacker who owns "ALICE" (or "ſam") and logs into it gains
// nothing for "alice" ("sam"): no known pair, no forgiven pair budget.
func TestSuccessCreditsOnlyItsAccount(t *testing.T) {
	for _, tt := range []struct{ own, victim string }{{"ALICE", "alice"}, {"ſam", "sam"}} {
		t.Run(tt.own, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, c *redis.Client) {
				g := newGuard(t, c, Config{Normalize: strings.TrimSpace}) // case-sensitive accounts
				const ip = "203.0.113.9"
				guesses := 0
				for i := 0; i < 50; i++ {
					a, d, err := g.Begin(context.Background(), tt.own, ip)
					if err != nil {
						t.Fatal(err)
					}
					if d.Allowed {
						a.Succeeded(context.Background()) // the attacker's own account
					}
					a, d, err = g.Begin(context.Background(), tt.victim, ip)
					if err != nil {
						t.Fatal(err)
					}
					if d.Known {
						t.Fatalf("attempt %d on %q counts as a known pair after logging into %q", i, tt.victim, tt.own)
					}
					if d.Allowed {
						guesses++
						a.Failed(context.Background())
					}
				}
				if guesses > DefaultPair.Limit {
					t.Errorf("%d guesses on %q from one address, want <= the pair budget %d", guesses, tt.victim, DefaultPair.Limit)
				}
			})
		})
	}
}

// TestNormalizeDefault: the default keeps today's folding.
func TestNormalizeDefault(t *testing.T) {
	forEachBackend(t, func(t *testing.T, c *redis.Client) {
		g := newGuard(t, c, Config{})
		v := &verifier{password: map[string]string{"alice": "p"}}
		if _, ok := login(t, g, v, " Alice ", "p", "192.0.2.1"); !ok {
			t.Fatal("the owner could not log in")
		}
		if d, _ := login(t, g, v, "ALICE", "x", "192.0.2.1"); !d.Known {
			t.Errorf("ALICE after Alice from the same address: %+v, want a known pair (the default folds case)", d)
		}
	})
}

// TestMemoryPerFailedAttempt measures the Redis memory an attempt with a fresh
// username costs, and how long it stays, at the defaults.
func TestMemoryPerFailedAttempt(t *testing.T) {
	s := redistest.Start(t)
	c := s.Client(t)
	ctx := context.Background()
	g := newGuard(t, c, Config{})
	v := &verifier{}
	n := 0 // attempts made: the IP budget (100 at once) refuses the rest
	for i := 0; i < 200; i++ {
		if d, _ := login(t, g, v, fmt.Sprintf("user%06d@example.com", i), "guess", "203.0.113.7"); d.Allowed {
			n++
		}
	}
	keys, err := c.Keys(ctx, "rl:login.*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var longest time.Duration
	var total int64
	for _, k := range keys {
		ttl := c.PTTL(ctx, k).Val()
		if ttl < 0 {
			t.Errorf("key %s has no TTL", k)
		}
		if strings.Contains(k, ".ip:") {
			continue // one address's budget, not per attempt
		}
		longest = max(longest, ttl)
		total += c.MemoryUsage(ctx, k).Val()
	}
	per := total / int64(n)
	t.Logf("one failed attempt with a fresh username: %d bytes (MEMORY USAGE of its user and pair keys), %d keys for %d attempts, the longest kept %v", per, len(keys), n, longest.Round(time.Minute))
	// A user key (10 per 24h: 2.4h of debt) and a pair key (5 per 24h: 4.8h)
	// live until their state is fresh plus a sixteenth of a refill.
	if longest > 6*time.Hour+30*time.Minute {
		t.Errorf("a key of a single failed attempt lives %v, want at most 6h30m (what it protects, 4.8h, + 1.5h)", longest)
	}
	if per > 400 {
		t.Errorf("%d bytes per failed attempt, want <= 400", per)
	}
}

// TestBeginWithinTimeout: on a paused Redis, Begin ends within one Timeout
// in all (it took 401ms for a Timeout of 200ms: two calls in turn), and
// refuses (FailClosed).
func TestBeginWithinTimeout(t *testing.T) {
	s := redistest.Start(t)
	p, err := faultproxy.Start(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := redis.NewClient(redistest.Options(p.Addr))
	defer c.Close()
	const timeout = 200 * time.Millisecond
	g := newGuard(t, c, Config{Timeout: timeout})
	if _, _, err := g.Begin(context.Background(), "alice", "192.0.2.1"); err != nil { // connect, load scripts
		t.Fatal(err)
	}
	p.DelayOpenReplies(time.Minute)
	start := time.Now()
	a, d, err := g.Begin(context.Background(), "alice", "192.0.2.1")
	took := time.Since(start)
	if err != nil || a != nil || d.Outcome != ratelimit.OutcomeFailedClosed {
		t.Errorf("Begin on a paused Redis = %v, %+v, %v; want refused, failed closed", a, d, err)
	}
	if took > timeout+timeout/2 {
		t.Errorf("Begin took %v with Timeout %v, want about one Timeout", took, timeout)
	}
}

// TestNewReportsEachProblemOnce: a client with default options fails New
// once per problem, not once per internal limiter.
func TestNewReportsEachProblemOnce(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	_, err := New(c, Config{})
	if err == nil {
		t.Fatal("New accepted a client that retries")
	}
	for _, opt := range []string{"MaxRetries", "ContextTimeoutEnabled"} {
		if n := strings.Count(err.Error(), opt+" ="); n != 1 {
			t.Errorf("New's error names %s %d times, want once:\n%v", opt, n, err)
		}
	}
}
