package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/seed68425060/ratelimit"
	"github.com/seed68425060/ratelimit/login"
)

const serveUsage = `Usage:
  ratelimit serve [-addr host:port] [-redis URL | -cluster host:port,...] [flags]

Runs the demo HTTP server. With no -redis, -cluster or $REDIS_URL it starts an
embedded in-memory Redis (miniredis), so it runs with nothing installed.
Several serve processes pointed at one Redis share every limit exactly.

Endpoints:
  GET  /          a page that explains the demo and lets you try it
  GET  /api/ping  limited per client IP (token bucket, -api-limit, -api-burst)
  POST /login     form or JSON username and password, with login protection
                  (-login-limit): 200 ok, 401 wrong password, 429 locked out
  GET  /metrics   Prometheus metrics of every limiter decision

Examples:
  ratelimit serve
  ratelimit serve -addr 127.0.0.1:9000 -api-limit 10/s -api-burst 20
  ratelimit serve -redis redis://127.0.0.1:6379
  REDIS_URL=rediss://default:secret@redis.example.com:6380 ratelimit serve
  ratelimit serve -cluster 10.0.0.5:7000,10.0.0.6:7000,10.0.0.7:7000
  ratelimit serve -addr :8080 -trusted-proxies 10.0.0.0/8,192.168.0.0/16
`

// Demo credentials, printed at startup and shown on the index page.
const (
	demoUser     = "demo"
	demoPassword = "demo-password"
)

// shutdownTimeout bounds the graceful shutdown after SIGINT or SIGTERM.
const shutdownTimeout = 5 * time.Second

type serveConfig struct {
	redis          redisFlags
	addr           string
	apiLimit       limitsFlag
	apiBurst       int
	shadow         bool
	loginLimit     limitFlag
	trustedProxies prefixesFlag
}

func (s *serveConfig) register(fs *flag.FlagSet) {
	s.redis.register(fs)
	fs.StringVar(&s.addr, "addr", "127.0.0.1:8080", "listen address, `host:port`")
	s.apiLimit = limitsFlag{{limit: 100, period: time.Minute}}
	fs.Var(&s.apiLimit, "api-limit", "rates of /api/ping per client IP that every request must fit in, `count/period,...` (e.g. 10/s,1000/d)")
	fs.BoolVar(&s.shadow, "shadow", false, "shadow mode for /api/ping: decide and count as usual, never deny (ratelimit.Config.Shadow)")
	fs.IntVar(&s.apiBurst, "api-burst", 0, "burst (bucket capacity) of /api/ping; 0 means the count of -api-limit")
	s.loginLimit = limitFlag{limit: 5, period: 15 * time.Minute}
	fs.Var(&s.loginLimit, "login-limit", "wrong passwords per username (and per username+IP), `count/period`; the next attempt starts a lockout of one period")
	fs.Var(&s.trustedProxies, "trusted-proxies", "`CIDR,...` of reverse proxies whose X-Forwarded-For is believed (default none: the client is RemoteAddr)")
}

// prefixesFlag is a flag.Value holding a comma-separated list of CIDRs.
type prefixesFlag []netip.Prefix

func (p *prefixesFlag) String() string {
	if p == nil {
		return ""
	}
	s := make([]string, len(*p))
	for i, x := range *p {
		s[i] = x.String()
	}
	return strings.Join(s, ",")
}

