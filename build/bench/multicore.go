package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// The multi-core scenario (-multicore): each server on one core (pinned to CPU 0, dnsperf on
// CPU 1, as in the DNS runs) and on every core (GOMAXPROCS set to the CPU count, dnsperf on
// the same CPUs), CoreDNS with and without multisocket and Knot with one and several UDP
// workers: what a server gains from a second core. README.md beside this file explains it.

// multicoreNames is the zone size of the scenario unless -names or -quick says otherwise.
const multicoreNames = "1000000"

// allCPUs, given as a CPU, runs a process on every CPU rather than pinned to one.
const allCPUs = -1

// dnsperf against a server on every CPU: 20 sockets, since the kernel spreads datagrams
// over a server's SO_REUSEPORT sockets by the client's address and port, and 10 can split
// unevenly over two; two pairs of send and receive threads, since one pair held Knot with two
// UDP workers to 65-79k queries/s where two gave 90-108k (three alternated runs each, the
// registry with multisocket 2 unchanged: 43-62k). A server on one core gets the DNS runs'
// dnsperf, on the other CPU.
const (
	sharedPerfClients = 20
	sharedPerfThreads = 2
)

// cpuList is cpu as taskset's -c takes it.
func cpuList(cpu int) string {
	if cpu == allCPUs {
		return fmt.Sprintf("0-%d", runtime.NumCPU()-1)
	}
	return strconv.Itoa(cpu)
}

// multisocketLine is the Corefile line opening sockets DNS sockets, none for one socket
// (CoreDNS without the plugin).
func multisocketLine(sockets int) string {
	if sockets <= 1 {
		return ""
	}
	return fmt.Sprintf("    multisocket %d\n", sockets)
}

// mcConfig is one way of running a server in the scenario.
type mcConfig struct {
	kind    string // "registry" (embedded etcd), "file" or "knot"
	cores   int    // 1: pinned to CPU 0; more: every CPU, with GOMAXPROCS at that count
	sockets int    // UDP sockets on the port: multisocket's for CoreDNS, UDP workers for Knot
}

func (c mcConfig) String() string {
	switch {
	case c.sockets <= 1:
		return c.kind
	case c.kind == "knot":
		return fmt.Sprintf("knot, %d UDP workers", c.sockets)
	}
	return fmt.Sprintf("%s, multisocket %d", c.kind, c.sockets)
}

// name names the config's files: kind-Cc-Ss.
func (c mcConfig) name() string { return fmt.Sprintf("%s-%dc-%ds", c.kind, c.cores, c.sockets) }

// multicoreConfigs are the scenario's servers on machines of cores CPUs: each kind on one core,
// then on all of them with one socket and with one socket per core; Knot only if installed.
func multicoreConfigs(cores int, knot bool) []mcConfig {
	kinds := []string{"registry", "file"}
	if knot {
		kinds = append(kinds, "knot")
	}
	var out []mcConfig
	for _, k := range kinds {
		out = append(out, mcConfig{k, 1, 1}, mcConfig{k, cores, 1}, mcConfig{k, cores, cores})
	}
	return out
}

// mcRow is every run of one config.
type mcRow struct {
	config mcConfig
	runs   []perfResult
	rss    int64 // after its last run
}

// mcResult is the scenario at one zone size.
type mcResult struct {
	n     int
	rows  []mcRow
	notes []string
}

// multicore runs the scenario at each zone size and reports it.
func multicore(ctx context.Context, l *lab, o options, r *reporter) error {
	if !l.pin {
		return errors.New("-multicore needs 2 CPUs or more")
	}
	var results []mcResult
	defer func() { r.multicoreTable(results) }()
	for _, n := range o.names {
		res := mcResult{n: n}
		err := multicoreSize(ctx, l, o, r, &res)
		results = append(results, res)
		l.stopAll()
		if err != nil {
			return fmt.Errorf("N=%d: %w", n, err)
		}
	}
	return nil
}

