package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// A path is the branch of a limiter's script a call takes. The throughput
// cells measure one: admissions on keys in use, the cheapest for this
// library's buckets (PTTL, INCRBY). The path cells measure the others too.
type path int

const (
	pathInUse    path = iota // admissions on keys in use
	pathRefilled             // admissions on keys in use whose bucket has refilled
	pathFresh                // admissions on keys never used before
	pathDenied               // denials
	numPaths
)

var pathNames = [numPaths]string{"keys in use", "keys in use, refilled", "fresh keys", "denials"}

// Databases of the path cells: the fresh-key cells empty theirs after each
// cell, the denial cells keep their exhausted keys for the whole run.
const (
	freshDB    = 1
	deniedDB   = 2
	refilledDB = 3
)

// refilledLimit is the limit of the refilled-key cells: one event per 10ms
// and a burst of a second's worth, so a key called again some 100ms later
// (at many keys, calls on one key are that far apart) finds its bucket full
// again but its state still there: traffic well within its limit, the
// common case in production.
var refilledLimit = limitSpec{Limit: 100, Period: time.Second}

// deniedLimit is the limit of the denial cells: one admitted call exhausts a
// key for an hour.
var deniedLimit = limitSpec{Limit: 1, Period: time.Hour}

// pathRig holds the deciders of the path cells.
type pathRig struct {
	conc                     int
	fresh, denied, refilled  *redis.Client
	freshD, deniedD, refillD []decideFunc // by index in subs; nil unless byPath
	subs                     []*subjectResult
	inUseFromCells           bool // the keys-in-use figure is the throughput cells'
	freshKeysPerCell         int
	keys                     []string     // the denial keys, and the keys in use
	throughputDeciders       []decideFunc // on the keys in use, by index in subs
}

// newPathRig builds the path cells' deciders on databases freshDB and
// deniedDB, and exhausts every denial key with one admitted call.
func newPathRig(ctx context.Context, o options, addr string, subs []*subjectResult, deciders []decideFunc, keys []string, conc int, throughput limitSpec) (*pathRig, error) {
	pr := &pathRig{
		conc:               conc,
		fresh:              newClientDB(addr, 2*conc, freshDB),
		denied:             newClientDB(addr, 2*conc, deniedDB),
		refilled:           newClientDB(addr, 2*conc, refilledDB),
		freshD:             make([]decideFunc, len(subs)),
		deniedD:            make([]decideFunc, len(subs)),
		refillD:            make([]decideFunc, len(subs)),
		subs:               subs,
		inUseFromCells:     slices.Contains(o.Concs, conc),
		freshKeysPerCell:   o.FreshKeys,
		keys:               keys,
		throughputDeciders: deciders,
	}
	for _, c := range []*redis.Client{pr.fresh, pr.denied, pr.refilled} {
		if err := c.FlushDB(ctx).Err(); err != nil {
			pr.close()
			return nil, err
		}
	}
	for i, sr := range subs {
		if !sr.S.byPath() {
			continue
		}
		var err error
		if pr.freshD[i], err = sr.S.New(ctx, pr.fresh, throughput); err == nil {
			pr.deniedD[i], err = sr.S.New(ctx, pr.denied, deniedLimit)
		}
		if err == nil {
			pr.refillD[i], err = sr.S.New(ctx, pr.refilled, refilledLimit)
		}
		if err != nil {
			pr.close()
			return nil, fmt.Errorf("%s: %w", sr.S.Name, err)
		}
		// Exhaust every denial key: one call each, which must be admitted.
		var admitted atomic.Int64
		if err := parallel(conc, len(keys), func(k int) error {
			ok, err := pr.deniedD[i](ctx, keys[k])
			if ok {
				admitted.Add(1)
			}
			return err
		}); err != nil {
			pr.close()
			return nil, fmt.Errorf("%s: denial warm-up: %w", sr.S.Name, err)
		}
		if n := admitted.Load(); n != int64(len(keys)) {
			pr.close()
			return nil, fmt.Errorf("%s: denial warm-up: %d of %d first calls admitted, want all", sr.S.Name, n, len(keys))
		}
	}
	// Fill the pools before the first timed cell.
	for _, c := range []*redis.Client{pr.fresh, pr.denied, pr.refilled} {
		if err := parallel(conc, 4*conc, func(int) error { return c.Ping(ctx).Err() }); err != nil {
			pr.close()
			return nil, err
		}
	}
	return pr, nil
}

func (pr *pathRig) close() {
	pr.fresh.Close()
	pr.denied.Close()
	pr.refilled.Close()
}

