package ratelimit

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Request is one call of a batch: AllowN(ctx, Key, N) on Limiter.
type Request struct {
	Limiter *Limiter
	Key     string
	// N is the cost; zero means 1 (use Peek for a call that consumes nothing).
	N int
}

// pipeliner is what go-redis clients (Client, ClusterClient, Ring) offer for
// pipelines.
type pipeliner interface {
	Pipeline() redis.Pipeliner
}

// AllowAll makes the decision of every request, sending the calls of limiters
// that share a client in one pipeline: one round trip per Redis node instead of
// one per request (a login checks per-IP, per-user and per-pair limits at once,
// say). Each decision is made and applied on its own, exactly as AllowN would:
// the batch is not all-or-nothing, since the keys may live on different Cluster
// nodes. To undo the admitted ones when one is denied, Refund them. With
// Config.Pipeline on (the default), the requests join their client's queue
// of coalesced calls together, so concurrent AllowAll and Allow calls share
// pipelines too, and each request ends within its limiter's Timeout.
//
// results[i] answers reqs[i]. errs is nil when every request was decided;
// otherwise errs[i] is AllowN's error for reqs[i] (nil for those decided, and
// each limiter's OnFailure applies to its own requests). A bad cost fails only
// its own request, before any Redis call.
//
// In a pipeline a NOSCRIPT cannot be retried in place, and Redis runs the
// commands after it anyway: AllowAll sends EVALSHA for all, then EVAL in a
// second pipeline for exactly those that Redis answered NOSCRIPT, which never
// ran. No request is ever run twice. Limiters whose client has no Pipeline
// method are called one by one.
func AllowAll(ctx context.Context, reqs ...Request) (results []Result, errs []error) {
	results = make([]Result, len(reqs))
	items := make([]batchItem, len(reqs))
	var failed bool
	for i, r := range reqs {
		n := r.N
		if n == 0 {
			n = 1
		}
		items[i] = batchItem{l: r.Limiter, n: n}
		if r.Limiter == nil {
			items[i].err = fmt.Errorf("ratelimit: AllowAll: request %d has no Limiter: %w", i, ErrInvalidConfig)
		} else if err := r.Limiter.checkCost("cost", n); err != nil {
			items[i].err = err
		} else {
			items[i].keys = r.Limiter.keys(r.Key)
		}
	}
	// Group the valid requests by coalescer (limiters that pipeline: their
	// calls join its queue together, and ride one pipeline with any other
	// calls queued on the client), else by client; each group is one pipeline.
	done := make([]bool, len(reqs))
	for i := range items {
		if done[i] || items[i].err != nil {
			continue
		}
		co := items[i].l.co
		group := []*batchItem{&items[i]}
		done[i] = true
		for j := i + 1; j < len(items); j++ {
			if done[j] || items[j].err != nil {
				continue
			}
			if (co != nil && items[j].l.co == co) || (co == nil && items[j].l.co == nil && sameClient(items[i].l.client, items[j].l.client)) {
				group = append(group, &items[j])
				done[j] = true
			}
		}
		switch {
		case co != nil && len(group) == 1:
			it := group[0] // as Allow: straight out when nothing is queued
			it.res, it.err = co.allow(ctx, it.l, it.keys, it.n)
		case co != nil:
			co.allowAll(ctx, group)
		default:
			runGroup(ctx, group, time.Time{})
		}
	}
	for i := range items {
		results[i] = items[i].res
		failed = failed || items[i].err != nil
	}
	if !failed {
		return results, nil
	}
	errs = make([]error, len(reqs))
	for i := range items {
		errs[i] = items[i].err
	}
	return results, errs
}

// batchItem is one request of a batch and, after it ran, its answer.
type batchItem struct {
	l     *Limiter
	keys  []string // the Redis keys (Limiter.keys)
	n     int
	state *atomic.Int32 // a coalesced call's state (see pending), or nil

	res Result
	err error
}

// runGroup decides a group of requests whose limiters share one client,
// within the smallest Timeout of their limiters and, if end is not zero, by
// end. ctx is the callers' context (for the failure policies).
func runGroup(ctx context.Context, group []*batchItem, end time.Time) {
	client := group[0].l.client
	p, ok := client.(pipeliner)
	if !ok || len(group) == 1 {
		for _, it := range group {
			// Not AllowN: a coalesced call must not be queued again.
			res, err := it.l.call(ctx, it.keys, it.n, OpAllow)
			if it.claim() {
				it.res, it.err = res, err
			}
		}
		return
	}
	if err := ctx.Err(); err != nil {
		for _, it := range group {
			it.err = err
		}
		return
	}
	timeout := group[0].l.cfg.Timeout
	for _, it := range group[1:] {
		timeout = min(timeout, it.l.cfg.Timeout)
	}
	deadline := time.Now().Add(timeout)
	if !end.IsZero() && end.Before(deadline) {
		deadline = end
	}
	rctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	if cc, ok := client.(*redis.ClusterClient); ok {
		runOnPrimaries(ctx, rctx, cc, group)
		return
	}
	pipelineGroup(ctx, rctx, client, p, group, nil)
}