// multicoreSize fills res: the names written into the registry's embedded etcd and a zone
// file, then o.runs rounds in which each config in turn is started, checked against the
// file plugin's answers, warmed up, measured and stopped (only one process can own the
// embedded etcd's data, so the registry's configs cannot run side by side).
func multicoreSize(ctx context.Context, l *lab, o options, r *reporter, res *mcResult) error {
	n := res.n
	run := &sizeRun{l: l, o: o, r: r, res: &sizeResult{N: n}, n: n}
	if err := run.populated(ctx); err != nil {
		return err
	}
	defer run.cli.Close()
	run.zoneFile = filepath.Join(l.dir, fmt.Sprintf("zone-%d.db", n))
	if err := writeZoneFile(run.zoneFile, n); err != nil {
		return err
	}
	ref, err := l.startFile(ctx, fmt.Sprintf("file-reference-%d", n), run.zoneFile)
	if err != nil {
		return err
	}
	// A gate only: each config is compared with this file plugin in turn, and those notes kept.
	if _, err = compareAnswers(n, run.reg, ref); err != nil {
		return fmt.Errorf("the file plugin does not answer as the registry does: %w", err)
	}
	run.reg.stop()
	qf, err := l.queriesFile(n, o.queries)
	if err != nil {
		return err
	}
	_, knotErr := exec.LookPath("knotd")
	for _, c := range multicoreConfigs(runtime.NumCPU(), knotErr == nil) {
		res.rows = append(res.rows, mcRow{config: c})
	}
	for round := range o.runs {
		for i := range res.rows {
			row := &res.rows[i]
			r.progressf("N=%d: run %d/%d of %s on %d core(s)", n, round+1, o.runs, row.config, row.config.cores)
			p, rss, err := run.measureConfig(ctx, row.config, ref, qf, round, res)
			if err != nil {
				return fmt.Errorf("%s on %d core(s), run %d: %w", row.config, row.config.cores, round+1, err)
			}
			row.runs, row.rss = append(row.runs, p), rss
		}
	}
	return nil
}

// measureConfig starts c, compares its answers with ref's (noting the differences outside
// the mix in res), warms it up, runs dnsperf once and returns that run and the server's RSS.
func (run *sizeRun) measureConfig(ctx context.Context, c mcConfig, ref *server, qf string, round int, res *mcResult) (perfResult, int64, error) {
	label := fmt.Sprintf("%s-%d-run%d", c.name(), run.n, round+1)
	s, err := run.startConfig(ctx, c, label)
	if err != nil {
		return perfResult{}, 0, err
	}
	defer s.stop()
	notes, err := compareAnswers(run.n, ref, s)
	if err != nil {
		return perfResult{}, 0, fmt.Errorf("answers differ from the file plugin's: %w", err)
	}
	for _, note := range notes {
		// One note per kind of server, not per process.
		note = strings.ReplaceAll(strings.ReplaceAll(note, label, c.kind), ref.label, "file")
		if !slices.Contains(res.notes, note) {
			res.notes = append(res.notes, note)
		}
	}
	dir := run.l.dir
	if _, err := run.l.runDnsperf(ctx, s, qf, warmUp(run.o.duration), filepath.Join(dir, "dnsperf-"+label+"-warmup.txt")); err != nil {
		return perfResult{}, 0, err
	}
	p, err := run.l.runDnsperf(ctx, s, qf, run.o.duration, filepath.Join(dir, "dnsperf-"+label+".txt"))
	if err != nil {
		return perfResult{}, 0, err
	}
	if err := p.checkMix(); err != nil {
		return perfResult{}, 0, err
	}
	rss, _, err := s.memory()
	return p, rss, err
}

