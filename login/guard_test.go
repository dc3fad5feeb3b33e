package login

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit"
	"github.com/seed68425060/ratelimit/internal/redistest"
)

// backend is a Redis for a test: miniredis (always) or a real redis-server.
// start returns a client and a function that moves the server's clock to d
// after since: FastForward(d) on miniredis (whose TTLs, the limiters' clock,
// move only then), a sleep on a real server.
type backend struct {
	name  string
	start func(t *testing.T) (*redis.Client, passFunc)
}

type passFunc func(since time.Time, d time.Duration)

var backends = []backend{
	{"miniredis", func(t *testing.T) (*redis.Client, passFunc) {
		mr := miniredis.RunT(t)
		c := redis.NewClient(redistest.Options(mr.Addr()))
		t.Cleanup(func() { c.Close() })
		return c, func(_ time.Time, d time.Duration) { mr.FastForward(d) }
	}},
	{"redis", func(t *testing.T) (*redis.Client, passFunc) {
		return redistest.Start(t).Client(t), func(since time.Time, d time.Duration) { time.Sleep(time.Until(since.Add(d))) }
	}},
}

// client returns a client of the backend.
func (b backend) client(t *testing.T) *redis.Client {
	c, _ := b.start(t)
	return c
}

// forEachBackend runs f on every backend.
func forEachBackend(t *testing.T, f func(t *testing.T, c *redis.Client)) {
	forEachBackendClock(t, func(t *testing.T, c *redis.Client, _ passFunc) { f(t, c) })
}

// forEachBackendClock runs f on every backend, with the backend's way to let
// time pass.
func forEachBackendClock(t *testing.T, f func(t *testing.T, c *redis.Client, pass passFunc)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			c, pass := b.start(t)
			f(t, c, pass)
		})
	}
}

