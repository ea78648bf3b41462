package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// The goal of issue 14, which the report checks each server against.
const (
	goalP99         = 5 * time.Millisecond
	goalQPSShare    = 0.90 // of the same process's rate at baselineNames
	goalPingP99     = 50 * time.Millisecond
	goalRegistryRSS = 3 << 29 // 1.5 GiB
	goalReplicaRSS  = 1 << 30
	goalColdStart   = 20 * time.Second
)

// capacityReport prints what the run measured: how, each server's windows, a summary, and
// the goal's checks.
func (r *reporter) capacityReport(run *capacityRun) {
	p := run.plan
	main := p.mainPings(0)
	fmt.Fprintf(r.w, "\nCapacity: N=%d names; each record's last ping spread uniformly over [now-7h, now-1h), so that with the\n"+
		"  default ping_granularity 6h about 1/6 of the pings write to etcd, as in steady state.\n", p.n)
	fmt.Fprintf(r.w, "  DNS: dnsperf -c %d -q %d -l %v back to back, one run per %v window, %d queries in the issue's mix\n"+
		"       (%d%% A, %d%% challenge TXT, %d%% nonexistent); p50/p99 from dnsperf -v per-query times.\n",
		perfClients, p.outstanding, windowLength.Seconds(), windowLength, p.queries, mixA, mixTXT, mixNX)
	fmt.Fprintf(r.w, "  pings: GET /ping, open loop (each at its scheduled time, in its own goroutine), %.1f/s (N/3600: hourly\n"+
		"       gateways, each ping a different gateway) for the whole run, plus a burst of %d distinct gateways within %v\n"+
		"       from %v (registry and replica); registry-10k gets the same steady rate, no burst. Keep-alive client, at\n"+
		"       most %d connections; each ping from its gateway's recorded address (X-Real-IP through trusted_proxy).\n"+
		"       Latency is from the scheduled time to the answer; lag is the generator's own delay before sending.\n",
		main.rate, main.burst, main.burstSpan, main.burstStart, pingConns)
	fmt.Fprintf(r.w, "  memory: VmRSS (and RssFile) of the server process and the sum over its descendants, every 1 s.\n"+
		"  durations: registry and replica %v each, registry-10k %v, file and empty %v each.\n", p.main, p.baseline, p.reference)
	fmt.Fprintf(r.w, "  settings that differ from production: bind 127.0.0.1, trusted_proxy 127.0.0.1 (the generator gives each\n"+
		"       gateway's address), etcd_listen on a loopback port (the bulk writer and the replica use it), ready;\n"+
		"       write_limit, ping_granularity and api_max_connections are the defaults.\n")
	for _, cs := range run.servers {
		r.capacityWindows(cs)
	}
	r.capacitySummary(run.servers)
	r.capacityChecks(run.servers)
}

// capacityWindows is the per-window table of one server.
func (r *reporter) capacityWindows(cs *capacityServer) {
	title := cs.label
	if cs.names > 0 {
		title += fmt.Sprintf(", N=%d", cs.names)
	}
	if cs.coldStart > 0 {
		title += fmt.Sprintf(", cold start %.2f s", cs.coldStart.Seconds())
	}
	fmt.Fprintf(r.w, "\n%s (CPU %d)\n", title, serverCPU)
	for _, n := range cs.notes {
		fmt.Fprintf(r.w, "  note: %s\n", n)
	}
	tw := tabwriter.NewWriter(r.w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "time s\tq/s\tp50 ms\tp99 ms\tserver CPU\tpings\tpings/s\t200\trefused\tping p50 ms\tping p99 ms\tping max ms\tRSS total\tof it children\t")
	for _, w := range cs.windows {
		ping := "-\t-\t-\t-\t-\t-\t-"
		if cs.pings != nil {
			s := w.pings
			ping = fmt.Sprintf("%d\t%.1f\t%d\t%d\t%s\t%s\t%s", s.scheduled, float64(s.scheduled)/w.span().Seconds(), s.ok, s.failed,
				ms(float64(s.p50)), ms(float64(s.p99)), ms(float64(s.max)))
		}
		fmt.Fprintf(tw, "%.0f-%.0f\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t\n", w.lo.Seconds(), w.hi.Seconds(), w.perf.QPS,
			ms(float64(w.perf.P50)), ms(float64(w.perf.P99)), percent(w.serverCPU), ping,
			bytesOf(float64(w.peak.total())), bytesOf(float64(w.peak.childRSS)))
	}
	tw.Flush()
	if errs := distinctErrors(cs.results); len(errs) > 0 {
		fmt.Fprintf(r.w, "  ping errors (first %d distinct, with counts):\n", errorsShown)
		for _, e := range errs {
			fmt.Fprintf(r.w, "    %s\n", e)
		}
	}
}

