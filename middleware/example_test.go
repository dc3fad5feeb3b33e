package middleware_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit"
	"github.com/seed68425060/ratelimit/middleware"
)

// exampleRedis starts an in-memory Redis (miniredis) with its clock frozen, and
// a client configured for a limiter.
func exampleRedis() (*miniredis.Miniredis, *redis.Client) {
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	mr.SetTime(time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC))
	// A limiter's client must not retry (a retried script charges one call
	// twice) and must honour context deadlines.
	return mr, redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true})
}

func ExampleMiddleware_Handler() {
	mr, rdb := exampleRedis()
	defer mr.Close()

	perClient, err := ratelimit.New(rdb, ratelimit.Config{Name: "per-client", Limit: 2, Period: time.Minute})
	if err != nil {
		fmt.Println(err)
		return
	}
	mw, err := middleware.New(middleware.Config{
		Limiters:  []*ratelimit.Limiter{perClient},
		OnFailure: ratelimit.FailOpen, // an API stays up when Redis is down
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello\n") })
	h := mw.Handler(api)

	for i := 0; i < 3; i++ {
		r := httptest.NewRequest("GET", "/api/items", nil)
		r.RemoteAddr = "203.0.113.7:51234"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		printResponse(w)
	}
	// Output:
	// 200
	// RateLimit-Policy: "per-client";q=2;w=60
	// RateLimit: "per-client";r=1;t=30
	// hello
	//
	// 200
	// RateLimit-Policy: "per-client";q=2;w=60
	// RateLimit: "per-client";r=0;t=60
	// hello
	//
	// 429
	// Retry-After: 30
	// RateLimit-Policy: "per-client";q=2;w=60
	// RateLimit: "per-client";r=0;t=30
	// 429 Too Many Requests
}

// printResponse prints the status, the rate-limit headers that are present and
// the body.
func printResponse(w *httptest.ResponseRecorder) {
	fmt.Println(w.Code)
	for _, name := range []string{"Retry-After", "RateLimit-Policy", "RateLimit"} {
		if v := w.Header().Get(name); v != "" {
			fmt.Printf("%s: %s\n", name, v)
		}
	}
	fmt.Println(w.Body.String())
}

// A global limiter shared by every client, left out of the response headers:
// its Remaining says how busy the service is, not what this client may do.
func ExampleConfig_noHeaders() {
	mr, rdb := exampleRedis()
	defer mr.Close()

	perClient, _ := ratelimit.New(rdb, ratelimit.Config{Name: "per-client", Limit: 100, Period: time.Minute})
	global, _ := ratelimit.New(rdb, ratelimit.Config{Name: "global", Limit: 10000, Period: time.Minute})
	mw, err := middleware.New(middleware.Config{
		Limiters:  []*ratelimit.Limiter{perClient, global},
		Keys:      map[string]middleware.KeyFunc{"global": middleware.ConstantKey("all")},
		NoHeaders: []string{"global"},
		OnFailure: ratelimit.FailOpen,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	h := mw.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello\n") }))
	r := httptest.NewRequest("GET", "/api/items", nil)
	r.RemoteAddr = "203.0.113.7:51234"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	printResponse(w)
	// Output:
	// 200
	// RateLimit-Policy: "per-client";q=100;w=60
	// RateLimit: "per-client";r=99;t=1
	// hello
}

// A login route: fail closed, no budget headers, and a per-client limit plus a
// global one that all clients share.
func ExampleNew_login() {
	mr, rdb := exampleRedis()
	defer mr.Close()

	perClient, _ := ratelimit.New(rdb, ratelimit.Config{Name: "login-ip", Limit: 1, Period: 10 * time.Second})
	global, _ := ratelimit.New(rdb, ratelimit.Config{Name: "login-all", Limit: 1000, Period: time.Minute})
	mw, err := middleware.New(middleware.Config{
		Limiters:  []*ratelimit.Limiter{perClient, global},
		Keys:      map[string]middleware.KeyFunc{"login-all": middleware.ConstantKey("all")},
		OnFailure: ratelimit.FailClosed, // an unlimited attacker is worse than an outage
		Headers:   middleware.HeadersNone,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	h := mw.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for i := 0; i < 2; i++ {
		r := httptest.NewRequest("POST", "/login", nil)
		r.RemoteAddr = "[2001:db8::1]:50000"
		r.Header.Set("Accept", "application/problem+json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		printResponse(w)
	}
	// Output:
	// 200
	//
	// 429
	// Retry-After: 10
	// {"type":"https://iana.org/assignments/http-problem-types#quota-exceeded","title":"Too Many Requests","status":429,"violated-policies":["login-ip"]}
}
