package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/seed68425060/ratelimit"
)

const doctorUsage = `Usage:
  ratelimit doctor -redis URL [-n PINGS]
  ratelimit doctor -cluster host:port,...

Checks what matters for rate limiters on this Redis and says what to fix:
server version, maxmemory-policy (an evicting policy silently resets limits),
cluster mode, a script round trip through a real limiter, the NOSCRIPT
fallback, the clock difference between Redis TIME and this host, and the
round-trip latency. Each check prints OK, WARN or FAIL. The exit status is 0
when no check FAILs, 1 otherwise.

doctor writes only a few short-lived keys under "ratelimit-doctor:" and
deletes them; it never flushes scripts or data.

Examples:
  ratelimit doctor -redis redis://127.0.0.1:6379
  ratelimit doctor -redis rediss://default:secret@redis.example.com:6380 -n 50
`

type doctorConfig struct {
	redis redisFlags
	pings int
}

func (d *doctorConfig) register(fs *flag.FlagSet) {
	d.redis.register(fs)
	fs.IntVar(&d.pings, "n", 20, "number of PINGs for the latency check")
}

// Check statuses.
const (
	statusOK   = "OK"
	statusWarn = "WARN"
	statusFail = "FAIL"
)

// check is the result of one doctor check.
type check struct {
	status string
	name   string
	msg    string
	fix    string // what to do, for WARN and FAIL
}

// Latency thresholds: above latencyWarn every request pays noticeably for a
// decision; above latencyFail decisions risk the limiter's default Timeout.
const (
	latencyWarn = 10 * time.Millisecond
	latencyFail = ratelimit.DefaultTimeout / 2
	skewWarn    = time.Second
)

func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var d doctorConfig
	fs := newFlagSet("doctor")
	d.register(fs)
	if code, ok := parseFlags(fs, "doctor", args, stdout, stderr); !ok {
		return code
	}
	if d.pings < 1 {
		return usageError(stderr, "doctor", fmt.Errorf("-n = %d, must be >= 1", d.pings))
	}
	if !d.redis.configured() {
		return usageError(stderr, "doctor", fmt.Errorf("no Redis: give -redis redis://host:port, set %s, or give -cluster host:port,...", redisURLEnv))
	}
	c, err := d.redis.connect(ctx, false)
	if err != nil {
		fmt.Fprintf(stdout, "%-5s %-12s %v\n", statusFail, "connect", err)
		fmt.Fprintf(stdout, "      fix: check the address, password and TLS (rediss://) and that Redis is running\n")
		return exitFail
	}
	defer c.Close()
	fmt.Fprintf(stdout, "doctor: %s\n", c.desc)
	checks := []func(context.Context, *conn) check{
		checkVersion,
		checkEviction,
		checkCluster,
		checkScripts,
		checkClock,
		func(ctx context.Context, c *conn) check { return checkLatency(ctx, c, d.pings) },
	}
	counts := map[string]int{}
	for _, f := range checks {
		if ctx.Err() != nil {
			return failure(stderr, "doctor", ctx.Err())
		}
		r := f(ctx, c)
		counts[r.status]++
		fmt.Fprintf(stdout, "%-5s %-12s %s\n", r.status, r.name, r.msg)
		if r.fix != "" && r.status != statusOK {
			fmt.Fprintf(stdout, "      fix: %s\n", r.fix)
		}
	}
	fmt.Fprintf(stdout, "doctor: %d OK, %d WARN, %d FAIL\n", counts[statusOK], counts[statusWarn], counts[statusFail])
	if counts[statusFail] > 0 {
		return exitFail
	}
	return exitOK
}

// eachNode calls fn for the server (standalone) or every primary (cluster).
func eachNode(ctx context.Context, c *conn, fn func(ctx context.Context, n *redis.Client) error) error {
	switch cl := c.client.(type) {
	case *redis.ClusterClient:
		return cl.ForEachMaster(ctx, fn)
	case *redis.Client:
		return fn(ctx, cl)
	}
	return fmt.Errorf("unsupported client %T", c.client)
}

