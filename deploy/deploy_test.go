// Package deploy holds what operators deploy beside tandem: Prometheus alert
// rules (deploy/prometheus) with their promtool unit tests, a Grafana
// dashboard with its provisioning files (deploy/grafana), and an example
// Alertmanager configuration (deploy/alertmanager). Its Go test runs the real
// promtool and checks that the rules and the dashboard use only metric names
// tandem exports, so `make test` fails when a rule or a panel breaks.
// internal/app's TestMetricsExported_* check the same names against a
// running tandem's /metrics.
package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// knownMetrics are the metric families tandem exports, with their type: the
// CONTRACT.md table and the few beyond it. The alert rules and the dashboard
// may use only these.
var knownMetrics = map[string]string{
	// CONTRACT.md
	"tandem_capture_events_total":                     "counter",
	"tandem_capture_lag_seconds":                      "gauge",
	"tandem_replication_lag_seconds":                  "gauge",
	"tandem_apply_rows_total":                         "counter",
	"tandem_apply_errors_total":                       "counter",
	"tandem_dlq_events_total":                         "counter",
	"tandem_backfill_rows_total":                      "counter",
	"tandem_backfill_rows_estimated":                  "gauge",
	"tandem_drift_rows":                               "gauge",
	"tandem_reconcile_rule_rows":                      "gauge",
	"tandem_reconcile_rows_checked_total":             "counter",
	"tandem_reconcile_last_success_timestamp_seconds": "gauge",
	"tandem_consistency_check_value":                  "gauge",
	"tandem_source_retention_headroom_bytes":          "gauge",
	"tandem_mapping_paused":                           "gauge",
	"tandem_cohort_owner":                             "gauge",
	"tandem_switch_fence_seconds":                     "histogram",
	"tandem_cutover_misrouted_writes_total":           "counter",
	// Beyond CONTRACT.md's table.
	"tandem_reconcile_interval_seconds":        "gauge",
	"tandem_reconcile_sweep_duration_seconds":  "gauge",
	"tandem_source_retention_headroom_seconds": "gauge",     // binlog sources: binlogs expire by age
	"tandem_capture_streaming":                 "gauge",     // 1 while capture reads the source's stream
	"tandem_capture_standby":                   "gauge",     // 1 while a capture waits as another's standby
	"tandem_reconcile_unsettled_rows":          "gauge",     // rows that differed but settled: not drift
	"tandem_apply_batch_duration_seconds":      "histogram", // apply/metrics.go
	"tandem_waiting_for_brokers":               "gauge",     // 1 while a starting role waits for its brokers
}

var metricName = regexp.MustCompile(`\btandem_[a-z0-9_]+`)

// family returns the metric family of a series name: a histogram's _bucket,
// _sum and _count series belong to the histogram.
func family(name string) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && knownMetrics[base] == "histogram" {
			return base
		}
	}
	return name
}