// distinctErrors are the first errorsShown distinct ping errors, each with its count.
func distinctErrors(rs []pingResult) []string {
	count := map[string]int{}
	var order []string
	for _, p := range rs {
		if p.err == "" {
			continue
		}
		if count[p.err] == 0 {
			order = append(order, p.err)
		}
		count[p.err]++
	}
	var out []string
	for _, e := range order[:min(len(order), errorsShown)] {
		out = append(out, fmt.Sprintf("%dx %s", count[e], e))
	}
	return out
}

// capacitySummary is a figure of each kind per server, over its whole run.
type capacitySummary struct {
	medianQPS, worstQPS float64
	worstP99            time.Duration
	overP99             int // windows over goalP99
	pings               pingStats
	peak                memSample // of the whole run, by total
}

func summarize(cs *capacityServer) capacitySummary {
	var s capacitySummary
	var qps []float64
	for _, w := range cs.windows {
		qps = append(qps, w.perf.QPS)
		s.worstP99 = max(s.worstP99, w.perf.P99)
		if w.perf.P99 > goalP99 {
			s.overP99++
		}
	}
	if len(qps) > 0 {
		s.worstQPS = slices.Min(qps)
		s.medianQPS = median(qps)
	}
	s.pings = statsOf(cs.results)
	for _, m := range cs.memory {
		if m.total() > s.peak.total() {
			s.peak = m
		}
	}
	return s
}