// infoField returns field from an INFO reply, or "".
func infoField(info, field string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

func checkVersion(ctx context.Context, c *conn) check {
	r := check{name: "version"}
	var versions []string
	err := eachNode(ctx, c, func(ctx context.Context, n *redis.Client) error {
		info, err := n.Info(ctx, "server").Result()
		if err != nil {
			return err
		}
		v := infoField(info, "redis_version")
		if v == "" {
			return fmt.Errorf("INFO server has no redis_version")
		}
		versions = append(versions, v)
		return nil
	})
	if err != nil {
		r.status, r.msg = statusWarn, fmt.Sprintf("could not read the server version: %v", err)
		r.fix = "allow INFO for this user, or check the version by hand: the limiter is tested on Redis 7"
		return r
	}
	slices.Sort(versions)
	versions = slices.Compact(versions)
	major := 0
	for _, v := range versions {
		m, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
		if major == 0 || m < major {
			major = m
		}
	}
	r.msg = "Redis " + strings.Join(versions, ", ")
	switch {
	case major >= 7:
		r.status = statusOK
	case major >= 5:
		r.status = statusWarn
		r.msg += ": older than 7, not tested with this limiter"
		r.fix = "upgrade to Redis 7 or later"
	default:
		r.status = statusFail
		r.msg += ": older than 5, scripts that read PTTL and then write are refused"
		r.fix = "upgrade to Redis 7 or later"
	}
	return r
}

// evictingPolicy reports whether a maxmemory-policy evicts keys under memory pressure.
func evictingPolicy(p string) bool { return p != "" && p != "noeviction" }

// policyEffect says what a maxmemory-policy does to limits and lockouts when
// Redis is full. Every limiter key has a TTL, and a lockout is a key of its
// own: evicting it lifts the lock, evicting a rate's key hands out a fresh
// budget.
func policyEffect(p string) string {
	switch {
	case p == "noeviction":
		return "a full Redis refuses writes: admissions fail with OOM (Config.OnFailure answers), while locked keys still answer locked (a locked call writes nothing)"
	case p == "volatile-ttl":
		return "evicts the keys nearest their expiry first: live lockouts about to end and nearly refilled budgets go first, and a long lock is lost only after them"
	case strings.HasPrefix(p, "volatile-"):
		return "every limiter key has a TTL, so limiter keys (budgets and live lockouts) are evicted before any key without one: limits reset and locks lift first"
	case strings.HasPrefix(p, "allkeys-"):
		return "limiter keys are evicted like cache entries: an attacker's lockout or budget that is not touched for a while is the least recently used and goes"
	}
	return "an unknown policy"
}

func checkEviction(ctx context.Context, c *conn) check {
	r := check{name: "eviction"}
	var bad, unbounded []string
	var policies []string
	err := eachNode(ctx, c, func(ctx context.Context, n *redis.Client) error {
		cfg, err := n.ConfigGet(ctx, "maxmemory*").Result()
		if err != nil {
			return err
		}
		p, mem := cfg["maxmemory-policy"], cfg["maxmemory"]
		policies = append(policies, p)
		if evictingPolicy(p) {
			if mem == "" || mem == "0" {
				unbounded = append(unbounded, p)
			} else {
				bad = append(bad, fmt.Sprintf("%s with maxmemory %s", p, mem))
			}
		}
		return nil
	})
	slices.Sort(policies)
	policies = slices.Compact(policies)
	const fix = "CONFIG SET maxmemory-policy noeviction (and set it in redis.conf): with noeviction a full Redis refuses writes, which the limiter reports as errors (Config.OnFailure), instead of silently forgetting limits"
	switch {
	case err != nil:
		r.status, r.msg = statusWarn, fmt.Sprintf("could not read maxmemory-policy (CONFIG GET): %v", err)
		r.fix = "check by hand that maxmemory-policy is noeviction (managed services: in the parameter group)"
	case len(bad) > 0:
		r.status = statusFail
		r.msg = "maxmemory-policy " + strings.Join(bad, "; ") + ": under memory pressure Redis evicts limiter keys, which silently resets limits and lifts lockouts (" + policyEffects(policies) + ")"
		r.fix = fix
	case len(unbounded) > 0:
		r.status = statusWarn
		r.msg = "maxmemory-policy " + strings.Join(unbounded, ", ") + " with no maxmemory: nothing is evicted today, but setting maxmemory later would silently reset limits (" + policyEffects(policies) + ")"
		r.fix = fix
	default:
		r.status, r.msg = statusOK, "maxmemory-policy "+strings.Join(policies, ", ")+" ("+policyEffects(policies)+")"
	}
	return r
}

// policyEffects is policyEffect of each policy, named.
func policyEffects(policies []string) string {
	var out []string
	for _, p := range policies {
		if p != "" {
			out = append(out, p+": "+policyEffect(p))
		}
	}
	return strings.Join(out, "; ")
}

func checkCluster(ctx context.Context, c *conn) check {
	r := check{name: "cluster"}
	info, err := c.client.Info(ctx, "cluster").Result()
	if err != nil {
		r.status, r.msg = statusWarn, fmt.Sprintf("could not read INFO cluster: %v", err)
		return r
	}
	enabled := infoField(info, "cluster_enabled") == "1"
	switch {
	case enabled && !c.cluster:
		r.status = statusFail
		r.msg = "this server is a Redis Cluster node, but it was reached as a single server: keys in other slots answer MOVED"
		r.fix = "connect with -cluster host:port,... (in code: redis.NewClusterClient)"
	case enabled:
		n := 0
		c.client.(*redis.ClusterClient).ForEachMaster(ctx, func(context.Context, *redis.Client) error { n++; return nil })
		r.status, r.msg = statusOK, fmt.Sprintf("Redis Cluster, %d primaries; every limiter key is one hash slot", n)
	default:
		r.status, r.msg = statusOK, "standalone (not a cluster)"
	}
	return r
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// checkScripts verifies that Redis answers NOSCRIPT for an unknown script (the
// signal the limiter's EVAL fallback relies on) and then runs a real limiter
// on a scratch key: two calls admitted, the third denied, state deleted. It
// never runs SCRIPT FLUSH, which would hurt other applications on the server.
func checkScripts(ctx context.Context, c *conn) check {
	r := check{name: "scripts"}
	key := "k" + randomHex(8)
	// The key routes the EVALSHA to the node that would run the limiter's script.
	err := c.client.EvalSha(ctx, randomHex(20), []string{"ratelimit-doctor:" + key}).Err()
	switch {
	case err == nil:
		r.status, r.msg = statusFail, "EVALSHA of an unknown script succeeded; expected a NOSCRIPT error"
		r.fix = "check for a proxy in front of Redis that answers scripts itself"
		return r
	case !strings.Contains(err.Error(), "NOSCRIPT"):
		r.status, r.msg = statusFail, fmt.Sprintf("EVALSHA of an unknown script answered %q, not NOSCRIPT: the limiter could not reload its scripts after a restart or failover", err)
		r.fix = "allow EVAL and EVALSHA for this user (ACL +@scripting) and check that no proxy rewrites errors"
		return r
	}
	var reloaded atomic.Bool
	lim, err := ratelimit.New(c.client, ratelimit.Config{
		Name:      "doctor",
		Limit:     2,
		Period:    time.Minute,
		KeyPrefix: "ratelimit-doctor:",
		Timeout:   2 * time.Second,
		Observer: ratelimit.ObserverFunc(func(e ratelimit.Event) {
			if e.ScriptReloaded {
				reloaded.Store(true)
			}
		}),
	})
	if err != nil {
		r.status, r.msg = statusFail, fmt.Sprintf("build a limiter: %v", err)
		return r
	}
	defer lim.Reset(context.WithoutCancel(ctx), key)
	start := time.Now()
	var got []bool
	for range 3 {
		res, err := lim.Allow(ctx, key)
		if err != nil {
			r.status, r.msg = statusFail, fmt.Sprintf("limiter call failed: %v", err)
			r.fix = "allow EVAL and EVALSHA for this user (ACL +@scripting) and check the server log"
			return r
		}
		got = append(got, res.Allowed)
	}
	took := time.Since(start)
	if !slices.Equal(got, []bool{true, true, false}) {
		r.status, r.msg = statusFail, fmt.Sprintf("a limit of 2 admitted %v for three calls, want [true true false]", got)
		r.fix = "the server does not keep script writes: check it is a primary, not a read-only replica"
		return r
	}
	how := "the script was already cached, so EVALSHA ran it"
	if reloaded.Load() {
		how = "the first call fell back to EVAL and reloaded the script"
	}
	r.status = statusOK
	r.msg = fmt.Sprintf("unknown EVALSHA answers NOSCRIPT; a limit of 2 admitted 2 of 3 calls in %v (%s)", took.Round(time.Microsecond), how)
	return r
}

func checkClock(ctx context.Context, c *conn) check {
	r := check{name: "clock"}
	var worst time.Duration
	err := eachNode(ctx, c, func(ctx context.Context, n *redis.Client) error {
		before := time.Now()
		t, err := n.Time(ctx).Result()
		if err != nil {
			return err
		}
		after := time.Now()
		mid := before.Add(after.Sub(before) / 2)
		if d := t.Sub(mid); d.Abs() > worst.Abs() {
			worst = d
		}
		return nil
	})
	switch {
	case err != nil:
		r.status, r.msg = statusWarn, fmt.Sprintf("could not read TIME: %v", err)
	case worst.Abs() > skewWarn:
		r.status = statusWarn
		r.msg = fmt.Sprintf("Redis TIME is %v off this host's clock; decisions use Redis's clock only (key expiry), but after a failover another host's clock takes over", worst.Round(time.Millisecond))
		r.fix = "run NTP (chrony, systemd-timesyncd) on the Redis hosts and this host"
	default:
		r.status, r.msg = statusOK, fmt.Sprintf("Redis TIME differs from this host's clock by %v", worst.Round(time.Millisecond))
	}
	return r
}

func checkLatency(ctx context.Context, c *conn, n int) check {
	r := check{name: "latency"}
	rtts := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if err := c.client.Ping(ctx).Err(); err != nil {
			r.status, r.msg = statusFail, fmt.Sprintf("PING failed: %v", err)
			return r
		}
		rtts = append(rtts, time.Since(start))
	}
	slices.Sort(rtts)
	median, max := rtts[len(rtts)/2], rtts[len(rtts)-1]
	r.msg = fmt.Sprintf("median round trip %v over %d PINGs (max %v)", median.Round(time.Microsecond), n, max.Round(time.Microsecond))
	switch {
	case median > latencyFail:
		r.status = statusFail
		r.msg += fmt.Sprintf(", more than half the limiter's default Timeout %v", ratelimit.DefaultTimeout)
		r.fix = "run Redis close to the app (same region/zone), or raise Config.Timeout"
	case median > latencyWarn:
		r.status = statusWarn
		r.msg += ": every rate-limited request waits this long"
		r.fix = "run Redis close to the app (same region/zone)"
	default:
		r.status = statusOK
	}
	return r
}
