package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// The capacity scenario (-capacity, README.md "Capacity"): N names served while gateways ping,
// measured in windows of one dnsperf run each.
const (
	windowLength  = 10 * time.Second
	baselineNames = 10_000
	burstPercent  = 10 // of N, distinct names pinging within the burst span
	pingsPerHour  = 1  // each gateway pings hourly
	capacitySeed  = mixSeed + 3
	// errorsShown is how many distinct ping errors the report prints per server.
	errorsShown = 5
)

// capacityNames is N when -names is not given.
func capacityNames(quick bool) int {
	if quick {
		return 100_000
	}
	return 1_000_000
}

// capacityPlan is what one capacity run measures, from the flags.
type capacityPlan struct {
	n           int
	main        time.Duration // the registry's and the replica's runs
	baseline    time.Duration // the registry with baselineNames names
	reference   time.Duration // the file plugin and the empty server block, each
	burstSpan   time.Duration
	outstanding int // dnsperf -q
	queries     int // lines of the queries files
}

func planCapacity(o options) capacityPlan {
	p := capacityPlan{n: o.names[0], main: 4 * time.Minute, baseline: time.Minute, reference: 30 * time.Second,
		burstSpan: time.Minute, outstanding: o.capacityOutstanding, queries: o.queries}
	if o.quick {
		p.main, p.baseline, p.reference, p.burstSpan = time.Minute, 20*time.Second, 10*time.Second, 20*time.Second
	}
	if o.capacityDuration > 0 {
		p.main = o.capacityDuration
		p.baseline, p.reference = min(p.baseline, p.main), min(p.reference, p.main)
	}
	p.main, p.baseline, p.reference = wholeWindows(p.main), wholeWindows(p.baseline), wholeWindows(p.reference)
	// The burst starts a third into the main run and ends within it.
	p.burstSpan = min(p.burstSpan, (p.main - p.main/3).Truncate(time.Second))
	return p
}

// wholeWindows rounds d up to a whole number of windows.
func wholeWindows(d time.Duration) time.Duration {
	return max((d+windowLength-1)/windowLength, 1) * windowLength
}

// pingRate is the steady rate of n gateways pinging hourly.
func pingRate(n int) float64 { return float64(n) * pingsPerHour / 3600 }

// mainPings is the ping load of the registry's and the replica's runs; first is where its
// names start in the permutation of names.
func (p capacityPlan) mainPings(first int) pingPlan {
	return pingPlan{names: p.n, rate: pingRate(p.n), duration: p.main, burst: p.n * burstPercent / 100,
		burstStart: (p.main / 3).Truncate(time.Second), burstSpan: p.burstSpan, first: first, seed: capacitySeed}
}

// baselinePings is the registry-10k's: the same steady rate as the main runs, no burst.
func (p capacityPlan) baselinePings() pingPlan {
	return pingPlan{names: baselineNames, rate: pingRate(p.n), duration: p.baseline, seed: capacitySeed}
}

// capacityServer is what was measured of one server.
type capacityServer struct {
	label     string // registry, replica, registry-10k, file, empty
	names     int
	coldStart time.Duration // 0: not measured
	notes     []string
	pings     *pingPlan // nil: DNS load only
	windows   []capacityWindow
	memory    []memSample
	results   []pingResult
	written   int // pings that wrote to etcd, from the audit log
}

// capacityRun is one run of the scenario: its plan and what its steps start and measure.
type capacityRun struct {
	l       *lab
	r       *reporter
	plan    capacityPlan
	servers []*capacityServer

	queries, baselineQueries string // dnsperf queries files for N and for baselineNames
	zoneFile                 string // the N names for the file plugin
	reg                      *server
	endpoint                 string // reg's etcd
	tokens                   []string
}