// newGuard returns a Guard for tests. Unless the test sets a Timeout, calls
// get 5s: under -race on a loaded machine the default 500ms can expire, and
// the Guard would then (correctly) fail closed.
func newGuard(t *testing.T, c redis.Scripter, cfg Config) *Guard {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	g, err := New(c, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return g
}

// verifier is a fake password store that counts verifications.
type verifier struct {
	calls    atomic.Int64
	password map[string]string // normalised username -> password
}

func (v *verifier) verify(username, password string) bool {
	v.calls.Add(1)
	p, ok := v.password[NormalizeUsername(username)]
	return ok && p == password
}

// login runs one attempt the way an application does: Begin, verify, report.
// It returns Begin's decision and whether the password was accepted.
func login(t *testing.T, g *Guard, v *verifier, username, password, ip string) (Decision, bool) {
	t.Helper()
	ctx := context.Background()
	a, d, err := g.Begin(ctx, username, ip)
	if err != nil {
		t.Fatalf("Begin(%q, %q): %v", username, ip, err)
	}
	if !d.Allowed {
		if a != nil {
			t.Fatalf("Begin(%q, %q) refused with a non-nil Attempt", username, ip)
		}
		return d, false
	}
	ok := v.verify(username, password)
	if ok {
		err = a.Succeeded(ctx)
	} else {
		err = a.Failed(ctx)
	}
	if err != nil {
		t.Fatalf("report(%q, %q): %v", username, ip, err)
	}
	return d, ok
}

// remaining is the budget left in scope s for (username, ip), read with Peek.
func remaining(t *testing.T, g *Guard, s Scope, username, ip string) int {
	t.Helper()
	lim, key, _ := g.scope(g.attempt(username, ip), s)
	r, err := lim.Peek(context.Background(), key)
	if err != nil {
		t.Fatalf("Peek(%v): %v", s, err)
	}
	if r.Locked() {
		return 0
	}
	return r.Remaining
}

func TestNewConfig(t *testing.T) {
	c := redis.NewClient(redistest.Options("127.0.0.1:1"))
	defer c.Close()
	g, err := New(c, Config{})
	if err != nil {
		t.Fatalf("New(Config{}): %v", err)
	}
	got := g.Config()
	if got.Name != DefaultName || got.User != DefaultUser || got.IP != DefaultIP || got.Pair != DefaultPair ||
		got.EscalationMemory != DefaultEscalationMemory || got.KnownFor != DefaultKnownFor || got.OnFailure != ratelimit.FailClosed {
		t.Errorf("New(Config{}).Config() = %+v, want the defaults", got)
	}
	for _, l := range []*ratelimit.Limiter{g.ip, g.user, g.pair} {
		if p := l.Config().OnFailure; p != ratelimit.FailClosed {
			t.Errorf("limiter %s OnFailure = %v, want closed", l.Config().Name, p)
		}
	}
	if n := g.user.Config().Name; n != "login.user" {
		t.Errorf("user limiter name = %q, want login.user", n)
	}

	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error, each naming a field
	}{
		{"name", Config{Name: "Login Form"}, []string{`Config.Name = "Login Form"`}},
		{"long name", Config{Name: strings.Repeat("a", 57)}, []string{"Config.Name"}},
		{"user limit", Config{User: Limit{Period: time.Hour}}, []string{"Config.User.Limit = 0"}},
		{"ip period", Config{IP: Limit{Limit: 3}}, []string{"Config.IP.Period = 0s"}},
		{"pair block", Config{Pair: Limit{Limit: 3, Period: time.Hour, BlockFor: -1}}, []string{"Config.Pair.BlockFor = -1ns"}},
		{"escalation without lockout", Config{User: Limit{Limit: 3, Period: time.Hour, MaxBlockFor: time.Hour}}, []string{"Config.User.MaxBlockFor = 1h0m0s needs Config.User.BlockFor > 0"}},
		{"memory", Config{EscalationMemory: time.Millisecond}, []string{"Config.EscalationMemory = 1ms"}},
		{"known", Config{KnownFor: time.Nanosecond}, []string{"Config.KnownFor = 1ns"}},
		{"timeout", Config{Timeout: -time.Second}, []string{"Config.Timeout = -1s"}},
		{"all at once", Config{Name: "-", User: Limit{Limit: -1, Period: time.Hour}, Pair: Limit{Limit: 1}},
			[]string{"Config.Name", "Config.User.Limit = -1", "Config.Pair.Period"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(c, tt.cfg)
			if !errors.Is(err, ratelimit.ErrInvalidConfig) {
				t.Fatalf("New(%+v) = %v, want ErrInvalidConfig", tt.cfg, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New(%+v) = %q, want it to mention %q", tt.cfg, err, w)
				}
			}
		})
	}
	// The core's client check still applies.
	retrying := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true})
	defer retrying.Close()
	if _, err := New(retrying, Config{}); err == nil || !strings.Contains(err.Error(), "MaxRetries") {
		t.Errorf("New(client with retries) = %v, want a MaxRetries error", err)
	}
}

// 200 parallel wrong passwords for one account verify at most User.Limit of them.
func TestParallelWrongPasswords(t *testing.T) {
	forEachBackend(t, func(t *testing.T, c *redis.Client) {
		const limit, n = 10, 200
		g := newGuard(t, c, Config{
			User: Limit{Limit: limit, Period: 24 * time.Hour, BlockFor: time.Hour},
			IP:   Limit{Limit: 1000, Period: time.Hour},
			Pair: Limit{Limit: 1000, Period: time.Hour},
		})
		v := &verifier{password: map[string]string{"alice": "right"}}
		var refused atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ctx := context.Background()
				ip := "198.51.100." + string(rune('0'+i%10))
				a, d, err := g.Begin(ctx, "alice", ip)
				if err != nil {
					t.Errorf("Begin: %v", err)
					return
				}
				if !d.Allowed {
					refused.Add(1)
					return
				}
				if v.verify("alice", "wrong") {
					t.Error("wrong password accepted")
				}
				a.Failed(ctx)
			}()
		}
		close(start)
		wg.Wait()
		if got := v.calls.Load(); got != limit {
			t.Errorf("%d parallel wrong passwords: %d verified, want exactly %d", n, got, limit)
		}
		if got := refused.Load(); got != n-limit {
			t.Errorf("refused = %d, want %d", got, n-limit)
		}
		// The refusals took nothing from the IP budgets: each IP has 20 calls,
		// of which only the verified ones count.
		total := 0
		for i := range 10 {
			total += 1000 - remaining(t, g, ScopeIP, "", "198.51.100."+string(rune('0'+i)))
		}
		if total != limit {
			t.Errorf("IP units spent = %d, want %d (refused attempts must give theirs back)", total, limit)
		}
	})
}

