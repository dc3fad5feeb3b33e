package login_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit/login"
)

// newRedis starts an in-memory Redis (miniredis) with its clock frozen, and a
// client configured for limiters.
func newRedis() (*miniredis.Miniredis, *redis.Client) {
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	mr.SetTime(time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC))
	// Limiters need a client that never retries (a retried script charges
	// one call twice) and honours context deadlines.
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true})
	return mr, rdb
}

// checkPassword stands for the application's password check.
func checkPassword(username, password string) bool {
	return login.NormalizeUsername(username) == "alice" && password == "correct horse"
}

func ExampleGuard_Begin() {
	mr, rdb := newRedis()
	defer mr.Close()

	guard, err := login.New(rdb, login.Config{
		User: login.Limit{Limit: 3, Period: time.Hour, BlockFor: 15 * time.Minute},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	attempt := func(username, password, ip string) {
		ctx := context.Background()
		a, d, err := guard.Begin(ctx, username, ip)
		if err != nil {
			fmt.Println(err)
			return
		}
		if !d.Allowed {
			fmt.Printf("%s from %s: refused by %s, retry in %v\n", username, ip, d.Scope, d.RetryAfter)
			return
		}
		if checkPassword(username, password) {
			a.Succeeded(ctx)
			fmt.Printf("%s from %s: welcome (known pair: %v)\n", username, ip, d.Known)
		} else {
			a.Failed(ctx)
			fmt.Printf("%s from %s: wrong password\n", username, ip)
		}
	}

	attempt(" Alice ", "correct horse", "192.0.2.1") // alice's usual address
	for i := 1; i <= 4; i++ {
		attempt("ALICE", "guess", fmt.Sprintf("203.0.113.%d", i)) // an attacker
	}
	attempt("alice", "correct horse", "198.51.100.7") // a new address: locked out too
	attempt("alice", "correct horse", "192.0.2.1")    // the known address still works
	// Output:
	//  Alice  from 192.0.2.1: welcome (known pair: false)
	// ALICE from 203.0.113.1: wrong password
	// ALICE from 203.0.113.2: wrong password
	// ALICE from 203.0.113.3: wrong password
	// ALICE from 203.0.113.4: refused by user, retry in 15m0s
	// alice from 198.51.100.7: refused by user, retry in 15m0s
	// alice from 192.0.2.1: welcome (known pair: true)
}

func ExampleHTTP_Handler() {
	mr, rdb := newRedis()
	defer mr.Close()

	guard, err := login.New(rdb, login.Config{
		User: login.Limit{Limit: 3, Period: time.Hour, BlockFor: 15 * time.Minute},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	// The login handler: 401 for a wrong password or an unknown user alike,
	// a redirect on success.
	loginHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !checkPassword(r.PostFormValue("username"), r.PostFormValue("password")) {
			http.Error(w, "wrong username or password", http.StatusUnauthorized)
			return
		}
		http.Redirect(w, r, "/home", http.StatusSeeOther)
	})
	protected := (&login.HTTP{Guard: guard}).Handler(loginHandler)

	for i := 0; i < 4; i++ {
		form := url.Values{"username": {"alice"}, "password": {"guess"}}
		r := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.RemoteAddr = "203.0.113.9:50000"
		w := httptest.NewRecorder()
		protected.ServeHTTP(w, r)
		fmt.Printf("%d Retry-After: %q\n", w.Code, w.Header().Get("Retry-After"))
	}
	// Output:
	// 401 Retry-After: ""
	// 401 Retry-After: ""
	// 401 Retry-After: ""
	// 429 Retry-After: "900"
}