func (p *prefixesFlag) Set(v string) error {
	var out []netip.Prefix
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "/") { // a single address
			a, err := netip.ParseAddr(s)
			if err != nil {
				return fmt.Errorf("%q is not a CIDR (like 10.0.0.0/8) or an IP address", s)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		x, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("%q is not a CIDR like 10.0.0.0/8 or fd00::/8", s)
		}
		out = append(out, x.Masked())
	}
	*p = out
	return nil
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cfg serveConfig
	fs := newFlagSet("serve")
	cfg.register(fs)
	if code, ok := parseFlags(fs, "serve", args, stdout, stderr); !ok {
		return code
	}
	if cfg.apiBurst < 0 {
		return usageError(stderr, "serve", fmt.Errorf("-api-burst = %d, must be >= 0", cfg.apiBurst))
	}
	c, err := cfg.redis.connect(ctx, true)
	if err != nil {
		return failure(stderr, "serve", err)
	}
	defer c.Close()
	d, err := newDemo(c, cfg)
	if err != nil {
		return usageError(stderr, "serve", err)
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return failure(stderr, "serve", fmt.Errorf("listen on -addr %s: %v", cfg.addr, err))
	}
	srv := &http.Server{
		Handler:           d.handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       time.Minute,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	d.printBanner(stdout, "http://"+ln.Addr().String(), c)

	select {
	case err := <-served:
		return failure(stderr, "serve", err)
	case <-ctx.Done():
	}
	fmt.Fprintln(stdout, "shutting down: finishing requests in flight")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return failure(stderr, "serve", fmt.Errorf("shutdown: %v", err))
	}
	fmt.Fprintln(stdout, "stopped")
	return exitOK
}

// demo is the demo server's state: the limiters and handlers it wires.
type demo struct {
	cfg      serveConfig
	apiLimit ratelimit.Config // as filled in by New
	api      http.Handler     // /api/ping, rate limited
	login    http.Handler     // /login, protected
	guard    *login.Guard
	metrics  http.Handler // /metrics
	extra    []string     // banner lines about the wiring
}

// handler routes the demo's endpoints.
func (d *demo) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", d.serveIndex)
	mux.Handle("GET /api/ping", d.api)
	mux.Handle("POST /login", d.login)
	mux.Handle("GET /metrics", d.metrics)
	return mux
}

func (d *demo) printBanner(w io.Writer, base string, c *conn) {
	a := d.apiLimit
	fmt.Fprintf(w, `ratelimit demo server
  listening on  %[1]s
  redis         %[2]s
  /api/ping     %[3]s per client IP (%[4]s, burst %[5]d)%[10]s
  /login        user %[6]q, password %[7]q; %[8]d wrong passwords per username lock it for %[9]v
`, base, c.desc, d.cfg.apiLimit.String(), a.Algorithm, a.Burst, demoUser, demoPassword,
		d.cfg.loginLimit.limit, shortDuration(d.cfg.loginLimit.period), shadowNote(a.Shadow))
	if len(d.cfg.trustedProxies) > 0 {
		fmt.Fprintf(w, "  client IP     from X-Forwarded-For when the peer is in %s\n", d.cfg.trustedProxies.String())
	} else {
		fmt.Fprintf(w, "  client IP     the peer address (X-Forwarded-For ignored: no -trusted-proxies)\n")
	}
	for _, l := range d.extra {
		fmt.Fprintf(w, "  %s\n", l)
	}
	redisFlag := ""
	if c.mini != nil {
		redisFlag = " -redis redis://" + c.mini.Addr()
	} else if !c.cluster {
		redisFlag = " -redis " + c.desc
	}
	fmt.Fprintf(w, `
Open %[1]s/ in a browser, or try:
  curl -i %[1]s/api/ping
  for i in $(seq %[2]d); do curl -s -o /dev/null -w '%%{http_code}\n' %[1]s/api/ping; done | sort | uniq -c
  curl -i -d username=%[3]s -d password=wrong %[1]s/login
  curl -i -d username=%[3]s -d password=%[4]s %[1]s/login
  curl -s %[1]s/metrics | grep '^ratelimit'
  go run ./cmd/ratelimit inspect%[5]s -name %[6]s -limit %[7]s -key 127.0.0.1

Press Ctrl-C to stop.
`, base, a.Burst+5, demoUser, demoPassword, redisFlag, a.Name, ratelimit.FormatLimit(a.Limit, a.Period))
}

// shortDuration writes d without trailing zero units: "15m", not "15m0s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if p, ok := strings.CutSuffix(s, "m0s"); ok {
		s = p + "m"
	}
	if p, ok := strings.CutSuffix(s, "h0m"); ok {
		s = p + "h"
	}
	return s
}