// A success gives back its unit and clears the username's and the pair's
// failures, not the IP's; an attacker cannot launder an IP budget by logging
// into its own account between guesses.
func TestSuccessForgivesPairNotUserOrIP(t *testing.T) {
	forEachBackend(t, func(t *testing.T, c *redis.Client) {
		g := newGuard(t, c, Config{
			User: Limit{Limit: 5, Period: 24 * time.Hour},
			IP:   Limit{Limit: 6, Period: 24 * time.Hour},
			Pair: Limit{Limit: 4, Period: 24 * time.Hour},
		})
		v := &verifier{password: map[string]string{"alice": "a-pass", "mallory": "m-pass"}}
		const ip = "192.0.2.1"
		for range 3 {
			if d, ok := login(t, g, v, "alice", "typo", ip); !d.Allowed || ok {
				t.Fatalf("wrong password: %+v, %v", d, ok)
			}
		}
		if got := remaining(t, g, ScopeIP, "alice", ip); got != 3 {
			t.Fatalf("IP remaining after 3 failures = %d, want 3", got)
		}
		if d, ok := login(t, g, v, "alice", "a-pass", ip); !d.Allowed || !ok {
			t.Fatalf("right password: %+v, %v", d, ok)
		}
		for _, c := range []struct {
			s    Scope
			want int
		}{{ScopeUser, 2}, {ScopePair, 4}, {ScopeIP, 3}} { // the user's failures stay; the success gave back its own unit
			if got := remaining(t, g, c.s, "alice", ip); got != c.want {
				t.Errorf("after success: %v remaining = %d, want %d", c.s, got, c.want)
			}
		}

		// Laundering: guess bob's password, log into mallory, repeat. Only
		// the 3 IP units left can be spent on guesses.
		guesses := 0
		for range 10 {
			d, _ := login(t, g, v, "bob", "guess", ip)
			if !d.Allowed {
				if d.Scope != ScopeIP {
					t.Errorf("guess refused by %v, want ip", d.Scope)
				}
				break
			}
			guesses++
			if d, ok := login(t, g, v, "mallory", "m-pass", ip); d.Allowed && !ok {
				t.Fatal("mallory's own login failed")
			}
		}
		if guesses != 3 {
			t.Errorf("guesses interleaved with own logins = %d, want 3 (the IP's budget)", guesses)
		}
	})
}

// A refused attempt gives back what it took; Cancel gives back everything.
func TestRefusalAndCancelGiveBack(t *testing.T) {
	forEachBackend(t, func(t *testing.T, c *redis.Client) {
		g := newGuard(t, c, Config{
			User: Limit{Limit: 2, Period: 24 * time.Hour},
			IP:   Limit{Limit: 10, Period: 24 * time.Hour},
			Pair: Limit{Limit: 10, Period: 24 * time.Hour},
		})
		v := &verifier{}
		ctx := context.Background()
		const ip = "203.0.113.9"
		a, d, err := g.Begin(ctx, "carol", ip)
		if err != nil || !d.Allowed {
			t.Fatalf("Begin = %+v, %v", d, err)
		}
		if err := a.Cancel(ctx); err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		if err := a.Failed(ctx); err != nil { // after Cancel: no effect
			t.Fatalf("Failed after Cancel: %v", err)
		}
		for _, s := range []Scope{ScopeIP, ScopeUser, ScopePair} {
			lim, _, l := g.scope(&Attempt{}, s)
			_ = lim
			if got := remaining(t, g, s, "carol", ip); got != l.Limit {
				t.Errorf("after Cancel: %v remaining = %d, want %d", s, got, l.Limit)
			}
		}
		login(t, g, v, "carol", "x", ip)
		login(t, g, v, "carol", "x", ip)
		d, _ = login(t, g, v, "carol", "x", ip)
		if d.Allowed || d.Scope != ScopeUser || d.Outcome != ratelimit.OutcomeDenied || d.RetryAfter <= 0 {
			t.Fatalf("third failure: %+v, want refused by user with a RetryAfter", d)
		}
		if got := remaining(t, g, ScopeIP, "carol", ip); got != 8 {
			t.Errorf("IP remaining = %d, want 8 (the refused attempt gives its unit back)", got)
		}
		if got := v.calls.Load(); got != 2 {
			t.Errorf("verifications = %d, want 2", got)
		}
	})
}

