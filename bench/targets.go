package main

import (
	"fmt"
	"strings"
)

// target is one of the performance targets (issues 7 and 16), checked
// against this run.
type target struct {
	Name     string
	Measured string
	Met      bool
	// Undecided reports that the run cannot tell: Met follows the median of
	// the per-repetition ratios, but the median's confidence interval
	// (medianInterval) reaches both sides of the target.
	Undecided bool
}

// ratioTarget is a target on the median of the paired ratios of a over b:
// at least want (more than want if strict).
type ratioTarget struct {
	v      []float64 // sorted per-repetition ratios
	want   float64
	strict bool
}

// met reports whether x meets the target.
func (t ratioTarget) met(x float64) bool { return x > t.want || (!t.strict && x == t.want) }

// judge returns whether the median meets the target, whether the median's
// interval leaves that undecided, and the interval as text.
func (t ratioTarget) judge() (met, undecided bool, interval string) {
	if len(t.v) == 0 {
		return false, false, ""
	}
	med, _, _ := medianRange(t.v)
	lo, hi, cov := medianInterval(t.v)
	return t.met(med), t.met(lo) != t.met(hi), fmt.Sprintf("%.0f%% interval of the median %.2f–%.2f", 100*cov, lo, hi)
}

func (r *report) targets() []target {
	top := r.topConc()
	many, one := cellKey{Conc: top}, cellKey{Conc: 1}
	pfloor, rr, ul, th := r.find(pipelinedFloor), r.find("redis_rate"), r.find("ulule"), r.find("throttled")
	tb, lb, sw := r.find("ours TokenBucket"), r.find("ours LeakyBucket"), r.find("ours SlidingWindow")
	off, two, lim2, per := r.find(pipelineOff), r.find(twoRates), r.find(twoLimiters), r.find(perCallRate)
	var ts []target
	p99 := func(c cell) float64 { return float64(c.P99) }
	paired := func(name string, a, b *subjectResult, k cellKey, want float64, strict bool, extra func() (string, bool)) {
		if a == nil || b == nil {
			return
		}
		v := pairedRatios(a, b, k)
		m, lo, hi := medianRange(v)
		met, undecided, interval := ratioTarget{v, want, strict}.judge()
		measured := fmt.Sprintf("%s vs %s; paired ratio %s; %s", fmtRate(a.rate(k)), fmtRate(b.rate(k)), fmtPaired(m, lo, hi), interval)
		if extra != nil {
			more, ok := extra()
			measured += "; " + more
			met, undecided = met && ok, undecided && ok
		}
		ts = append(ts, target{Name: name, Measured: measured, Met: met, Undecided: undecided})
	}
	// The default, as New gives it.
	for _, b := range []*subjectResult{tb, lb} {
		if b == nil || rr == nil {
			continue
		}
		paired(fmt.Sprintf("%s (default) ≥ 2 × redis_rate, p99 no worse (%d goroutines, many keys)", b.S.Name, top), b, rr, many, 2, false, func() (string, bool) {
			p, q := b.med(many, p99), rr.med(many, p99)
			return fmt.Sprintf("p99 %s µs vs %s µs", fmtDur(p), fmtDur(q)), p <= q
		})
		paired(fmt.Sprintf("%s (default) no slower than redis_rate at 1 goroutine", b.S.Name), b, rr, one, 1, false, nil)
		paired(fmt.Sprintf("%s (default) ≥ 0.8 × the pipelined floor (%d goroutines, many keys)", b.S.Name, top), b, pfloor, many, 0.8, false, nil)
	}
	for _, b := range []*subjectResult{tb, lb, sw} {
		if b == nil {
			continue
		}
		rd := b.med(many, func(c cell) float64 { return c.perDecision(c.RedisCPU) })
		ts = append(ts, target{
			Name:     fmt.Sprintf("%s (default) Redis CPU ≤ 5 µs/decision (%d goroutines, many keys)", b.S.Name, top),
			Measured: fmt.Sprintf("median %.1f µs", rd),
			Met:      rd > 0 && rd <= 5,
		})
	}
	if tb != nil {
		if lone, loneOff := r.find("ours TokenBucket"), off; lone != nil && loneOff != nil && len(lone.Lone) > 0 && len(loneOff.Lone) > 0 {
			a, _ := loneStats(lone.Lone)
			b, _ := loneStats(loneOff.Lone)
			ts = append(ts, target{
				Name:     "A lone caller (one call a second): the default no slower than Pipeline off (p50 within 10%)",
				Measured: fmt.Sprintf("p50 %s µs vs %s µs over %d calls each", fmtDur(float64(a)), fmtDur(float64(b)), len(lone.Lone)),
				Met:      float64(a) <= 1.1*float64(b),
			})
		}
	}
	// One round trip per decision.
	if off != nil {
		paired(fmt.Sprintf("%s ≥ 1.2 × redis_rate (one round trip per decision)", off.S.Name), off, rr, many, 1.2, false, nil)
		paired(fmt.Sprintf("%s ahead of throttled", off.S.Name), off, th, many, 1, true, nil)
		paired(fmt.Sprintf("%s ahead of ulule", off.S.Name), off, ul, many, 1, true, nil)
	}
	// Policies: two rates in one call, rates per call.
	if two != nil && tb != nil {
		a, b := two.med(many, cell.ScriptMicros), tb.med(many, cell.ScriptMicros)
		ts = append(ts, target{
			Name:     "Two rates in one call: script time ≤ 1.5 × one rate's, one round trip per decision",
			Measured: fmt.Sprintf("median %.2f µs vs %.2f µs (×%.2f); %.2f round trips per decision", a, b, a/b, two.Alloc.RoundTrips),
			Met:      a > 0 && a <= 1.5*b && two.Alloc.RoundTrips <= 1,
		})
	}
	paired(fmt.Sprintf("Two rates in one call ≥ 1.8 × two limiters and a Refund (%d goroutines, many keys)", top), two, lim2, many, 1.8, false, nil)
	if per != nil && tb != nil {
		v := pairedRatios(per, tb, many)
		m, lo, hi := medianRange(v)
		mlo, mhi, cov := medianInterval(v)
		ts = append(ts, target{
			Name:     "A rate per call no slower than a fixed rate, within the run's noise",
			Measured: fmt.Sprintf("%s vs %s; paired ratio %s; %.0f%% interval of the median %.2f–%.2f", fmtRate(per.rate(many)), fmtRate(tb.rate(many)), fmtPaired(m, lo, hi), 100*cov, mlo, mhi),
			Met:      len(v) > 0 && mhi >= 1,
		})
	}
	// Earlier targets that still hold the design to account.
	if sw != nil && tb != nil && lb != nil {
		v1, v2 := pairedRatios(sw, tb, many), pairedRatios(sw, lb, many)
		met1, und1, int1 := ratioTarget{v1, 0.9, false}.judge()
		met2, und2, int2 := ratioTarget{v2, 0.9, false}.judge()
		m1, _, _ := medianRange(v1)
		m2, _, _ := medianRange(v2)
		sureYes := met1 && !und1 && met2 && !und2
		sureNo := (!met1 && !und1) || (!met2 && !und2)
		ts = append(ts, target{
			Name:      "ours SlidingWindow within 10% of the buckets",
			Measured:  fmt.Sprintf("paired ratio to TokenBucket %.2f (%s), to LeakyBucket %.2f (%s)", m1, int1, m2, int2),
			Met:       met1 && met2,
			Undecided: !sureYes && !sureNo,
		})
	}
	hot := cellKey{Conc: top, Hot: true}
	for _, s := range []struct {
		sr  *subjectResult
		max float64
	}{{tb, 5}, {lb, 5}, {sw, 7}} {
		if s.sr == nil {
			continue
		}
		m, h := s.sr.med(many, cell.ScriptMicros), s.sr.med(hot, cell.ScriptMicros)
		ml, hl := minOf(s.sr.Cells[many], cell.ScriptMicros), minOf(s.sr.Cells[hot], cell.ScriptMicros)
		ts = append(ts, target{
			Name:     fmt.Sprintf("%s script time ≤ %.0f µs/call", s.sr.S.Name, s.max),
			Measured: fmt.Sprintf("median %.2f µs many keys, %.2f µs hot key (min %.2f, %.2f)", m, h, ml, hl),
			Met:      m <= s.max && h <= s.max,
		})
	}
	for _, s := range []struct {
		sr  *subjectResult
		max int64
	}{{tb, 72}, {lb, 72}, {sw, 100}} {
		if s.sr == nil {
			continue
		}
		ts = append(ts, target{
			Name:     fmt.Sprintf("%s MEMORY USAGE ≤ %d bytes/key", s.sr.S.Name, s.max),
			Measured: fmt.Sprintf("%d bytes (`%s`); used_memory delta %.0f bytes/key", s.sr.Mem.MemoryUsage, s.sr.Mem.Key, s.sr.Mem.PerKey),
			Met:      s.sr.Mem.MemoryUsage > 0 && s.sr.Mem.MemoryUsage <= s.max,
		})
	}
	for _, s := range []*subjectResult{tb, lb, sw} {
		if s == nil || rr == nil {
			continue
		}
		ts = append(ts, target{
			Name:     fmt.Sprintf("%s allocations/decision < redis_rate's", s.S.Name),
			Measured: fmt.Sprintf("%.1f vs %.1f", s.Alloc.Allocs, rr.Alloc.Allocs),
			Met:      s.Alloc.Allocs < rr.Alloc.Allocs,
		})
	}
	for _, s := range r.Subjects {
		if s.S.Kind != kindOurs {
			continue
		}
		var adm []string
		errs := 0
		for _, b := range s.Bursts {
			adm = append(adm, fmt.Sprint(b.Admitted))
			errs += b.Errors
		}
		var cellErrs int64
		for _, c := range r.Opts.Concs {
			e, _, _ := s.errors(cellKey{Conc: c, Hot: true})
			cellErrs += e
		}
		v := burstVerdict(s.Bursts, r.Opts.BurstLimit)
		ts = append(ts, target{
			Name: fmt.Sprintf("%s: no over-admission, no errors under the hot-key burst", s.S.Name),
			Measured: fmt.Sprintf("admitted %s of limit %d (%s), %d burst errors, %d errors in the hot-key throughput cells",
				strings.Join(adm, ", "), r.Opts.BurstLimit, v, errs, cellErrs),
			Met: v == "exact" && cellErrs == 0,
		})
	}
	return ts
}

