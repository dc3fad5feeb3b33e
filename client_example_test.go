package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/seed68425060/ratelimit"
)

// A program's existing client, with go-redis's defaults, is rejected by New;
// ClientOptions gives the limiters their own client from the same options.
func ExampleClientOptions() {
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mr.Close()

	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()}) // the application's client
	defer rdb.Close()
	cfg := ratelimit.Config{Name: "api", Limit: 2, Period: time.Minute}
	if _, err := ratelimit.New(rdb, cfg); errors.Is(err, ratelimit.ErrInvalidConfig) {
		fmt.Println(err)
	}

	// A second pool (PoolSize connections) for every limiter of the program.
	limiterRDB := redis.NewClient(ratelimit.ClientOptions(rdb.Options()))
	defer limiterRDB.Close()
	lim, err := ratelimit.New(limiterRDB, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	for range 3 {
		r, err := lim.Allow(context.Background(), "alice")
		fmt.Println(r.Allowed, err)
	}
	// Output:
	// ratelimit: client options unsafe for a limiter: MaxRetries = 3 re-sends a script whose reply was lost, charging one call twice (want -1); ContextTimeoutEnabled = false ignores per-call deadlines such as Config.Timeout (want true); give New a limiter client, a second pool built from the same options: redis.NewClient(ratelimit.ClientOptions(rdb.Options())), or for a Sentinel client redis.NewFailoverClient(ratelimit.FailoverOptions(opts)): invalid config
	// true <nil>
	// true <nil>
	// false <nil>
}