// Escalation: consecutive lockouts double up to the cap, and the lock really
// lasts that long in Redis.
func TestEscalation(t *testing.T) {
	forEachBackendClock(t, func(t *testing.T, c *redis.Client, pass passFunc) {
		const base = 100 * time.Millisecond
		g := newGuard(t, c, Config{
			User:     Limit{Limit: 2, Period: 24 * time.Hour, BlockFor: base, MaxBlockFor: 350 * time.Millisecond},
			IP:       Limit{Limit: 1000, Period: time.Hour},
			Pair:     Limit{Limit: 1000, Period: time.Hour},
			KnownFor: -1,
		})
		v := &verifier{}
		want := []time.Duration{base, 2 * base, 350 * time.Millisecond, 350 * time.Millisecond}
		for i, w := range want {
			// After a lockout the budget is as spent as before it (the state is
			// kept under the lock): the next attempt starts the next lockout.
			for j := range 2 {
				if i > 0 {
					break
				}
				if d, _ := login(t, g, v, "dave", "x", "192.0.2.7"); !d.Allowed {
					t.Fatalf("lockout %d, attempt %d refused: %+v", i+1, j, d)
				}
			}
			start := time.Now() // the lock starts after this
			d, _ := login(t, g, v, "dave", "x", "192.0.2.7")
			if d.Allowed || d.Scope != ScopeUser || d.Outcome != ratelimit.OutcomeLockedOut || d.RetryAfter != w {
				t.Fatalf("lockout %d: %+v, want locked out by user for %v", i+1, d, w)
			}
			started := time.Now() // and before this
			// The lock in Redis has the escalated length: what is left of it is
			// at most w and at least w minus the time since start, give or take
			// the 1ms of Redis's clock.
			d, _ = login(t, g, v, "dave", "x", "192.0.2.8")
			if left := w - time.Since(start) - time.Millisecond; d.Allowed || d.RetryAfter > w || d.RetryAfter < left {
				t.Fatalf("lockout %d, next attempt: %+v, want refused for between %v and %v", i+1, d, left, w)
			}
			pass(started, w+5*time.Millisecond)
		}
		// The budget stays spent after the lockouts (2 per day): even the right
		// password waits, and the attempt locks again at the cap.
		v.password = map[string]string{"dave": "ok"}
		if d, ok := login(t, g, v, "dave", "ok", "192.0.2.7"); ok || d.RetryAfter != 350*time.Millisecond {
			t.Errorf("right password after the lockouts: %+v, %v; want refused, locked for the cap 350ms", d, ok)
		}
	})
}

func TestLockForTable(t *testing.T) {
	l := Limit{BlockFor: time.Minute, MaxBlockFor: 10 * time.Minute}
	for k, want := range map[int]time.Duration{1: time.Minute, 2: 2 * time.Minute, 3: 4 * time.Minute, 4: 8 * time.Minute, 5: 10 * time.Minute, maxStrikes: 10 * time.Minute} {
		if got := l.lockFor(k); got != want {
			t.Errorf("lockFor(%d) = %v, want %v", k, got, want)
		}
	}
}