// writeJSON writes v as a JSON response with status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// credentials reads username and password from a form or JSON body of at
// most 4 KiB.
func credentials(w http.ResponseWriter, r *http.Request) (user, password string, err error) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/json" {
		var body struct {
			Username string `json:"username"`
			Password string `json:"password"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			return "", "", fmt.Errorf("bad JSON body: %v", err)
		}
		user, password = body.Username, body.Password
	} else {
		if err := r.ParseForm(); err != nil {
			return "", "", fmt.Errorf("bad form body: %v", err)
		}
		user, password = r.PostForm.Get("username"), r.PostForm.Get("password")
	}
	if user == "" {
		return "", "", errors.New("username is required")
	}
	return user, password, nil
}

// checkPassword reports whether the demo credentials match, in constant time.
func checkPassword(user, password string) bool {
	u := subtle.ConstantTimeCompare([]byte(user), []byte(demoUser))
	p := subtle.ConstantTimeCompare([]byte(password), []byte(demoPassword))
	return u&p == 1
}

// shadowNote is the banner's remark on shadow mode.
func shadowNote(on bool) string {
	if on {
		return "; shadow mode: counted, never denied"
	}
	return ""
}

func (d *demo) serveIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	a := d.apiLimit
	indexPage.Execute(w, map[string]any{
		"APILimit": d.cfg.apiLimit.String(), "APIBurst": a.Burst, "Shadow": a.Shadow,
		"LoginCount": d.cfg.loginLimit.limit, "LoginPeriod": shortDuration(d.cfg.loginLimit.period),
		"User": demoUser, "Password": demoPassword,
	})
}

var indexPage = template.Must(template.New("index").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ratelimit demo</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:46em;margin:2em auto;padding:0 1em}
pre{background:#f4f4f4;padding:.6em;overflow:auto;min-height:3em}button{margin:.2em}</style></head>
<body>
<h1>ratelimit demo</h1>
<p>Every decision below is made inside Redis by a Lua script, so any number of
servers sharing one Redis share each limit exactly.</p>
<h2>GET /api/ping</h2>
<p>Limited per client IP by a token bucket: {{.APILimit}} (every request must fit in each), burst {{.APIBurst}}{{if .Shadow}}; shadow mode: requests over the limit are counted (metrics: outcome shadow_denied) and served, never refused{{end}}.
Press "ping ×10" a few times to see <code>429 Too Many Requests</code> and the
<code>RateLimit</code> headers.</p>
<button onclick="ping(1)">ping</button><button onclick="ping(10)">ping ×10</button>
<pre id="ping"></pre>
<h2>POST /login</h2>
<p>Demo account: <code>{{.User}}</code> / <code>{{.Password}}</code>. After
{{.LoginCount}} wrong passwords the username is locked out for {{.LoginPeriod}}
(429); a success clears its failures.</p>
<form id="login"><input name="username" value="{{.User}}" autocomplete="username">
<input name="password" type="password" value="wrong" autocomplete="current-password">
<button>log in</button></form>
<pre id="out"></pre>
<p><a href="/metrics">/metrics</a>: Prometheus metrics of every decision.</p>
<script>
const show = async (el, res) => {
  const h = [...res.headers].filter(([k]) => /^(ratelimit|retry-after)/i.test(k)).map(([k, v]) => k + ": " + v);
  el.textContent = res.status + " " + res.statusText + "\n" + h.join("\n") + "\n" + await res.text() + el.textContent.slice(0, 2000);
};
async function ping(n) {
  const el = document.getElementById("ping");
  for (let i = 0; i < n; i++) await show(el, await fetch("/api/ping"));
}
document.getElementById("login").onsubmit = async (e) => {
  e.preventDefault();
  await show(document.getElementById("out"), await fetch("/login", {method: "POST", body: new URLSearchParams(new FormData(e.target))}));
};
</script>
</body></html>
`))