// measure runs repetition r of the path cells: for every subject measured by
// path (taking turns going first, like the throughput cells), admissions on
// keys in use (unless the throughput cells have them at this concurrency),
// admissions on keys in use whose bucket has refilled, admissions on fresh
// keys, and denials. It checks that each cell took the
// path it is named after.
func (pr *pathRig) measure(ctx context.Context, admin *redis.Client, r int, dur time.Duration, progress io.Writer) error {
	// User keys never used before: distinct across repetitions, and the
	// database is emptied after each cell, so every subject starts afresh.
	freshKeys := userKeys(fmt.Sprintf("f%d-", r), pr.freshKeysPerCell)
	for j := range pr.subs {
		i := (j + r) % len(pr.subs)
		sr := pr.subs[i]
		if pr.freshD[i] == nil {
			continue
		}
		if !pr.inUseFromCells {
			c, err := runCell(ctx, admin, sr.S, pr.throughputDeciders[i], pr.keys, "hot", pr.conc, dur, false)
			if err != nil {
				return fmt.Errorf("%s: keys in use: %w", sr.S.Name, err)
			}
			sr.Paths[pathInUse] = append(sr.Paths[pathInUse], c)
		}

		// Keys in use, refilled: one call on every key (the state exists),
		// then the timed calls, each at least a refill after the last call
		// on its key.
		var warm atomic.Int64
		if err := parallel(pr.conc, len(pr.keys), func(k int) error {
			ok, err := pr.refillD[i](ctx, pr.keys[k])
			if ok {
				warm.Add(1)
			}
			return err
		}); err != nil {
			return fmt.Errorf("%s: refilled keys: warm-up: %w", sr.S.Name, err)
		}
		c, err := runCell(ctx, admin, sr.S, pr.refillD[i], pr.keys, "hot", pr.conc, dur, false)
		if err != nil {
			return fmt.Errorf("%s: refilled keys: %w", sr.S.Name, err)
		}
		if ok := c.Decisions - c.Errors; warm.Load() != int64(len(pr.keys)) || c.Allowed != ok {
			return fmt.Errorf("%s: refilled keys: %d of %d warm-up calls and %d of %d timed calls admitted, want all", sr.S.Name, warm.Load(), len(pr.keys), c.Allowed, ok)
		}
		sr.Paths[pathRefilled] = append(sr.Paths[pathRefilled], c)
		fmt.Fprintf(progress, "  %-34s conc=%-3d refilled     script=%.2fµs/call calls=%d errors=%d\n",
			sr.S.Name, pr.conc, c.ScriptMicros(), c.Decisions, c.Errors)

		c, err = runCell(ctx, admin, sr.S, pr.freshD[i], freshKeys, "hot", pr.conc, dur, false)
		if err != nil {
			return fmt.Errorf("%s: fresh keys: %w", sr.S.Name, err)
		}
		if c.Wrapped {
			return fmt.Errorf("%s: fresh keys: %d decisions reused some of the %d fresh keys: raise -freshkeys", sr.S.Name, c.Decisions, len(freshKeys))
		}
		if c.Created, err = pr.fresh.DBSize(ctx).Result(); err != nil {
			return err
		}
		if err := pr.fresh.FlushDB(ctx).Err(); err != nil {
			return err
		}
		if ok := c.Decisions - c.Errors; c.Created != ok || c.Allowed != ok {
			return fmt.Errorf("%s: fresh keys: %d decisions (%d errors) admitted %d and created %d keys, want one admitted key each", sr.S.Name, c.Decisions, c.Errors, c.Allowed, c.Created)
		}
		sr.Paths[pathFresh] = append(sr.Paths[pathFresh], c)
		fmt.Fprintf(progress, "  %-34s conc=%-3d fresh keys   script=%.2fµs/call calls=%d keys created=%d errors=%d\n",
			sr.S.Name, pr.conc, c.ScriptMicros(), c.Decisions, c.Created, c.Errors)

		c, err = runCell(ctx, admin, sr.S, pr.deniedD[i], pr.keys, "hot", pr.conc, dur, false)
		if err != nil {
			return fmt.Errorf("%s: denials: %w", sr.S.Name, err)
		}
		if c.Allowed > 0 {
			return fmt.Errorf("%s: denials: %d of %d calls on exhausted keys were admitted", sr.S.Name, c.Allowed, c.Decisions)
		}
		sr.Paths[pathDenied] = append(sr.Paths[pathDenied], c)
		fmt.Fprintf(progress, "  %-34s conc=%-3d denials      script=%.2fµs/call calls=%d admitted=%d errors=%d\n",
			sr.S.Name, pr.conc, c.ScriptMicros(), c.Decisions, c.Allowed, c.Errors)
	}
	return nil
}

// finish takes the keys-in-use figure from the throughput cells, if they ran
// at the path cells' concurrency.
func (pr *pathRig) finish() {
	if !pr.inUseFromCells {
		return
	}
	for i, sr := range pr.subs {
		if pr.freshD[i] != nil {
			sr.Paths[pathInUse] = sr.Cells[cellKey{Conc: pr.conc}]
		}
	}
}
