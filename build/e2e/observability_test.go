package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/regdns/regdns/plugin/dnstest"
)

// The alert rules and the dashboard of build/package, checked against promtool and against
// the metrics ./coredns exports.

const (
	alertRules = "../package/prometheus/alerts.yml"
	dashboard  = "../package/grafana/regdns.json"
)

func TestAlertRules(t *testing.T) {
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Fatal("promtool is required (make test installs Debian's prometheus package)")
	}
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command("promtool", args...)
		cmd.Dir = "../package/prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// promQLNoise is what promQLMetrics removes before reading metric names: strings, label
// matchers, range and offset durations, and the label lists of by/without/on/ignoring/group_*.
var promQLNoise = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|\{[^}]*\}|\[[^\]]*\]|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)

var promQLWord = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)

// promQLKeywords are the words of PromQL that are not metric names (functions are told by
// the parenthesis that follows them).
var promQLKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true}

// promQLMetrics returns the metric names a PromQL expression reads. Dashboard variables
// ($instance, $__rate_interval) are inside matchers and ranges, which are removed first.
func promQLMetrics(expr string) []string {
	var names []string
	for _, m := range promQLWord.FindAllStringSubmatch(promQLNoise.ReplaceAllString(expr, " "), -1) {
		word := m[0]
		if m[1] != "" || promQLKeywords[strings.ToLower(word)] {
			continue
		}
		names = append(names, word)
	}
	return names
}

func TestPromQLMetrics(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum by (instance) (rate(a_total{code=~"5.."}[5m])) / sum by (instance) (rate(a_total[5m])) > 0.05`: {"a_total", "a_total"},
		`histogram_quantile(0.99, sum by (le) (rate(x_bucket{instance=~"$instance"}[$__rate_interval])))`:   {"x_bucket"},
		`x > 10 and y > 0.01 * sum without (job) (z)`:                                                       {"x", "y", "z"},
		`label_values(coredns_registry_view_names, instance)`:                                               {"coredns_registry_view_names", "instance"},
	} {
		if got := promQLMetrics(expr); !slices.Equal(got, want) {
			t.Errorf("promQLMetrics(%q) = %q, want %q", expr, got, want)
		}
	}
}

// usedMetrics returns every metric name the alert rules and the dashboard read, each with
// where it is read.
func usedMetrics(t *testing.T) map[string]string {
	used := map[string]string{}
	for alert, expr := range ruleExprs(mustRead(t, alertRules)) {
		for _, m := range promQLMetrics(expr) {
			used[m] = "alert " + alert
		}
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal([]byte(mustRead(t, dashboard)), &dash); err != nil {
		t.Fatal(err)
	}
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			for _, m := range promQLMetrics(target.Expr) {
				used[m] = "dashboard panel " + p.Title
			}
		}
	}
	return used
}

// ruleExprs returns the expr of each alert of a rules file: the value after "expr:", or the
// lines of the block ("expr: |") below it, which are indented further.
func ruleExprs(rules string) map[string]string {
	exprs := map[string]string{}
	lines := strings.Split(rules, "\n")
	alert := ""
	for i := 0; i < len(lines); i++ {
		field := strings.TrimSpace(lines[i])
		if name, ok := strings.CutPrefix(field, "- alert:"); ok {
			alert = strings.TrimSpace(name)
		}
		expr, ok := strings.CutPrefix(field, "expr:")
		if !ok {
			continue
		}
		if expr = strings.TrimSpace(expr); expr == "|" || expr == ">" {
			indent := len(lines[i]) - len(strings.TrimLeft(lines[i], " "))
			expr = ""
			for i+1 < len(lines) && len(lines[i+1])-len(strings.TrimLeft(lines[i+1], " ")) > indent {
				i++
				expr += lines[i] + "\n"
			}
		}
		exprs[alert] = expr
	}
	return exprs
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// exportedMetrics returns the sample names of a Prometheus text exposition: a histogram's
// are NAME_bucket, NAME_sum and NAME_count, and a vector without series has none.
func exportedMetrics(r io.Reader) map[string]bool {
	names := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

// TestDashboardAndAlertMetricsExist runs ./coredns, makes one DNS query and a few API calls
// (vectors without initialised series have none before their first event: responses, API
// requests and their latency), and fails if the rules or the dashboard read a metric its
// /metrics does not export.
func TestDashboardAndAlertMetricsExist(t *testing.T) {
	used := usedMetrics(t)
	// instance is the label label_values reads in the dashboard's variable.
	delete(used, "instance")
	if rules := ruleExprs(mustRead(t, alertRules)); len(rules) != 11 {
		t.Fatalf("read %d alert expressions, want the 11 of %s", len(rules), alertRules)
	}
	if len(used) < 25 {
		t.Fatalf("found only %d metric names in the rules and the dashboard: %v", len(used), used)
	}
	metricsAddr := dnstest.FreeAddrs(t, 1)[0]
	p := startServer(t, "    prometheus "+metricsAddr, "        ns ns1.example.org 127.0.0.1\n        tunnel 192.0.2.80")
	p.query("udp", "example.org.", dns.TypeSOA)
	p.call("/subscribe", url.Values{"name": {"metrics"}}, nil)
	p.call("/info", url.Values{"token": {"none"}}, nil)

	var missing []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			t.Fatalf("scraping /metrics: %v", err)
		}
		exported := exportedMetrics(resp.Body)
		resp.Body.Close()
		missing = missing[:0]
		for name := range used {
			if !exported[name] {
				missing = append(missing, name)
			}
		}
		// Some gauges are set by a loop that runs every second (etcd's database size).
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	sort.Strings(missing)
	for _, name := range missing {
		t.Errorf("%s reads %s, which ./coredns does not export", used[name], name)
	}
}
