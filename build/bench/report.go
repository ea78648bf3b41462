package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// reporter prints the report (w) and progress lines (progress, not part of the report).
type reporter struct {
	w        io.Writer
	progress io.Writer
	o        options
	start    time.Time
	// binarySum is the start of the SHA-256 of the binary under test.
	binarySum string
}

func (r *reporter) progressf(format string, args ...any) {
	fmt.Fprintf(r.progress, "[%6.1fs] %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

func (r *reporter) header(pin bool) {
	fmt.Fprintf(r.w, "regdns benchmark, %s\n", r.start.UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(r.w, "command:  go run ./build/bench %s\n", strings.Join(r.o.args, " "))
	fmt.Fprintf(r.w, "machine:  %d CPUs (%s), %s memory, Linux %s, load average %s\n",
		runtime.NumCPU(), cpuModel(), memTotal(), firstLine("/proc/sys/kernel/osrelease"), loadAvg())
	knot := "not installed"
	if out, err := exec.Command("knotd", "-V").CombinedOutput(); err == nil {
		knot = strings.TrimSpace(string(out))
	}
	version, _ := exec.Command(r.o.binary, "-version").Output()
	fmt.Fprintf(r.w, "software: %s, dnsperf %s, knotd: %s\n", runtime.Version(), dnsperfVersion(), knot)
	fmt.Fprintf(r.w, "binary:   %s, %s, sha256 %s...\n", r.o.binary, strings.Fields(string(version) + " ?")[0], r.binarySum)
	if load := loadAvg(); loadOne(load) >= 1 {
		fmt.Fprintf(r.w, "WARNING:  load average %s before the run: other processes compete for the CPUs, so compare\n"+
			"          servers only within this run (they alternate), and read the conditions table\n", load)
	}
	if pin {
		fmt.Fprintf(r.w, "pinning:  server under test on CPU %d, dnsperf and this load generator on CPU %d (taskset)\n", serverCPU, loadCPU)
	} else {
		fmt.Fprintf(r.w, "pinning:  none: fewer than 2 CPUs, so server and load share them\n")
	}
	etcdWhere := "in a child process of the server (etcd_process child): CPU and memory figures are the two processes' sums"
	if r.o.etcdProcess == "inline" {
		etcdWhere = "inside the server's process (etcd_process inline)"
	}
	fmt.Fprintf(r.w, "registry: embedded etcd %s\n", etcdWhere)
}

// results writes the tables of every size: DNS, the conditions of the DNS runs, scale, and
// the API and propagation loads.
func (r *reporter) results(results []sizeResult, pin bool) {
	r.dnsTable(results)
	r.sizeRatios(results)
	r.conditionsTable(results)
	for _, res := range results {
		for _, n := range res.Notes {
			fmt.Fprintf(r.w, "note N=%d: %s\n", res.N, n)
		}
	}

	r.scaleTable(results)
	for _, res := range results {
		r.apiTable(res)
		r.propagationTable(res)
	}
	fmt.Fprintf(r.w, "\nload average at the end: %s; total time %.0f s\n", loadAvg(), time.Since(r.start).Seconds())
}

// dnsTable is the speed of every server in the DNS runs.
func (r *reporter) dnsTable(results []sizeResult) {
	o := r.o
	fmt.Fprintf(r.w, "\nDNS: dnsperf -c %d -q %d -l %v, %d queries (%d%% A of registered names, %d%% challenge TXT, %d%% nonexistent),\n"+
		"     %d runs per server alternated, medians; latency percentiles from dnsperf -v per-query times\n",
		perfClients, perfOutstanding, o.duration, o.queries, mixA, mixTXT, mixNX, o.runs)
	tw := tabwriter.NewWriter(r.w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "N\tserver\tqueries/s\tavg ms\tp50 ms\tp99 ms\tlost\tvs file\tRSS after\t")
	for _, res := range results {
		base := fileMedian(res, func(p perfResult) float64 { return p.QPS })
		for _, d := range res.DNS {
			qps := medianOf(d.Runs, func(p perfResult) float64 { return p.QPS })
			var lost int64
			for _, p := range d.Runs {
				lost += p.Lost
			}
			fmt.Fprintf(tw, "%d\t%s\t%.0f\t%s\t%s\t%s\t%d\t%s\t%s\t\n", res.N, serverKind(d.Server), qps,
				ms(medianOf(d.Runs, func(p perfResult) float64 { return float64(p.Avg) })),
				ms(medianOf(d.Runs, func(p perfResult) float64 { return float64(p.P50) })),
				ms(medianOf(d.Runs, func(p perfResult) float64 { return float64(p.P99) })),
				lost, ratio(qps, base), bytesOf(float64(d.RSS)))
		}
	}
	tw.Flush()
}

// conditionsTable is what else used the CPUs during the DNS runs.
func (r *reporter) conditionsTable(results []sizeResult) {
	fmt.Fprintf(r.w, "\nConditions of those runs (medians): the share of CPU %d the server used, and the share that went to\n"+
		"other work (other processes, and interrupt work such as delivering the server's own packets: about 10%%\n"+
		"on a quiet machine); the share of CPU %d dnsperf used (near 100%%: dnsperf set the pace); answers per\n"+
		"CPU-second of the server, which other load barely moves\n", serverCPU, loadCPU)
	tw := tabwriter.NewWriter(r.w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "N\tserver\tserver CPU\tother work on its CPU\tdnsperf CPU\tqueries/CPU-s\tvs file\t each run's queries/s\t")
	for _, res := range results {
		base := fileMedian(res, func(p perfResult) float64 { return p.PerCPU })
		for _, d := range res.DNS {
			perCPU := medianOf(d.Runs, func(p perfResult) float64 { return p.PerCPU })
			var each []string
			for _, p := range d.Runs {
				each = append(each, fmt.Sprintf("%.0f", p.QPS))
			}
			others := "-"
			if v := medianOf(d.Runs, func(p perfResult) float64 { return p.OthersCPU }); v >= 0 {
				others = percent(v)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%.0f\t%s\t %s\t\n", res.N, serverKind(d.Server),
				percent(medianOf(d.Runs, func(p perfResult) float64 { return p.ServerCPU })), others,
				percent(medianOf(d.Runs, func(p perfResult) float64 { return p.LoadCPU })),
				perCPU, ratio(perCPU, base), strings.Join(each, " "))
		}
	}
	tw.Flush()
}

// scaleTable is the cold start and memory of each process at each size.
func (r *reporter) scaleTable(results []sizeResult) {
	fmt.Fprintf(r.w, "\nScale: cold start = process start to ready 200 and SOA answered; memory = VmRSS 2 s after that;\n"+
		"       per name = (RSS - RSS of the same process serving no names) / N; file = the part of RSS\n"+
		"       that is pages of mapped files (etcd's database), which the kernel can reclaim\n")
	tw := tabwriter.NewWriter(r.w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "N\tprocess\tcold start\tRSS\tof it file\tpeak RSS\tper name\t")
	for _, res := range results {
		for _, s := range res.Scale {
			per := "-"
			if s.EmptyRSS > 0 {
				per = bytesOf(float64(s.RSS-s.EmptyRSS) / float64(res.N))
			}
			fmt.Fprintf(tw, "%d\t%s\t%.2f s\t%s\t%s\t%s\t%s\t\n", res.N, s.Process, s.ColdStart.Seconds(), bytesOf(float64(s.RSS)), bytesOf(float64(s.File)), bytesOf(float64(s.Peak)), per)
		}
	}
	tw.Flush()
	for _, res := range results {
		if res.Populate > 0 {
			checked := ""
			if res.Checked {
				checked = ", layout verified by etcdstore.Check"
			}
			fmt.Fprintf(r.w, "populated N=%d: %.1f s (%.0f names/s, transactions of %d names from %d writers)%s\n",
				res.N, res.Populate.Seconds(), float64(res.N)/res.Populate.Seconds(), namesPerTxn, populateWorkers, checked)
		}
	}

}

// apiTable is the API and etcd load of res, if it was measured.
func (r *reporter) apiTable(res sizeResult) {
	o := r.o
	if len(res.API) > 0 {
		fmt.Fprintf(r.w, "\nAPI and etcd (N=%d, embedded etcd): %d concurrent clients, %v each, closed loop\n", res.N, o.concurrency, o.apiDuration)
		tw := tabwriter.NewWriter(r.w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "load\trequests/s\tp50 ms\tp99 ms\terrors\tserver CPU\t")
		for _, a := range res.API {
			fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%d\t%s\t\n", a.Label, a.Rate(), ms(float64(a.P50)), ms(float64(a.P99)), a.Errors, percent(a.ServerCPU))
		}
		tw.Flush()
		for _, a := range res.API {
			if a.FirstError != "" {
				fmt.Fprintf(r.w, "first error of %s: %s\n", a.Label, a.FirstError)
			}
		}
	}
}

// propagationTable is the propagation run of res, if it was measured.
func (r *reporter) propagationTable(res sizeResult) {
	o := r.o
	if p := res.Prop; p != nil {
		fmt.Fprintf(r.w, "\nPropagation (N=%d): %d /dnsconfig changes at %d/s through replica A's API; replica B follows A's etcd\n", res.N, p.Changes, o.rate)
		tw := tabwriter.NewWriter(r.w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "measure\tcount\tp50 ms\tp99 ms\tmax ms\t")
		fmt.Fprintf(tw, "A's API /dnsconfig, request to 200\t%d\t%s\t%s\t%s\t\n", len(p.API), ms(float64(quantile(p.API, 0.5))), ms(float64(quantile(p.API, 0.99))), ms(float64(quantile(p.API, 1))))
		fmt.Fprintf(tw, "B's DNS answers it, after A's 200\t%d\t%s\t%s\t%s\t\n", len(p.Replica), ms(float64(quantile(p.Replica, 0.5))), ms(float64(quantile(p.Replica, 0.99))), ms(float64(quantile(p.Replica, 1))))
		tw.Flush()
		fmt.Fprintf(r.w, "failed changes: %d; never answered by B within %v: %d; A's DNS without the value at the first query after its 200 (read-your-writes): %d\n",
			p.Failed, propagationTimeout, p.ReplicaMissing, p.LocalMisses)
		if p.FirstError != "" {
			fmt.Fprintf(r.w, "first error: %s\n", p.FirstError)
		}
	}
}

// serverKind is the kind of server a label names, without its zone size.
func serverKind(label string) string {
	if i := strings.LastIndexByte(label, '-'); i > 0 {
		return label[:i]
	}
	return label
}

// fileMedian is the median of f over the file plugin's runs at one size, 0 if there are none.
func fileMedian(res sizeResult, f func(perfResult) float64) float64 {
	for _, d := range res.DNS {
		if serverKind(d.Server) == "file" {
			return medianOf(d.Runs, f)
		}
	}
	return 0
}

func percent(share float64) string { return fmt.Sprintf("%.0f%%", 100*share) }

// ratio is a/b to two places, "-" without a b.
func ratio(a, b float64) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func medianOf(runs []perfResult, f func(perfResult) float64) float64 {
	v := make([]float64, len(runs))
	for i, p := range runs {
		v[i] = f(p)
	}
	return median(v)
}

// ms formats a duration given in nanoseconds as milliseconds.
func ms(ns float64) string { return fmt.Sprintf("%.3f", ns/1e6) }

func bytesOf(b float64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}

func firstLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "?"
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line)
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func memTotal() string {
	var kb float64
	fmt.Sscanf(strings.TrimPrefix(firstLine("/proc/meminfo"), "MemTotal:"), "%f", &kb)
	return bytesOf(kb * 1024)
}

// loadOne is the 1-minute figure of a loadAvg.
func loadOne(load string) float64 {
	var v float64
	fmt.Sscanf(load, "%f", &v)
	return v
}

// loadAvg is the 1, 5 and 15 minute load averages: other work on the machine shows here.
func loadAvg() string {
	f := strings.Fields(firstLine("/proc/loadavg"))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// sizeRatios prints, for each server, its rate at every N over its rate at the smallest N:
// how much the rate falls as the zone grows.
func (r *reporter) sizeRatios(results []sizeResult) {
	if len(results) < 2 {
		return
	}
	first := map[string]float64{}
	for _, d := range results[0].DNS {
		first[serverKind(d.Server)] = medianOf(d.Runs, func(p perfResult) float64 { return p.QPS })
	}
	for _, res := range results[1:] {
		for _, d := range res.DNS {
			kind := serverKind(d.Server)
			if base, ok := first[kind]; ok && base > 0 {
				qps := medianOf(d.Runs, func(p perfResult) float64 { return p.QPS })
				fmt.Fprintf(r.w, "%s at N=%d: %s of its rate at N=%d\n", kind, res.N, percent(qps/base), results[0].N)
			}
		}
	}
}