// startConfig starts the server of c: the registry on its embedded etcd (the same data and
// ports each time), or the file plugin or Knot on the zone file.
func (run *sizeRun) startConfig(ctx context.Context, c mcConfig, label string) (*server, error) {
	cpu, env := serverCPU, []string(nil)
	if c.cores > 1 {
		cpu, env = allCPUs, []string{fmt.Sprintf("GOMAXPROCS=%d", c.cores)}
	}
	switch c.kind {
	case "registry":
		o := run.embedded
		o.sockets, o.env = c.sockets, env
		return run.l.startRegistryOn(ctx, label, cpu, o, run.ports)
	case "file":
		return run.l.startFileOn(ctx, label, run.zoneFile, cpu, c.sockets, env...)
	}
	return run.l.startKnotOn(ctx, label, run.zoneFile, cpu, c.sockets)
}

// multicoreTable reports the scenario: each config's medians and its rate over the same
// kind's on one core.
func (r *reporter) multicoreTable(results []mcResult) {
	o := r.o
	cores := runtime.NumCPU()
	fmt.Fprintf(r.w, "\nMulti-core: dnsperf -q %d -l %v, %d queries (%d%% A of registered names, %d%% challenge TXT, %d%% nonexistent),\n"+
		"     %d runs per server alternated, medians. 1 core: the server on CPU %d, dnsperf -c %d on CPU %d. %d cores: the\n"+
		"     server (GOMAXPROCS=%d) and dnsperf -c %d -T %d both on CPUs %s, so dnsperf takes CPU from the server:\n"+
		"     the machine answering itself. CPU columns in shares of one CPU; other work: on the server's CPU (1 core),\n"+
		"     on the machine less the server and dnsperf (%d cores). vs 1 core: q/s over the same server's on one core.\n",
		perfOutstanding, o.duration, o.queries, mixA, mixTXT, mixNX, o.runs, serverCPU, perfClients, loadCPU, cores,
		cores, sharedPerfClients, sharedPerfThreads, cpuList(allCPUs), cores)
	tw := tabwriter.NewWriter(r.w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "N\tserver\tcores\tqueries/s\tp50 ms\tp99 ms\tlost\tserver CPU\tdnsperf CPU\tother work\tqueries/CPU-s\tvs 1 core\tRSS after\t each run's queries/s\t")
	for _, res := range results {
		oneCore := map[string]float64{}
		for _, row := range res.rows {
			qps := medianOf(row.runs, func(p perfResult) float64 { return p.QPS })
			if row.config.cores == 1 {
				oneCore[row.config.kind] = qps
			}
			var lost int64
			var each []string
			for _, p := range row.runs {
				lost += p.Lost
				each = append(each, fmt.Sprintf("%.0f", p.QPS))
			}
			others := "-"
			if v := medianOf(row.runs, func(p perfResult) float64 { return p.OthersCPU }); v >= 0 {
				others = percent(v)
			}
			fmt.Fprintf(tw, "%d\t%s\t%d\t%.0f\t%s\t%s\t%d\t%s\t%s\t%s\t%.0f\t%s\t%s\t %s\t\n", res.n, row.config, row.config.cores, qps,
				ms(medianOf(row.runs, func(p perfResult) float64 { return float64(p.P50) })),
				ms(medianOf(row.runs, func(p perfResult) float64 { return float64(p.P99) })), lost,
				percent(medianOf(row.runs, func(p perfResult) float64 { return p.ServerCPU })),
				percent(medianOf(row.runs, func(p perfResult) float64 { return p.LoadCPU })), others,
				medianOf(row.runs, func(p perfResult) float64 { return p.PerCPU }),
				ratio(qps, oneCore[row.config.kind]), bytesOf(float64(row.rss)), strings.Join(each, " "))
		}
	}
	tw.Flush()
	for _, res := range results {
		for _, note := range res.notes {
			fmt.Fprintf(r.w, "note N=%d: %s\n", res.n, note)
		}
	}
	fmt.Fprintf(r.w, "\nload average at the end: %s\n", loadAvg())
}
