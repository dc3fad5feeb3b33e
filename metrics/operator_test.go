package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// exported is what a Collector exports after the scripted sequence: series
// names (histograms as their _bucket, _sum and _count), label names, and the
// values of each label with a fixed set (outcome, kind).
type exported struct {
	names  map[string]bool
	labels map[string]bool
	values map[string]map[string]bool
}

func exportedSeries(t *testing.T) exported {
	t.Helper()
	c := mustCollector(t, Config{})
	script(t, c)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	ex := exported{names: map[string]bool{}, labels: map[string]bool{}, values: map[string]map[string]bool{"outcome": {}, "kind": {}}}
	for _, mf := range mfs {
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			// Prometheus stores a histogram as these three; its own name selects nothing.
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				ex.names[mf.GetName()+s] = true
			}
			ex.labels["le"] = true
		} else {
			ex.names[mf.GetName()] = true
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				ex.labels[l.GetName()] = true
				if v, ok := ex.values[l.GetName()]; ok {
					v[l.GetValue()] = true
				}
			}
		}
	}
	return ex
}

// matcher is one label matcher of a selector, such as outcome=~"denied|locked_out".
type matcher struct{ label, op, value string }

// query is what a PromQL expression refers to.
type query struct {
	metrics  []string // series names
	labels   []string // label names in matchers and in by/without/on/ignoring/group_* lists
	matchers []matcher
}

var (
	labelValuesCall = regexp.MustCompile(`^\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`)
	ident           = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*`)
	number          = regexp.MustCompile(`^(?:[0-9]+(?:ms|[smhdwy]))+|^[0-9][0-9.eE+-]*`) // durations first
	matcherRe       = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$`)
	labelListKW     = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}
	operatorKW      = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true}
	aggregationOps  = map[string]bool{"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
		"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true}
)

// parsePromQL extracts the series names, label names and matchers of q, with
// enough PromQL for dashboards and alerts: selectors, functions, aggregations
// with by/without, binary operators and vector matching, ranges, strings,
// Grafana's $variables and label_values(metric, label).
func parsePromQL(t *testing.T, q string) query {
	t.Helper()
	var out query
	if m := labelValuesCall.FindStringSubmatch(q); m != nil {
		out.metrics, out.labels = []string{m[1]}, []string{m[2]}
		return out
	}
	s := q
	for len(s) > 0 {
		switch c := s[0]; {
		case c == ' ' || c == '\t' || c == '\n' || strings.ContainsRune("()+-*/^%,<>=!", rune(c)):
			s = s[1:]
		case c == '[': // range or subquery: durations and $__rate_interval
			end := strings.IndexByte(s, ']')
			if end < 0 {
				t.Fatalf("unclosed [ in %s", q)
			}
			s = s[end+1:]
		case c == '{':
			end := strings.IndexByte(s, '}')
			if end < 0 {
				t.Fatalf("unclosed { in %s", q)
			}
			for _, part := range splitMatchers(s[1:end]) {
				m := matcherRe.FindStringSubmatch(part)
				if m == nil {
					t.Errorf("cannot parse matcher %q in %s", part, q)
					continue
				}
				out.labels = append(out.labels, m[1])
				out.matchers = append(out.matchers, matcher{m[1], m[2], m[3]})
			}
			s = s[end+1:]
		case c == '"' || c == '\'' || c == '`':
			end := strings.IndexByte(s[1:], c)
			if end < 0 {
				t.Fatalf("unclosed string in %s", q)
			}
			s = s[end+2:]
		case c == '$': // Grafana variable
			s = s[1:]
			s = s[len(ident.FindString(s)):]
		case number.MatchString(s):
			s = s[len(number.FindString(s)):]
		default:
			id := ident.FindString(s)
			if id == "" {
				t.Fatalf("unexpected %q in %s", s, q)
			}
			s = s[len(id):]
			rest := strings.TrimLeft(s, " \t\n")
			switch {
			case labelListKW[id]:
				if !strings.HasPrefix(rest, "(") {
					continue // group_left without labels
				}
				end := strings.IndexByte(rest, ')')
				for _, l := range strings.Split(rest[1:end], ",") {
					if l = strings.TrimSpace(l); l != "" {
						out.labels = append(out.labels, l)
					}
				}
				s = rest[end+1:]
			case operatorKW[strings.ToLower(id)], aggregationOps[id]: // sum by (l) (…)
			case strings.HasPrefix(rest, "("): // function or aggregation
			default:
				out.metrics = append(out.metrics, id)
			}
		}
	}
	return out
}