func (r *reporter) capacitySummary(servers []*capacityServer) {
	fmt.Fprintf(r.w, "\nCapacity summary: q/s median and worst window, worst window p99; pings over the whole run (written: those\n"+
		"  the server wrote to etcd, counted in its audit log; the others were answered from its view); peak RSS of\n"+
		"  the server process, of its descendants, and their total (at the sample where the total peaked)\n")
	tw := tabwriter.NewWriter(r.w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\tN\twindows\tq/s median\tq/s worst\tp99 worst ms\tpings\twritten\tping p99 ms\tgenerator lag p99 ms\trefused\tpeak RSS\tprocess\tchildren\tcold start\t")
	for _, cs := range servers {
		s := summarize(cs)
		ping := "-\t-\t-\t-\t-"
		if cs.pings != nil {
			ping = fmt.Sprintf("%d\t%d (%s)\t%s\t%s\t%d", s.pings.scheduled, cs.written, percent(float64(cs.written)/float64(max(s.pings.scheduled, 1))),
				ms(float64(s.pings.p99)), ms(float64(s.pings.lagP99)), s.pings.failed)
		}
		cold := "-"
		if cs.coldStart > 0 {
			cold = fmt.Sprintf("%.2f s", cs.coldStart.Seconds())
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t\n", cs.label, cs.names, len(cs.windows), s.medianQPS, s.worstQPS,
			ms(float64(s.worstP99)), ping, bytesOf(float64(s.peak.total())), bytesOf(float64(s.peak.rss)), bytesOf(float64(s.peak.childRSS)), cold)
	}
	tw.Flush()
	byLabel := map[string]capacitySummary{}
	for _, cs := range servers {
		byLabel[cs.label] = summarize(cs)
	}
	for _, who := range []string{"registry", "replica"} {
		s, ok := byLabel[who]
		if !ok {
			continue
		}
		var vs []string
		for _, ref := range []string{"registry-10k", "file", "empty"} {
			if b, ok := byLabel[ref]; ok {
				vs = append(vs, fmt.Sprintf("%s vs %s", ratio(s.medianQPS, b.medianQPS), ref))
			}
		}
		if len(vs) > 0 {
			fmt.Fprintf(r.w, "%s median q/s: %s\n", who, strings.Join(vs, ", "))
		}
	}
}

// capacityChecks prints each figure of the goal as PASS or FAIL. They inform: a FAIL does not
// fail the benchmark.
func (r *reporter) capacityChecks(servers []*capacityServer) {
	fmt.Fprintf(r.w, "\nGoal of issue 14 (informational: a FAIL does not fail the benchmark)\n")
	for _, c := range goalChecks(servers) {
		verdict := "FAIL"
		if c.pass {
			verdict = "PASS"
		}
		fmt.Fprintf(r.w, "  %s  %s: %s\n", verdict, c.what, c.figure)
	}
}

// goalCheck is one figure of the goal against what a server measured.
type goalCheck struct {
	what, figure string
	pass         bool
}

func goalChecks(servers []*capacityServer) []goalCheck {
	var out []goalCheck
	var baseline *capacitySummary
	for _, cs := range servers {
		if cs.label == "registry-10k" {
			s := summarize(cs)
			baseline = &s
		}
	}
	for _, cs := range servers {
		rssGoal := map[string]int64{"registry": goalRegistryRSS, "replica": goalReplicaRSS}[cs.label]
		if rssGoal == 0 {
			continue
		}
		s := summarize(cs)
		add := func(what string, pass bool, format string, args ...any) {
			out = append(out, goalCheck{what: cs.label + ": " + what, pass: pass, figure: fmt.Sprintf(format, args...)})
		}
		add(fmt.Sprintf("DNS p99 <= %v in every window", goalP99), s.overP99 == 0 && len(cs.windows) > 0,
			"worst %s ms, %d of %d windows over", ms(float64(s.worstP99)), s.overP99, len(cs.windows))
		if cs.label == "registry" && baseline != nil {
			share := s.medianQPS / baseline.medianQPS
			add(fmt.Sprintf("q/s >= %.0f%% of registry-10k's", 100*goalQPSShare), share >= goalQPSShare,
				"%s (median %.0f vs %.0f)", percent(share), s.medianQPS, baseline.medianQPS)
		}
		lag := ""
		if s.pings.lagP99 > goalPingP99/10 {
			lag = fmt.Sprintf(" (the generator's own lag p99 is %s ms: the load CPU was busy, the figure is not the server's alone)", ms(float64(s.pings.lagP99)))
		}
		add(fmt.Sprintf("pings p99 <= %v and none refused", goalPingP99), s.pings.p99 <= goalPingP99 && s.pings.failed == 0 && s.pings.scheduled > 0,
			"p99 %s ms, %d of %d refused or failed%s", ms(float64(s.pings.p99)), s.pings.failed, s.pings.scheduled, lag)
		add(fmt.Sprintf("peak RSS <= %s", bytesOf(float64(rssGoal))), s.peak.total() <= rssGoal && len(cs.memory) > 0,
			"%s (process %s, children %s)", bytesOf(float64(s.peak.total())), bytesOf(float64(s.peak.rss)), bytesOf(float64(s.peak.childRSS)))
		add(fmt.Sprintf("cold start <= %v", goalColdStart), cs.coldStart > 0 && cs.coldStart <= goalColdStart,
			"%.2f s", cs.coldStart.Seconds())
	}
	return out
}

// saveCapacityReport writes the plot and a markdown report showing it, with the text report,
// next to the text report -save wrote; it returns the markdown's path.
func saveCapacityReport(start time.Time, report, svg []byte) (string, error) {
	base := "capacity-" + start.UTC().Format("2006-01-02T150405Z")
	if err := saveReport(filepath.Join(resultsDir, base+".svg"), svg); err != nil {
		return "", err
	}
	md := fmt.Sprintf("# regdns capacity benchmark, %s\n\n![DNS q/s, DNS p99, pings and memory per window](%s.svg)\n\n```\n%s```\n",
		start.UTC().Format("2006-01-02 15:04 UTC"), base, report)
	path := filepath.Join(resultsDir, base+".md")
	return path, os.WriteFile(path, []byte(md), 0o644)
}