// unknownMetrics returns the tandem_* names in text that tandem does not export.
func unknownMetrics(text string) []string {
	var out []string
	for _, name := range metricName.FindAllString(text, -1) {
		if _, ok := knownMetrics[family(name)]; !ok && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

func promtool(t *testing.T, dir string, args ...string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: run `make deps` (scripts/deps.sh installs Debian's prometheus package)")
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool %v: %v\n%s", args, err, out)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAlertRules_PassPromtoolCheckAndUnitTests(t *testing.T) {
	promtool(t, "prometheus", "check", "rules", "tandem-alerts.yml")
	promtool(t, "prometheus", "test", "rules", "tandem-alerts_test.yml")
}

// The rules may only use metric names tandem exports, so a renamed metric
// cannot silently disable an alert.
func TestAlertRules_UseOnlyContractMetrics(t *testing.T) {
	for _, name := range unknownMetrics(string(readFile(t, "prometheus/tandem-alerts.yml"))) {
		t.Errorf("rule uses %s, which tandem does not export (deploy_test.go knownMetrics)", name)
	}
}

// rule is an alerting rule of tandem-alerts.yml.
type rule struct {
	Alert  string            `yaml:"alert"`
	Expr   string            `yaml:"expr"`
	Labels map[string]string `yaml:"labels"`
}

func alertRules(t *testing.T) []rule {
	t.Helper()
	var f struct {
		Groups []struct {
			Rules []rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(readFile(t, "prometheus/tandem-alerts.yml"), &f); err != nil {
		t.Fatal(err)
	}
	var out []rule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatal("no rules in prometheus/tandem-alerts.yml")
	}
	return out
}

func TestAlertRules_EachHasASeverityAndAUnitTest(t *testing.T) {
	tests := string(readFile(t, "prometheus/tandem-alerts_test.yml"))
	for _, r := range alertRules(t) {
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: severity %q, want critical or warning (deploy/alertmanager routes by it)", r.Alert, s)
		}
		if !strings.Contains(tests, "alertname: "+r.Alert+"\n") {
			t.Errorf("%s has no test in tandem-alerts_test.yml", r.Alert)
		}
	}
}

// dashboard is what the tests read of tandem.json.
type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name       string      `json:"name"`
			Type       string      `json:"type"`
			Query      any         `json:"query"` // a string, or {"query": "..."}
			Datasource *datasource `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

func readDashboard(t *testing.T) (*dashboard, []panel) {
	t.Helper()
	raw := readFile(t, "grafana/tandem.json")
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("grafana/tandem.json: %v", err)
	}
	var flat []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			flat = append(flat, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return &d, flat
}

// templateQuery returns a template variable's query text.
func templateQuery(q any) string {
	switch q := q.(type) {
	case string:
		return q
	case map[string]any:
		s, _ := q["query"].(string)
		return s
	}
	return ""
}

func TestDashboard_IsWellFormed(t *testing.T) {
	d, panels := readDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Error("the dashboard needs a uid and a title (provisioning keys it by uid)")
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
			t.Errorf("variable %s: datasource %+v, want uid ${datasource}", v.Name, v.Datasource)
		}
	}
	for name, typ := range map[string]string{"datasource": "datasource", "job": "query", "instance": "query", "mapping": "query"} {
		if vars[name] != typ {
			t.Errorf("template variable %s: type %q, want %q", name, vars[name], typ)
		}
	}
	ids := map[int]string{}
	type rect struct {
		title      string
		x, y, w, h int
	}
	var placed []rect
	for _, p := range panels {
		if other, dup := ids[p.ID]; dup || p.ID == 0 {
			t.Errorf("panel %q: id %d is 0 or also %q's", p.Title, p.ID, other)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		for _, r := range placed {
			if g.X < r.x+r.w && r.x < g.X+g.W && g.Y < r.y+r.h && r.y < g.Y+g.H {
				t.Errorf("panel %q overlaps %q", p.Title, r.title)
			}
		}
		placed = append(placed, rect{p.Title, g.X, g.Y, g.W, g.H})
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want uid ${datasource} (the template variable)", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, q := range p.Targets {
			if q.RefID == "" || refs[q.RefID] {
				t.Errorf("panel %q: refId %q empty or repeated", p.Title, q.RefID)
			}
			refs[q.RefID] = true
			if q.Datasource == nil || q.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q %s: datasource %+v, want uid ${datasource}", p.Title, q.RefID, q.Datasource)
			}
			if len(metricName.FindAllString(q.Expr, -1)) == 0 {
				t.Errorf("panel %q %s: %q reads no tandem metric", p.Title, q.RefID, q.Expr)
			}
		}
	}
}

// Every tandem_* name anywhere in the dashboard (queries, variables,
// descriptions) is one tandem exports, and every metric tandem exports has
// a panel.
func TestDashboard_UsesOnlyKnownMetricsAndShowsEachOne(t *testing.T) {
	raw := string(readFile(t, "grafana/tandem.json"))
	for _, name := range unknownMetrics(raw) {
		t.Errorf("the dashboard uses %s, which tandem does not export (deploy_test.go knownMetrics)", name)
	}
	_, panels := readDashboard(t)
	shown := map[string]bool{}
	for _, p := range panels {
		for _, q := range p.Targets {
			for _, name := range metricName.FindAllString(q.Expr, -1) {
				shown[family(name)] = true
			}
		}
	}
	for name := range knownMetrics {
		if !shown[name] {
			t.Errorf("no panel queries %s", name)
		}
	}
}

// grafanaBuiltins stand in for Grafana's own variables so promtool can
// parse the queries; the dashboard's variables become ".+".
var grafanaBuiltins = map[string]string{"__rate_interval": "1m", "__interval": "1m", "__range": "1h"}

var grafanaVar = regexp.MustCompile(`\$(\w+)|\$\{(\w+)(?::\w+)?\}`)

var labelValues = regexp.MustCompile(`^label_values\((.*),\s*[a-zA-Z_]\w*\)$`)

// promtool parses every panel query and the selector of every variable
// query, with Grafana's variables replaced: each becomes a recording rule
// that `promtool check rules` must accept.
func TestDashboard_QueriesParse(t *testing.T) {
	d, panels := readDashboard(t)
	type recording struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	defined := map[string]bool{}
	for _, v := range d.Templating.List {
		defined[v.Name] = true
	}
	var rules []recording
	add := func(name, expr string) {
		e := grafanaVar.ReplaceAllStringFunc(expr, func(ref string) string {
			m := grafanaVar.FindStringSubmatch(ref)
			v := m[1] + m[2]
			if s, ok := grafanaBuiltins[v]; ok {
				return s
			}
			if !defined[v] {
				t.Errorf("%s: %q uses $%s, which the dashboard does not define", name, expr, v)
			}
			return ".+"
		})
		rules = append(rules, recording{Record: name, Expr: e})
	}
	for _, p := range panels {
		for _, q := range p.Targets {
			add(fmt.Sprintf("dashboard:panel_%d_%s", p.ID, q.RefID), q.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(templateQuery(v.Query))
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, templateQuery(v.Query))
			continue
		}
		add("dashboard:variable_"+v.Name, m[1])
	}
	out, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dashboard-queries.yml"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	promtool(t, dir, "check", "rules", "dashboard-queries.yml")
}

func TestGrafanaProvisioning_LoadsTheDashboardAndAPrometheusDatasource(t *testing.T) {
	var dashboards struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name    string `yaml:"name"`
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal(readFile(t, "grafana/provisioning/dashboards/dashboards.yml"), &dashboards); err != nil {
		t.Fatal(err)
	}
	if dashboards.APIVersion != 1 || len(dashboards.Providers) != 1 || dashboards.Providers[0].Type != "file" || dashboards.Providers[0].Options.Path == "" {
		t.Errorf("dashboards.yml: %+v, want apiVersion 1 and one file provider with a path", dashboards)
	}
	var datasources struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name, Type, URL string
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(readFile(t, "grafana/provisioning/datasources/datasources.yml"), &datasources); err != nil {
		t.Fatal(err)
	}
	if datasources.APIVersion != 1 || len(datasources.Datasources) != 1 || datasources.Datasources[0].Type != "prometheus" || datasources.Datasources[0].URL == "" {
		t.Errorf("datasources.yml: %+v, want apiVersion 1 and one prometheus data source with a url", datasources)
	}
}

// amRoute is a route of an Alertmanager configuration.
type amRoute struct {
	Receiver string    `yaml:"receiver"`
	Matchers []string  `yaml:"matchers"`
	Continue bool      `yaml:"continue"`
	Routes   []amRoute `yaml:"routes"`
}

var amMatcher = regexp.MustCompile(`^\s*([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"(.*)"\s*$`)

// matches reports whether labels satisfy every matcher (Alertmanager's
// syntax, label="value" with =, !=, =~ or !~).
func matches(t *testing.T, matchers []string, labels map[string]string) bool {
	t.Helper()
	for _, m := range matchers {
		p := amMatcher.FindStringSubmatch(m)
		if p == nil {
			t.Fatalf("matcher %q: not label<op>\"value\"", m)
		}
		v := labels[p[1]]
		var ok bool
		switch p[2] {
		case "=":
			ok = v == p[3]
		case "!=":
			ok = v != p[3]
		case "=~", "!~":
			ok = regexp.MustCompile("^(?:"+p[3]+")$").MatchString(v) == (p[2] == "=~")
		}
		if !ok {
			return false
		}
	}
	return true
}

// route returns the receiver Alertmanager picks for labels (the first
// matching child, depth first; this example uses no `continue`).
func route(t *testing.T, r amRoute, labels map[string]string) string {
	t.Helper()
	for _, c := range r.Routes {
		if matches(t, c.Matchers, labels) {
			if rcv := route(t, c, labels); rcv != "" {
				return rcv
			}
			return r.Receiver
		}
	}
	return r.Receiver
}

// The example routes every tandem alert by its severity (critical pages,
// warning does not), names only receivers it defines, and inhibits with
// alerts that exist.
func TestAlertmanagerExample_RoutesEachAlertBySeverity(t *testing.T) {
	var cfg struct {
		Route        amRoute `yaml:"route"`
		InhibitRules []struct {
			SourceMatchers []string `yaml:"source_matchers"`
			TargetMatchers []string `yaml:"target_matchers"`
			Equal          []string `yaml:"equal"`
		} `yaml:"inhibit_rules"`
		Receivers []struct {
			Name string `yaml:"name"`
		} `yaml:"receivers"`
	}
	if err := yaml.Unmarshal(readFile(t, "alertmanager/alertmanager.yml"), &cfg); err != nil {
		t.Fatal(err)
	}
	receivers := map[string]bool{}
	for _, r := range cfg.Receivers {
		receivers[r.Name] = true
	}
	var walk func(amRoute)
	walk = func(r amRoute) {
		if r.Receiver != "" && !receivers[r.Receiver] {
			t.Errorf("a route sends to %q, which receivers does not define", r.Receiver)
		}
		if r.Continue {
			t.Error("route() in this test does not follow `continue`: teach it before using it")
		}
		for _, c := range r.Routes {
			walk(c)
		}
	}
	walk(cfg.Route)

	want := map[string]string{"critical": "tandem-pager", "warning": "tandem-chat"}
	alerts := map[string]bool{}
	for _, r := range alertRules(t) {
		alerts[r.Alert] = true
		labels := map[string]string{"alertname": r.Alert, "severity": r.Labels["severity"]}
		if got := route(t, cfg.Route, labels); got != want[r.Labels["severity"]] {
			t.Errorf("%s (%s) goes to %q, want %q", r.Alert, r.Labels["severity"], got, want[r.Labels["severity"]])
		}
	}
	if len(cfg.InhibitRules) == 0 {
		t.Error("no inhibit rules: warnings of a tandem that is down should be held back")
	}
	for _, ir := range cfg.InhibitRules {
		for _, m := range slices.Concat(ir.SourceMatchers, ir.TargetMatchers) {
			p := amMatcher.FindStringSubmatch(m)
			if p != nil && p[1] == "alertname" && p[2] == "=" && !alerts[p[3]] {
				t.Errorf("inhibit rule names alert %s, which tandem-alerts.yml does not define", p[3])
			}
		}
		if len(ir.Equal) == 0 {
			t.Errorf("inhibit rule %v: without `equal` one tandem would silence every other", ir.SourceMatchers)
		}
	}
	names := make([]string, 0, len(alerts))
	for a := range alerts {
		names = append(names, a)
	}
	sort.Strings(names)
	t.Logf("routed: %s", strings.Join(names, ", "))
}
