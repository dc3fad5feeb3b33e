package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/seed68425060/ratelimit/login"
)

const unlockUsage = `Usage:
  ratelimit unlock -redis URL [-name login] [-secret-env VAR] [-login-limit N/PERIOD] -user USERNAME [-ip ADDR,...]

Unlocks a user of the login protection (package login): clears the username's
budget, lockout and escalation history, and for each address given the
(username, address) pair's. Addresses' own budgets are not touched. Usernames
are hashed into Redis keys, so give the Guard's Name and, if it uses one, its
Secret (read from the environment variable named by -secret-env). A budget's
Period is part of its key: give -login-limit when the Guard's User and Pair
budgets are not the defaults (the demo server's -login-limit, say). When it
finds nothing to clear, it says so and exits 1: the likely causes are a wrong
-name, a missing -secret-env or another -login-limit.

Examples:
  # the demo server's login protection
  ratelimit unlock -redis redis://127.0.0.1:6379 -user demo
  # also clear the pair state of two addresses the user logs in from
  ratelimit unlock -redis redis://127.0.0.1:6379 -user alice -ip 203.0.113.7,2001:db8:1:2::/64
`

type unlockConfig struct {
	redis     redisFlags
	name      string
	secretEnv string
	user      string
	ips       string
	limit     limitFlag
}

func (u *unlockConfig) register(fs *flag.FlagSet) {
	u.redis.register(fs)
	fs.StringVar(&u.name, "name", "login", "the login Guard's `name` (login.Config.Name)")
	fs.StringVar(&u.secretEnv, "secret-env", "", "environment `variable` holding login.Config.Secret, if the Guard has one")
	fs.StringVar(&u.user, "user", "", "the `username` to unlock, as users type it (required)")
	fs.StringVar(&u.ips, "ip", "", "comma-separated client `keys` whose pair state to clear, as the Guard sees them (an IPv4 address or an IPv6 /64)")
	fs.Var(&u.limit, "login-limit", "the Guard's User and Pair budgets, `count/period`, as the demo's serve -login-limit sets them (default: login.DefaultUser and login.DefaultPair)")
}

func runUnlock(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var u unlockConfig
	fs := newFlagSet("unlock")
	u.register(fs)
	if code, ok := parseFlags(fs, "unlock", args, stdout, stderr); !ok {
		return code
	}
	if u.user == "" {
		return usageError(stderr, "unlock", errors.New("-user is required"))
	}
	if !u.redis.configured() {
		return usageError(stderr, "unlock", errors.New("no Redis: give -redis redis://host:port, set "+redisURLEnv+", or give -cluster host:port,..."))
	}
	cfg := login.Config{Name: u.name}
	if u.limit.limit > 0 {
		ll := login.Limit{Limit: u.limit.limit, Period: u.limit.period, BlockFor: u.limit.period}
		cfg.User, cfg.Pair = ll, ll
	}
	if u.secretEnv != "" {
		s := os.Getenv(u.secretEnv)
		if s == "" {
			return usageError(stderr, "unlock", fmt.Errorf("-secret-env %s: the variable is empty", u.secretEnv))
		}
		cfg.Secret = []byte(s)
	}
	c, err := u.redis.connect(ctx, false)
	if err != nil {
		return failure(stderr, "unlock", err)
	}
	defer c.Close()
	g, err := login.New(c.client, cfg)
	if err != nil {
		return usageError(stderr, "unlock", err)
	}
	var ips []string
	for _, ip := range strings.Split(u.ips, ",") {
		if ip = strings.TrimSpace(ip); ip != "" {
			ips = append(ips, ip)
		}
	}
	found, err := g.Unlock(ctx, u.user, ips...)
	if err != nil {
		return failure(stderr, "unlock", err)
	}
	if !found {
		fmt.Fprintf(stderr, "unlock: no state found for user %q of %q: nothing was changed (a wrong -name or -prefix, or the Guard's Secret missing: pass -secret-env)\n", u.user, u.name)
		return exitFail
	}
	fmt.Fprintf(stdout, "unlock: user %q of %q is unlocked (budget and lockout history cleared", u.user, u.name)
	if len(ips) > 0 {
		fmt.Fprintf(stdout, ", and its pairs with %s", strings.Join(ips, ", "))
	}
	fmt.Fprintln(stdout, ")")
	return exitOK
}