// A victim under attack from other addresses still logs in from an address it
// used before; the known pair is still held to the pair budget.
func TestKnownPairBypassesUserLockout(t *testing.T) {
	forEachBackend(t, func(t *testing.T, c *redis.Client) {
		g := newGuard(t, c, Config{
			User: Limit{Limit: 3, Period: 24 * time.Hour, BlockFor: time.Hour},
			IP:   Limit{Limit: 100, Period: time.Hour},
			Pair: Limit{Limit: 2, Period: 24 * time.Hour, BlockFor: time.Hour},
		})
		v := &verifier{password: map[string]string{"erin": "secret"}}
		const home, cafe = "192.0.2.10", "192.0.2.20"
		if d, ok := login(t, g, v, "erin", "secret", home); !ok || d.Known {
			t.Fatalf("first login: %+v, %v; want success from an unknown pair", d, ok)
		}
		// The attacker locks the account from many addresses.
		for i := range 4 {
			login(t, g, v, "erin", "guess", "198.51.100."+string(rune('1'+i)))
		}
		if d, _ := login(t, g, v, "erin", "secret", cafe); d.Allowed || d.Scope != ScopeUser || !d.Locked() {
			t.Fatalf("from a new address: %+v, want locked out by user", d)
		}
		calls := v.calls.Load()
		d, ok := login(t, g, v, "erin", "secret", home)
		if !d.Allowed || !d.Known || !ok {
			t.Fatalf("from the known address: %+v, %v; want allowed as known", d, ok)
		}
		if v.calls.Load() != calls+1 {
			t.Fatal("the known login was not verified")
		}
		// Known pairs are still held to the pair budget, and their failures do
		// not spend the username's budget.
		for range 2 {
			if d, _ := login(t, g, v, "erin", "typo", home); !d.Allowed || !d.Known {
				t.Fatalf("typo from home: %+v", d)
			}
		}
		if d, _ := login(t, g, v, "erin", "typo", home); d.Allowed || d.Scope != ScopePair {
			t.Fatalf("third typo from home: %+v, want refused by pair", d)
		}
		if got := remaining(t, g, ScopeUser, "erin", home); got != 0 {
			t.Errorf("user remaining = %d, want 0 (spent by the attacker: a success never refills it)", got)
		}
		// Trust makes another address known (after a password reset, say).
		if err := g.Trust(context.Background(), "ERIN", "192.0.2.30"); err != nil {
			t.Fatal(err)
		}
		if d, _ := login(t, g, v, "erin", "secret", "192.0.2.30"); !d.Known {
			t.Errorf("after Trust: %+v, want known", d)
		}
	})
}

func TestKnownForNegativeDisablesBypass(t *testing.T) {
	g := newGuard(t, backends[0].client(t), Config{
		User:     Limit{Limit: 1, Period: 24 * time.Hour, BlockFor: time.Hour},
		KnownFor: -1,
	})
	v := &verifier{password: map[string]string{"erin": "secret"}}
	login(t, g, v, "erin", "secret", "192.0.2.10")
	login(t, g, v, "erin", "x", "198.51.100.1")
	login(t, g, v, "erin", "x", "198.51.100.1")
	if err := g.Trust(context.Background(), "erin", "192.0.2.10"); err != nil {
		t.Fatal(err)
	}
	if d, _ := login(t, g, v, "erin", "secret", "192.0.2.10"); d.Allowed || d.Known {
		t.Errorf("KnownFor < 0: %+v, want refused and not known", d)
	}
}