// nodeRun collects, for a pipeline sent to one Cluster node, the items to
// send again through the ClusterClient and whether the node looked gone.
type nodeRun struct {
	redirected []*batchItem // answered MOVED or ASK: never ran
	sick       bool         // a connection error or no writable primary
}

// pipelineGroup sends group in one pipeline on client and finishes each item.
// With run set (client is one Cluster node), items answered MOVED or ASK are
// left unfinished in run.redirected.
func pipelineGroup(ctx, rctx context.Context, client redis.Scripter, p pipeliner, group []*batchItem, run *nodeRun) {
	start := time.Now()
	cmds := make([]*redis.Cmd, len(group))
	pipe := p.Pipeline()
	for i, it := range group {
		if sha := it.l.script.digest(rctx, client); sha != "" {
			cmds[i] = pipe.EvalSha(rctx, sha, it.keys, it.l.args(it.n, OpAllow)...)
		} else {
			cmds[i] = pipe.Eval(rctx, it.l.script.src, it.keys, it.l.args(it.n, OpAllow)...)
		}
	}
	_, err := pipe.Exec(rctx)
	unanswered(cmds, err)
	reloaded := make([]bool, len(group))
	var again redis.Pipeliner
	for i, c := range cmds {
		if err := c.Err(); err != nil && isNoScript(err) {
			// This EVALSHA never ran: send the script itself.
			if again == nil {
				again = p.Pipeline()
			}
			reloaded[i] = true
			cmds[i] = again.Eval(rctx, group[i].l.script.src, group[i].keys, group[i].l.args(group[i].n, OpAllow)...)
		}
	}
	if again != nil {
		_, err := again.Exec(rctx)
		unanswered(cmds, err)
	}
	took := time.Since(start)
	for i, it := range group {
		reply, err := cmds[i].Result()
		if run != nil && err != nil {
			if isRedirect(err) {
				run.redirected = append(run.redirected, it)
				continue
			}
			if k := ErrorKind(err); k == KindConnection || k == KindUnavailable {
				run.sick = true
			}
		}
		if !it.claim() {
			continue // its caller has given up and answered it
		}
		it.res, it.err = it.l.finish(ctx, it.keys, it.n, OpAllow, reply, err, reloaded[i], took)
	}
}

// unanswered gives err, the error a pipeline's Exec returned, to each of its
// commands left with neither a reply nor an error: go-redis leaves them so
// when the pipeline never got a connection (a dial error: v9.3's
// generalProcessPipeline returns it without setting the commands' errors).
// Such a command never ran. A command with a reply, or an error of its own,
// keeps it.
func unanswered(cmds []*redis.Cmd, err error) {
	if err == nil {
		return
	}
	for _, c := range cmds {
		if c.Err() == nil && c.Val() == nil {
			c.SetErr(err)
		}
	}
}

// runOnPrimaries decides a group on a ClusterClient with one pipeline per
// primary, each sent through that node's own client, which makes one attempt.
// The ClusterClient's own pipelines are not used: after a cut connection they
// send a node's whole pipeline again, running scripts that had already run
// (see script.runOnPrimary). Items answered MOVED or ASK never ran and are
// decided one by one through the ClusterClient, which follows the redirect.
func runOnPrimaries(ctx, rctx context.Context, cc *redis.ClusterClient, group []*batchItem) {
	byNode := map[*redis.Client][]*batchItem{}
	var alone []*batchItem
	for _, it := range group {
		node, err := cc.MasterForKey(rctx, it.keys[0])
		if err != nil {
			alone = append(alone, it)
			continue
		}
		byNode[node] = append(byNode[node], it)
	}
	runs := make([]nodeRun, len(byNode))
	var wg sync.WaitGroup
	i := 0
	for node, items := range byNode {
		wg.Add(1)
		go func(run *nodeRun) {
			defer wg.Done()
			pipelineGroup(ctx, rctx, node, node, items, run)
		}(&runs[i])
		i++
	}
	wg.Wait()
	for _, run := range runs {
		if run.sick || len(run.redirected) > 0 {
			cc.ReloadState(ctx)
		}
		alone = append(alone, run.redirected...)
	}
	for _, it := range alone {
		res, err := it.l.call(ctx, it.keys, it.n, OpAllow)
		if it.claim() {
			it.res, it.err = res, err
		}
	}
}

// sameClient reports whether a and b are the same client value.
func sameClient(a, b redis.Scripter) bool {
	t := reflect.TypeOf(a)
	return t == reflect.TypeOf(b) && t.Comparable() && a == b
}