// capacity runs the scenario, reports it and writes its plot into the output directory; it
// returns the plot.
func capacity(ctx context.Context, l *lab, o options, r *reporter) ([]byte, error) {
	run := &capacityRun{l: l, r: r, plan: planCapacity(o)}
	run.zoneFile = filepath.Join(l.dir, fmt.Sprintf("zone-%d.db", run.plan.n))
	err := run.all(ctx)
	r.capacityReport(run)
	if len(run.servers) == 0 {
		return nil, err
	}
	svg := plotCapacity(run.servers, run.plan)
	path := filepath.Join(l.dir, "capacity.svg")
	if werr := os.WriteFile(path, svg, 0o644); werr != nil && err == nil {
		err = werr
	}
	kept := "deleted at exit: keep it with -out or -save"
	if o.out != "" {
		kept = "kept"
	}
	fmt.Fprintf(r.w, "plot: %s (%s)\n", path, kept)
	return svg, err
}

func (run *capacityRun) all(ctx context.Context) error {
	var err error
	if run.queries, err = run.queriesFile(run.plan.n); err != nil {
		return err
	}
	if run.baselineQueries, err = run.queriesFile(baselineNames); err != nil {
		return err
	}
	for _, step := range []func(context.Context) error{run.registry, run.replica, run.references, run.baseline} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// queriesFile writes the query mix for a zone of n names.
func (run *capacityRun) queriesFile(n int) (string, error) {
	qf := filepath.Join(run.l.dir, fmt.Sprintf("queries-%d.txt", n))
	f, err := os.Create(qf)
	if err != nil {
		return "", err
	}
	if err := writeQueries(f, queryMix(n, run.plan.queries)); err != nil {
		f.Close()
		return "", err
	}
	return qf, f.Close()
}

// populatedRegistry starts a registry named label on an empty embedded etcd with production
// settings and writes n names in steady state into it; it returns the registry, its etcd and
// the tokens. The registry may use both CPUs meanwhile (its Go scheduler keeps the one P it
// sized for CPU 0): nothing is measured.
func (run *capacityRun) populatedRegistry(ctx context.Context, label, dataDir string, n int) (*server, registryOptions, []int, []string, error) {
	l := run.l
	etcdPorts, err := l.freePorts(2)
	if err != nil {
		return nil, registryOptions{}, nil, nil, err
	}
	ports, err := l.freePorts(3)
	if err != nil {
		return nil, registryOptions{}, nil, nil, err
	}
	opts := registryOptions{dataDir: filepath.Join(l.dir, dataDir), etcdClient: etcdPorts[0], etcdPeer: etcdPorts[1], production: true}
	reg, err := l.startRegistryOn(ctx, label, serverCPU, opts, ports)
	if err != nil {
		return nil, opts, nil, nil, err
	}
	if err := l.pinTree(reg.pid(), fmt.Sprintf("%d,%d", serverCPU, loadCPU)); err != nil {
		return reg, opts, nil, nil, err
	}
	cli, err := etcdClient(fmt.Sprintf("http://127.0.0.1:%d", etcdPorts[0]))
	if err != nil {
		return reg, opts, nil, nil, err
	}
	defer cli.Close()
	run.r.progressf("capacity: writing %d names into etcd, last pings spread over [now-7h, now-1h)", n)
	begin := time.Now()
	tokens, err := populateRecords(ctx, cli, n, steadyRecord(time.Now()))
	run.r.progressf("capacity: %d names written in %.1f s", n, time.Since(begin).Seconds())
	if err == nil {
		err = l.pinTree(reg.pid(), strconv.Itoa(serverCPU))
	}
	return reg, opts, ports, tokens, err
}

// pinTree pins every thread of process pid and of its descendants (the registry's embedded
// etcd may run in one) to cpus (a taskset list), when the lab pins.
func (l *lab) pinTree(pid int, cpus string) error {
	if !l.pin {
		return nil
	}
	for _, p := range processTree(pid) {
		if b, err := exec.Command("taskset", "-a", "-p", "-c", cpus, strconv.Itoa(p)).CombinedOutput(); err != nil {
			return fmt.Errorf("pinning process %d to CPUs %s: %v %s", p, cpus, err, b)
		}
	}
	return nil
}

// registry measures the registry with its embedded etcd at N, restarted after populating so
// that its cold start is measured and its heap holds what a restarted server's does. Until
// then nothing is measured: the names are written (the registry's etcd on both CPUs), and
// meanwhile the zone file of the same names.
func (run *capacityRun) registry(ctx context.Context) error {
	zoneWritten := make(chan error, 1)
	go func() { zoneWritten <- writeZoneFile(run.zoneFile, run.plan.n) }()
	reg, opts, ports, tokens, err := run.populatedRegistry(ctx, "capacity-registry-empty", "capacity-registry", run.plan.n)
	if reg != nil {
		reg.stop()
	}
	if zerr := <-zoneWritten; err == nil {
		err = zerr
	}
	if err != nil {
		return err
	}
	run.tokens = tokens
	run.endpoint = fmt.Sprintf("http://127.0.0.1:%d", opts.etcdClient)
	run.r.progressf("capacity: cold start of the registry at N=%d", run.plan.n)
	if run.reg, err = run.l.startRegistryOn(ctx, "capacity-registry", serverCPU, opts, ports); err != nil {
		return err
	}
	pings := run.plan.mainPings(0)
	cs := &capacityServer{label: "registry", names: run.plan.n, coldStart: run.reg.coldStart, pings: &pings}
	return run.measure(ctx, cs, run.reg, run.queries, run.plan.main, tokens)
}

// replica measures a second process following the registry's etcd, with the registry (which
// serves that etcd) moved to the load CPU.
func (run *capacityRun) replica(ctx context.Context) error {
	l := run.l
	note := "the registry serving its etcd stays up"
	if err := l.pinTree(run.reg.pid(), strconv.Itoa(loadCPU)); err != nil {
		return err
	}
	if l.pin {
		note = fmt.Sprintf("the registry serving its etcd (and its etcd process, if a child) was moved to CPU %d (taskset -a -p) before the replica started, and shares it with the load", loadCPU)
	}
	run.r.progressf("capacity: cold start of a replica following the registry's etcd")
	opts := registryOptions{dataDir: filepath.Join(l.dir, "capacity-replica"), endpoint: run.endpoint, production: true}
	rep, err := l.startRegistry(ctx, "capacity-replica", serverCPU, opts)
	if err != nil {
		return err
	}
	defer rep.stop()
	if _, err := compareAnswers(run.plan.n, run.reg, rep); err != nil {
		return fmt.Errorf("the replica does not answer as the registry does: %w", err)
	}
	// Its gateways are others than the registry run's, so as many of their pings write.
	pings := run.plan.mainPings(run.plan.mainPings(0).used())
	cs := &capacityServer{label: "replica", names: run.plan.n, coldStart: rep.coldStart, pings: &pings, notes: []string{note}}
	return run.measure(ctx, cs, rep, run.queries, run.plan.main, run.tokens)
}

// references measures the file plugin on a zone file of the same names, then a server block
// with no plugin answering, with DNS load only.
func (run *capacityRun) references(ctx context.Context) error {
	l, n := run.l, run.plan.n
	run.r.progressf("capacity: the file plugin on a zone file of the same %d names", n)
	file, err := l.startFile(ctx, "capacity-file", run.zoneFile)
	if err != nil {
		return err
	}
	_, err = compareAnswers(n, run.reg, file)
	run.reg.stop()
	if err != nil {
		file.stop()
		return fmt.Errorf("the file plugin does not answer as the registry does: %w", err)
	}
	err = run.measure(ctx, &capacityServer{label: "file", names: n}, file, run.queries, run.plan.reference, nil)
	file.stop()
	if err != nil {
		return err
	}
	empty, err := l.startEmpty(ctx, "capacity-empty")
	if err != nil {
		return err
	}
	defer empty.stop()
	return run.measure(ctx, &capacityServer{label: "empty"}, empty, run.queries, run.plan.reference, nil)
}

// baseline measures the registry at baselineNames names under the main runs' steady ping
// rate: what "q/s at N" is compared with.
func (run *capacityRun) baseline(ctx context.Context) error {
	reg, _, _, tokens, err := run.populatedRegistry(ctx, "capacity-registry-10k", "capacity-registry-10k", baselineNames)
	if reg != nil {
		defer reg.stop()
	}
	if err != nil {
		return err
	}
	if err := waitAnswered(ctx, reg, name(baselineNames-1)); err != nil {
		return err
	}
	pings := run.plan.baselinePings()
	cs := &capacityServer{label: "registry-10k", names: baselineNames, pings: &pings}
	return run.measure(ctx, cs, reg, run.baselineQueries, run.plan.baseline, tokens)
}

// waitAnswered waits until s answers the A of label: its view holds the names written last.
func waitAnswered(ctx context.Context, s *server, label string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		r, err := exchange(s.dns, label+"."+zone, dns.TypeA, 200*time.Millisecond)
		if err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %s not answered: %w", s.label, label, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startEmpty starts ./coredns with a server block for the zone and no plugin that answers:
// the framework's own cost, every query REFUSED.
func (l *lab) startEmpty(ctx context.Context, label string) (*server, error) {
	ports, err := l.freePorts(2)
	if err != nil {
		return nil, err
	}
	cf := filepath.Join(l.dir, "Corefile-"+label)
	corefile := fmt.Sprintf("%s:%d {\n    bind 127.0.0.1\n    ready 127.0.0.1:%d\n}\n", zone, ports[0], ports[1])
	if err := os.WriteFile(cf, []byte(corefile), 0o644); err != nil {
		return nil, err
	}
	s := &server{dns: fmt.Sprintf("127.0.0.1:%d", ports[0]), ready: fmt.Sprintf("http://127.0.0.1:%d/ready", ports[1]), refusing: true}
	return l.start(ctx, label, serverCPU, s, l.binary, "-conf", cf)
}

// measure runs the DNS windows against s for d, with cs's ping load and memory sampling at the
// same time, then parses and checks the windows and adds cs to the run.
func (run *capacityRun) measure(ctx context.Context, cs *capacityServer, s *server, queries string, d time.Duration, tokens []string) error {
	load := "DNS load"
	var events []pingEvent
	if cs.pings != nil {
		events = cs.pings.schedule()
		load = fmt.Sprintf("DNS load and %d pings", len(events))
	}
	run.r.progressf("capacity: %s: %s for %v", cs.label, load, d)
	t0 := time.Now()
	memCtx, stopMemory := context.WithCancel(ctx)
	memDone := make(chan struct{})
	go func() { cs.memory = sampleMemory(memCtx, s.pid(), t0); close(memDone) }()
	pingsDone := make(chan struct{})
	go func() {
		if len(events) > 0 {
			cs.results = runPings(ctx, s.api, tokens, events, t0)
		}
		close(pingsDone)
	}()
	windows, err := run.l.runDNSWindows(ctx, s, queries, int(d/windowLength), windowLength, run.plan.outstanding, t0)
	<-pingsDone
	stopMemory()
	<-memDone
	if err == nil {
		err = parseWindows(windows)
	}
	cs.windows = aggregate(windows, cs.results, cs.memory)
	if cs.pings != nil {
		cs.written = pingWrites(s.logPath)
	}
	run.servers = append(run.servers, cs)
	if err != nil {
		return fmt.Errorf("%s: %w", cs.label, err)
	}
	for i, w := range windows {
		check := w.perf.checkMix
		if s.refusing {
			check = w.perf.checkRefused
		}
		if err := check(); err != nil {
			return fmt.Errorf("%s window %d: %w", cs.label, i+1, err)
		}
	}
	return nil
}

// checkRefused verifies that every answer of a run is REFUSED, as the empty server block gives.
func (p perfResult) checkRefused() error {
	for rc, n := range p.Rcodes {
		if rc != "REFUSED" {
			return fmt.Errorf("%d answers with %s from a server block that should refuse all", n, rc)
		}
	}
	if p.Rcodes["REFUSED"] == 0 {
		return fmt.Errorf("no answers")
	}
	return nil
}

// pingWrites counts the pings the server wrote to etcd: those the audit log (on by default)
// shows, since a ping answered from the view is not audited.
func pingWrites(logPath string) int {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return -1
	}
	n := 0
	for line := range strings.Lines(string(b)) {
		if strings.Contains(line, "audit endpoint=/ping ") && strings.Contains(line, " code=200") {
			n++
		}
	}
	return n
}