func TestNormalizeUsername(t *testing.T) {
	tests := []struct{ in, want string }{
		{" Alice ", "alice"},
		{"ALICE", "alice"},
		{"\t alice\n", "alice"},
		{"\u00a0Alice\u3000", "alice"}, // Unicode white space
		{"\u212Aelvin", "kelvin"},      // Kelvin sign
		{"\u017Fam", "sam"},            // long s
		{"ÉLODIE", "élodie"},
		{"ΣΊΣΥΦΟΣ", strings.Map(foldRune, "σίσυφοσ")},
		{"Straße", "straße"}, // no full folding
		{"a\xffB", "a\xffb"}, // invalid bytes kept
		{"", ""},
	}
	for _, tt := range tests {
		if got := NormalizeUsername(tt.in); got != tt.want {
			t.Errorf("NormalizeUsername(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if NormalizeUsername("\xff") == NormalizeUsername("\xfe") {
		t.Error("different invalid bytes normalise alike")
	}
}

// foldRune picks one member of each simple folding orbit: the same for every
// member, so two runes fold alike exactly when unicode.SimpleFold links them.
func TestFoldRuneOrbits(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		f := foldRune(r)
		if !strings.EqualFold(string(r), string(f)) {
			t.Fatalf("foldRune(%U) = %U, not in its orbit", r, f)
		}
		if g := foldRune(unicode.SimpleFold(r)); g != f {
			t.Fatalf("foldRune(%U) = %U but foldRune(SimpleFold) = %U", r, f, g)
		}
	}
}

// " Alice ", "ALICE" and "alice" share one budget.
func TestNormalisedUsernamesShareBudget(t *testing.T) {
	forEachBackend(t, func(t *testing.T, c *redis.Client) {
		g := newGuard(t, c, Config{User: Limit{Limit: 3, Period: 24 * time.Hour}})
		v := &verifier{}
		for i, u := range []string{" Alice ", "ALICE", "alice"} {
			if d, _ := login(t, g, v, u, "x", "192.0.2."+string(rune('1'+i))); !d.Allowed {
				t.Fatalf("%q refused early: %+v", u, d)
			}
		}
		if d, _ := login(t, g, v, "aLiCe", "x", "192.0.2.9"); d.Allowed || d.Scope != ScopeUser {
			t.Errorf("fourth spelling: %+v, want refused by user", d)
		}
		if d, _ := login(t, g, v, "alicia", "x", "192.0.2.9"); !d.Allowed {
			t.Errorf("another username: %+v, want allowed", d)
		}
	})
}

// Hostile usernames work, cost one short key each, and never appear in Redis.
func TestHostileUsernames(t *testing.T) {
	forEachBackend(t, func(t *testing.T, c *redis.Client) {
		g := newGuard(t, c, Config{User: Limit{Limit: 1, Period: 24 * time.Hour}})
		v := &verifier{}
		names := []string{
			strings.Repeat("a", 1<<20),
			"bob",
			"",
			"\x00\xff{x}\r\n",
			"{bob}",
			strings.Repeat("\u212A", 1000),
		}
		for _, u := range names {
			if d, _ := login(t, g, v, u, "x", "192.0.2.1"); !d.Allowed {
				t.Errorf("first attempt for %.20q refused: %+v", u, d)
			}
		}
		// Case variants of a 1 MB name share its budget.
		if d, _ := login(t, g, v, " "+strings.Repeat("A", 1<<20), "x", "192.0.2.2"); d.Allowed {
			t.Error("second attempt for the 1 MB name allowed, want the first's budget")
		}
		if d, _ := login(t, g, v, strings.Repeat("k", 1000), "x", "192.0.2.2"); d.Allowed {
			t.Error("k×1000 allowed, want the Kelvin-sign name's budget")
		}
		keys, err := c.Keys(context.Background(), "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) == 0 {
			t.Fatal("no keys in Redis")
		}
		for _, k := range keys {
			if len(k) > 80 || strings.Contains(k, "bob") || strings.Contains(k, "aaaa") || strings.Contains(k, "192.0.2") {
				t.Errorf("key %.100q is long or holds a username or address", k)
			}
		}
	})
}

// Redis dies in the middle: attempts are refused (fail closed), no password is
// verified, and the Observer hears about it.
func TestFailClosedWhenRedisDies(t *testing.T) {
	s := redistest.Start(t)
	var failed atomic.Int64
	g := newGuard(t, s.Client(t), Config{
		Timeout: 200 * time.Millisecond,
		Observer: ratelimit.ObserverFunc(func(e ratelimit.Event) {
			if e.Outcome == ratelimit.OutcomeFailedClosed && e.Err != nil {
				failed.Add(1)
			}
		}),
	})
	v := &verifier{password: map[string]string{"frank": "ok"}}
	if d, ok := login(t, g, v, "frank", "ok", "192.0.2.1"); !ok {
		t.Fatalf("login before the crash: %+v", d)
	}
	a, d, err := g.Begin(context.Background(), "frank", "192.0.2.1")
	if err != nil || !d.Allowed {
		t.Fatalf("Begin before the crash: %+v, %v", d, err)
	}
	s.Kill()
	if err := a.Succeeded(context.Background()); err == nil {
		t.Error("Succeeded with Redis down = nil, want an error")
	}
	calls := v.calls.Load()
	for range 5 {
		d, _ := login(t, g, v, "frank", "ok", "192.0.2.1")
		if d.Allowed || d.Outcome != ratelimit.OutcomeFailedClosed || d.RetryAfter <= 0 {
			t.Fatalf("with Redis down: %+v, want refused, failed closed, with a RetryAfter", d)
		}
	}
	if v.calls.Load() != calls {
		t.Error("a password was verified while Redis was down")
	}
	if failed.Load() == 0 {
		t.Error("the Observer saw no failed_closed event with an error")
	}
	s.Restart(t)
	if d, ok := login(t, g, v, "frank", "ok", "192.0.2.1"); !ok {
		t.Errorf("after restart: %+v, want success", d)
	}
}

func TestFailOpenWhenRedisDies(t *testing.T) {
	s := redistest.Start(t)
	g := newGuard(t, s.Client(t), Config{Timeout: 200 * time.Millisecond, OnFailure: ratelimit.FailOpen})
	s.Kill()
	a, d, err := g.Begin(context.Background(), "gina", "192.0.2.1")
	if err != nil || !d.Allowed || d.Outcome != ratelimit.OutcomeFailedOpen || a == nil {
		t.Fatalf("FailOpen with Redis down: %v, %+v, %v; want an allowed Attempt, failed open", a, d, err)
	}
}

func TestBeginCanceledContext(t *testing.T) {
	g := newGuard(t, backends[0].client(t), Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if a, _, err := g.Begin(ctx, "hank", "192.0.2.1"); !errors.Is(err, context.Canceled) || a != nil {
		t.Errorf("Begin(canceled) = %v, %v; want context.Canceled", a, err)
	}
}

func TestUnlock(t *testing.T) {
	forEachBackend(t, func(t *testing.T, c *redis.Client) {
		g := newGuard(t, c, Config{
			User: Limit{Limit: 2, Period: 24 * time.Hour, BlockFor: time.Hour},
			IP:   Limit{Limit: 50, Period: 24 * time.Hour},
			Pair: Limit{Limit: 10, Period: 24 * time.Hour, BlockFor: time.Hour},
		})
		v := &verifier{password: map[string]string{"alice": "a-pass"}}
		for range 3 {
			login(t, g, v, "Alice", "guess", "192.0.2.1")
		}
		if d, _ := login(t, g, v, "alice", "a-pass", "192.0.2.7"); d.Allowed || d.Scope != ScopeUser {
			t.Fatalf("before Unlock: %+v, want refused by the user lockout", d)
		}
		ipLeft := remaining(t, g, ScopeIP, "alice", "192.0.2.1")
		if found, err := g.Unlock(context.Background(), " ALICE ", "192.0.2.1"); err != nil || !found {
			t.Fatalf("Unlock = %v, %v; want found", found, err)
		}
		if got := remaining(t, g, ScopeUser, "alice", ""); got != 2 {
			t.Errorf("user budget after Unlock = %d, want 2 (fresh)", got)
		}
		if got := remaining(t, g, ScopePair, "alice", "192.0.2.1"); got != 10 {
			t.Errorf("pair budget after Unlock = %d, want 10 (fresh)", got)
		}
		if got := remaining(t, g, ScopeIP, "alice", "192.0.2.1"); got != ipLeft {
			t.Errorf("IP budget after Unlock = %d, want %d (untouched)", got, ipLeft)
		}
		if d, ok := login(t, g, v, "alice", "a-pass", "192.0.2.7"); !d.Allowed || !ok {
			t.Errorf("after Unlock: %+v, %v; want the owner in", d, ok)
		}
	})
}