// splitMatchers splits a selector's inside at the commas outside strings.
func splitMatchers(s string) []string {
	var parts []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && quoted:
			i++
		case s[i] == '"':
			quoted = !quoted
		case s[i] == ',' && !quoted:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	if strings.TrimSpace(s[start:]) != "" {
		parts = append(parts, s[start:])
	}
	return parts
}

// TestParsePromQL checks the parser the operator-file tests rely on.
func TestParsePromQL(t *testing.T) {
	q := parsePromQL(t, `max without (algorithm) (x_total) / histogram_quantile(0.99, sum by (limiter, le) (rate(ratelimit_redis_duration_seconds_bucket{limiter=~"$limiter",outcome!="a,b"}[$__rate_interval]))) > 0.05 and on(limiter) group_left ratelimit_x_total offset 5m`)
	if want := []string{"x_total", "ratelimit_redis_duration_seconds_bucket", "ratelimit_x_total"}; !slices.Equal(q.metrics, want) {
		t.Errorf("metrics = %v, want %v", q.metrics, want)
	}
	if want := []string{"algorithm", "limiter", "le", "limiter", "outcome", "limiter"}; !slices.Equal(q.labels, want) {
		t.Errorf("labels = %v, want %v", q.labels, want)
	}
	if want := []matcher{{"limiter", "=~", "$limiter"}, {"outcome", "!=", "a,b"}}; !slices.Equal(q.matchers, want) {
		t.Errorf("matchers = %v, want %v", q.matchers, want)
	}
	q = parsePromQL(t, `label_values(ratelimit_decisions_total, limiter)`)
	if !slices.Equal(q.metrics, []string{"ratelimit_decisions_total"}) || !slices.Equal(q.labels, []string{"limiter"}) {
		t.Errorf("label_values: %+v", q)
	}
}

