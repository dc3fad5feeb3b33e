package main

import (
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/seed68425060/ratelimit"
	"github.com/seed68425060/ratelimit/clientip"
	"github.com/seed68425060/ratelimit/login"
	"github.com/seed68425060/ratelimit/metrics"
	"github.com/seed68425060/ratelimit/middleware"
)

// newDemo builds the demo's limiters and handlers on c.
func newDemo(c *conn, cfg serveConfig) (*demo, error) {
	// One collector observes every limiter and the middleware, on its own
	// registry: nothing touches Prometheus's global default registry.
	col, err := metrics.NewCollector(metrics.Config{})
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(col); err != nil {
		return nil, err
	}
	api, err := ratelimit.New(c.client, ratelimit.Config{
		Name:      "api",
		Algorithm: ratelimit.TokenBucket,
		Limit:     cfg.apiLimit[0].limit,
		Period:    cfg.apiLimit[0].period,
		Burst:     cfg.apiBurst,
		Rates:     cfg.apiLimit.rates(),
		Shadow:    cfg.shadow,
		Observer:  col,
	})
	if err != nil {
		return nil, fmt.Errorf("-api-limit %s, -api-burst %d: %w", cfg.apiLimit.String(), cfg.apiBurst, err)
	}
	d := &demo{cfg: cfg, apiLimit: api.Config()}
	clientIP := clientip.Config{TrustedProxies: cfg.trustedProxies}
	mw, err := middleware.New(middleware.Config{
		Limiters:  []*ratelimit.Limiter{api},
		OnFailure: ratelimit.FailOpen, // a Redis outage must not take the API down
		ClientIP:  clientIP,
		Denied:    http.HandlerFunc(apiDenied),
		Observer:  col,
	})
	if err != nil {
		return nil, err
	}
	d.api = mw.Handler(http.HandlerFunc(ping))

	// -login-limit: failures per username, and per (username, IP), before a
	// lockout as long as the period; the per-IP budget keeps its default.
	ll := login.Limit{Limit: cfg.loginLimit.limit, Period: cfg.loginLimit.period, BlockFor: cfg.loginLimit.period}
	guard, err := login.New(c.client, login.Config{Name: "login", User: ll, Pair: ll, Observer: col})
	if err != nil {
		return nil, fmt.Errorf("-login-limit %s: %w", cfg.loginLimit.String(), err)
	}
	d.guard = guard
	d.login = (&login.HTTP{Guard: guard, ClientIP: clientIP, Refused: http.HandlerFunc(loginRefused)}).Handler(http.HandlerFunc(verifyLogin))
	d.metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return d, nil
}

// ping answers an admitted /api/ping.
func ping(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"pong": true, "time": time.Now().UTC().Format(time.RFC3339)})
}

// apiDenied answers a denied /api/ping with 429 and a JSON body; the
// middleware has set Retry-After and the RateLimit headers.
func apiDenied(w http.ResponseWriter, r *http.Request) {
	body := map[string]any{"error": "rate limited"}
	if d, ok := middleware.DenialFrom(r.Context()); ok {
		body["limiter"] = d.Limiter
		body["retry_after_seconds"] = math.Ceil(d.Result.RetryAfter.Seconds())
	}
	writeJSON(w, http.StatusTooManyRequests, body)
}

// verifyLogin checks the demo credentials for the username the login guard
// limited. It answers a wrong password or an unknown user with 401, after the
// same work, so the guard counts it as a failure; a malformed request gets 400,
// which the guard does not count.
func verifyLogin(w http.ResponseWriter, r *http.Request) {
	_, password, err := credentials(w, r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	user, _ := login.Username(r.Context())
	if !checkPassword(user, password) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "wrong username or password"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "user": user})
}

// loginRefused answers a refused login in JSON, like the demo's other
// answers; the wrapper has set Retry-After.
func loginRefused(w http.ResponseWriter, r *http.Request) {
	f, _ := login.RefusalFrom(r.Context())
	msg := "too many login attempts, try again later"
	if f.Status == http.StatusServiceUnavailable {
		msg = "login temporarily unavailable, try again later"
	}
	writeJSON(w, f.Status, map[string]any{"error": msg, "retry_after_seconds": math.Ceil(f.Decision.RetryAfter.Seconds())})
}