// analysis explains, from this run's figures, what bounds decisions per second.
func (r *report) analysis() string {
	top := r.topConc()
	many := cellKey{Conc: top}
	var b strings.Builder
	fmt.Fprintf(&b, "At %d goroutines on many keys, per decision (medians). With %d cores, a subject whose client and Redis CPU per decision add up to C µs cannot exceed %d×10⁶/C decisions/s on this machine; ", top, r.Env.Cores, r.Env.Cores)
	b.WriteString("Redis alone, on its one thread, cannot exceed 10⁶/R where R is its CPU µs per decision.\n\n")
	b.WriteString("| Subject | Client CPU µs | Redis CPU µs | of which script µs | CPU bound (cores) decisions/s | Redis-thread bound decisions/s | Measured decisions/s | Measured ÷ CPU bound |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, sr := range r.Subjects {
		cl := sr.med(many, func(c cell) float64 { return c.perDecision(c.ClientCPU) })
		rd := sr.med(many, func(c cell) float64 { return c.perDecision(c.RedisCPU) })
		sc := sr.med(many, cell.ScriptMicros)
		if cl+rd == 0 || rd == 0 {
			continue
		}
		bound := float64(r.Env.Cores) * 1e6 / (cl + rd)
		v := sr.rate(many)
		fmt.Fprintf(&b, "| %s | %.1f | %.1f | %.2f | %s | %s | %s | %.2f |\n", sr.S.Name, cl, rd, sc, fmtRate(bound), fmtRate(1e6/rd), fmtRate(v), v/bound)
	}
	b.WriteString("\nWhen *Measured ÷ CPU bound* is near 1, the machine's cores are the limit; well below 1, other processes took the rest (see the load average). Every one-round-trip subject pays about the same ")
	b.WriteString("client cost (go-redis encode/decode, a syscall pair, goroutine wake-ups) and the same Redis cost (read, parse, reply, epoll), ")
	b.WriteString("and the script time is what differs between them.")
	cpu := func(sr *subjectResult) (cl, rd, sc float64) {
		return sr.med(many, func(c cell) float64 { return c.perDecision(c.ClientCPU) }),
			sr.med(many, func(c cell) float64 { return c.perDecision(c.RedisCPU) }),
			sr.med(many, cell.ScriptMicros)
	}
	if floor, off := r.find("EVALSHA return 1"), r.find(pipelineOff); floor != nil && off != nil {
		fcl, frd, fsc := cpu(floor)
		if fc := fcl + frd; fc > 0 {
			cl, rd, sc := cpu(off)
			fmt.Fprintf(&b, " In this run the one-round-trip floor costs %.1f µs of CPU per decision (client %.1f + Redis %.1f), and %s %.1f µs more (script %+.2f µs, client %+.1f µs).",
				fc, fcl, frd, off.S.Name, cl+rd-fc, sc-fsc, cl-fcl)
		}
	}
	if floor, tb := r.find(pipelinedFloor), r.find("ours TokenBucket"); floor != nil && tb != nil {
		fcl, frd, fsc := cpu(floor)
		cl, rd, sc := cpu(tb)
		if fcl+frd > 0 {
			fmt.Fprintf(&b, " Pipelined, the floor costs %.1f µs (client %.1f + Redis %.1f) and the default token bucket %.1f µs more (script %+.2f µs, client %+.1f µs): ",
				fcl+frd, fcl, frd, cl+rd-fcl-frd, sc-fsc, cl-fcl)
			b.WriteString("the fixed costs shrink with the decisions per round trip, and the script is most of what is left.")
		}
	}
	b.WriteString(" Only carrying several decisions per round trip (batch calls, automatic pipelining) divides the fixed costs.\n")
	return b.String()
}