// checkQuery reports every series, label and label value of q that the
// Collector does not export.
func checkQuery(t *testing.T, where, q string, ex exported) query {
	t.Helper()
	p := parsePromQL(t, q)
	if len(p.metrics) == 0 {
		t.Errorf("%s: query names no series: %s", where, q)
	}
	for _, n := range p.metrics {
		if !ex.names[n] {
			t.Errorf("%s: series %s is not exported by the Collector: %s", where, n, q)
		}
	}
	for _, l := range p.labels {
		if !ex.labels[l] {
			t.Errorf("%s: label %s is not exported by the Collector: %s", where, l, q)
		}
	}
	for _, m := range p.matchers {
		known, ok := ex.values[m.label]
		if !ok {
			continue
		}
		for _, v := range strings.Split(m.value, "|") {
			if !known[v] {
				t.Errorf("%s: %s=%q: %q is not a value the Collector exports (%v): %s", where, m.label, m.value, v, keys(known), q)
			}
		}
	}
	return p
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestDashboard checks that metrics/dashboard.json is valid JSON, that every
// query in it names only series, labels and label values the Collector
// exports, and that it shows what operators need.
func TestDashboard(t *testing.T) {
	ex := exportedSeries(t)
	raw, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	var all []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Expr == "" {
				t.Errorf("panel %q has a target without expr", p.Title)
			}
			checkQuery(t, "dashboard panel "+p.Title, tg.Expr, ex)
			all = append(all, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if q, ok := v.Query.(string); ok && v.Type == "query" {
			checkQuery(t, "dashboard variable", q, ex)
		}
	}
	// What the issue asks the dashboard to show.
	for _, want := range []string{
		`rate(ratelimit_decisions_total`,                        // decisions per second
		`sum by (limiter, outcome)`,                             // … by outcome and limiter
		`outcome=~"denied|locked_out`,                           // deny ratio
		`histogram_quantile(0.5, `, `histogram_quantile(0.99, `, // latency p50, p99
		`ratelimit_redis_duration_seconds_bucket`,
		`sum by (limiter, kind) (rate(ratelimit_redis_errors_total`, // errors by kind
		`ratelimit_script_reloads_total`,                            // NOSCRIPT fallbacks
		`ratelimit_lockouts_total`,
	} {
		if !slices.ContainsFunc(all, func(q string) bool { return strings.Contains(q, want) }) {
			t.Errorf("no dashboard query contains %q", want)
		}
	}
}

// alertRule is one rule of alerts.yml, read line by line (no YAML dependency):
// the file keeps every expr on one line.
type alertRule struct {
	name, expr, dur, severity, summary, description string
}

func readAlerts(t *testing.T) []alertRule {
	t.Helper()
	raw, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules []alertRule
	for i, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		if strings.Contains(line, "\t") {
			t.Errorf("alerts.yml:%d: tab in YAML", i+1)
		}
		if name, ok := strings.CutPrefix(line, "- alert:"); ok {
			rules = append(rules, alertRule{name: strings.TrimSpace(name)})
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok || len(rules) == 0 {
			continue
		}
		r := &rules[len(rules)-1]
		val = strings.TrimSpace(val)
		if strings.HasPrefix(val, "|") || strings.HasPrefix(val, ">") {
			t.Errorf("alerts.yml:%d: %s must be on one line for this test to read it", i+1, key)
		}
		unquoted := strings.Trim(val, `"`)
		switch key {
		case "expr":
			r.expr = val
		case "for":
			r.dur = val
		case "severity":
			r.severity = val
		case "summary":
			r.summary = unquoted
		case "description":
			r.description = unquoted
		}
	}
	return rules
}

// TestAlerts checks that every rule of metrics/alerts.yml names only series,
// labels and label values the Collector exports, says what to do, and that
// the rules cover what the issue asks for.
func TestAlerts(t *testing.T) {
	ex := exportedSeries(t)
	rules := readAlerts(t)
	names := map[string]bool{}
	for _, r := range rules {
		if names[r.name] {
			t.Errorf("alert %s defined twice", r.name)
		}
		names[r.name] = true
		if r.expr == "" || r.dur == "" || r.severity == "" {
			t.Errorf("alert %s: expr %q, for %q, severity %q: all are required", r.name, r.expr, r.dur, r.severity)
		}
		if len(r.summary) < 20 || len(r.description) < 60 {
			t.Errorf("alert %s: summary %q and description %q must say what happens and what to do", r.name, r.summary, r.description)
		}
		if r.expr != "" {
			checkQuery(t, "alert "+r.name, r.expr, ex)
		}
	}
	// What the issue asks the alerts to catch.
	for name, want := range map[string]string{
		"RateLimiterFailingOpen":       `outcome="failed_open"`,
		"RateLimiterRedisErrors":       `ratelimit_redis_errors_total`,
		"RateLimiterDenialSpike":       `outcome=~"denied|locked_out"`,
		"RateLimiterLockoutSpike":      `ratelimit_lockouts_total`,
		"RateLimiterScriptReloadStorm": `ratelimit_script_reloads_total`,
	} {
		r := rules[slices.IndexFunc(rules, func(r alertRule) bool { return r.name == name || r.name == "" })]
		if r.name != name {
			t.Errorf("no alert %s", name)
			continue
		}
		if !strings.Contains(r.expr, want) {
			t.Errorf("alert %s: expr %s does not use %s", name, r.expr, want)
		}
	}
	if len(rules) < 5 {
		t.Errorf("alerts.yml has %d rules", len(rules))
	}
}
