package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// scaleRow is the cost of loading one zone into one kind of process.
type scaleRow struct {
	Process   string
	ColdStart time.Duration
	RSS, Peak int64
	File      int64 // of RSS, pages of mapped files (etcd's database): the kernel can reclaim them
	EmptyRSS  int64 // the same process serving an empty zone
}

// dnsRow is every dnsperf run against one server.
type dnsRow struct {
	Server string
	Runs   []perfResult
	// RSS is the server's resident memory after its runs: what serving the zone costs,
	// which can exceed what loading it did.
	RSS int64
}

// sizeResult is everything measured at one zone size.
type sizeResult struct {
	N        int
	Populate time.Duration
	Checked  bool
	Scale    []scaleRow
	DNS      []dnsRow
	Notes    []string
	API      []loadResult
	Prop     *propResult
}

// benchmark measures every zone size in turn; the API and propagation runs happen at the
// first size only, since they write and the zone size barely matters to them.
func benchmark(ctx context.Context, l *lab, o options, r *reporter) ([]sizeResult, error) {
	var out []sizeResult
	emptyFile, err := l.emptyFileRSS(ctx)
	if err != nil {
		return out, err
	}
	for i, n := range o.names {
		res := sizeResult{N: n}
		err := benchSize(ctx, l, o, r, &res, i == 0, emptyFile)
		out = append(out, res)
		l.stopAll()
		if err != nil {
			return out, fmt.Errorf("N=%d: %w", n, err)
		}
	}
	return out, nil
}

// emptyFileRSS is the memory of the file plugin serving only the apex: the base that the
// per-name cost of the baseline is counted from.
func (l *lab) emptyFileRSS(ctx context.Context) (int64, error) {
	zf := filepath.Join(l.dir, "zone-empty.db")
	if err := writeZoneFile(zf, 0); err != nil {
		return 0, err
	}
	f, err := l.startFile(ctx, "file-empty", zf)
	if err != nil {
		return 0, err
	}
	defer f.stop()
	rss, _, err := f.settledMemory()
	return rss, err
}

func writeZoneFile(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := writeZone(f, n); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// benchSize measures everything at one zone size: the API and propagation only at the first.
func benchSize(ctx context.Context, l *lab, o options, r *reporter, res *sizeResult, first bool, emptyFile int64) error {
	run := &sizeRun{l: l, o: o, r: r, res: res, n: res.N}
	if err := run.populated(ctx); err != nil {
		return err
	}
	defer run.cli.Close()
	if err := run.coldStarts(ctx); err != nil {
		return err
	}
	servers, err := run.queried(ctx, emptyFile)
	if err != nil {
		return err
	}
	if err := dnsRuns(ctx, l, o, r, res, servers); err != nil {
		return err
	}
	for _, s := range servers[1:] {
		s.stop()
	}
	if !first {
		return nil
	}
	return run.apiAndPropagation(ctx)
}

// sizeRun is the run at one zone size: what its steps start and share.
type sizeRun struct {
	l   *lab
	o   options
	r   *reporter
	res *sizeResult
	n   int

	reg      *server          // the registry on its embedded etcd, serving the N names
	emptyReg int64            // its memory with an empty zone
	embedded registryOptions  // how reg is started
	ports    []int            // reg's ports, kept across its restart
	replica  registryOptions  // a replica following reg's etcd
	cli      *clientv3.Client // reg's etcd
	tokens   []string         // the names' API tokens
	zoneFile string           // the same names for the file plugin and Knot
}

// populated starts the registry with an empty embedded etcd, measures it, and writes the N
// names into its etcd (checking the key layout for small N).
func (run *sizeRun) populated(ctx context.Context) error {
	n, l, r := run.n, run.l, run.r
	r.progressf("N=%d: starting the registry with an empty embedded etcd", n)
	etcdPorts, err := l.freePorts(2)
	if err != nil {
		return err
	}
	if run.ports, err = l.freePorts(3); err != nil {
		return err
	}
	run.embedded = registryOptions{dataDir: filepath.Join(l.dir, fmt.Sprintf("registry-%d", n)), etcdClient: etcdPorts[0], etcdPeer: etcdPorts[1]}
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", etcdPorts[0])
	run.replica = registryOptions{dataDir: filepath.Join(l.dir, fmt.Sprintf("replica-%d", n)), endpoint: endpoint}
	if run.reg, err = l.startRegistryOn(ctx, fmt.Sprintf("registry-%d-empty", n), serverCPU, run.embedded, run.ports); err != nil {
		return err
	}
	if run.emptyReg, _, err = run.reg.settledMemory(); err != nil {
		return err
	}

	r.progressf("N=%d: writing %d names into etcd", n, n)
	if run.cli, err = etcdClient(endpoint); err != nil {
		return err
	}
	begin := time.Now()
	if run.tokens, err = populate(ctx, run.cli, n); err != nil {
		run.cli.Close()
		return err
	}
	run.res.Populate = time.Since(begin)
	if n <= checkUpTo {
		r.progressf("N=%d: checking the key layout with etcdstore.Check", n)
		if err := checkLayout(ctx, endpoint); err != nil {
			run.cli.Close()
			return err
		}
		run.res.Checked = true
	}
	return nil
}

// coldStarts measures the cold start and memory of the registry, of a replica, and of the
// file plugin on a zone file of the same names.
func (run *sizeRun) coldStarts(ctx context.Context) error {
	n, l, r, res := run.n, run.l, run.r, run.res
	r.progressf("N=%d: cold start of the registry (embedded etcd)", n)
	run.reg.stop()
	var err error
	if run.reg, err = l.startRegistryOn(ctx, fmt.Sprintf("registry-%d", n), serverCPU, run.embedded, run.ports); err != nil {
		return err
	}
	if err := addScale(res, "registry, embedded etcd", run.reg, run.emptyReg); err != nil {
		return err
	}

	r.progressf("N=%d: cold start of a replica (external etcd)", n)
	empty := run.replica
	empty.prefix = "/bench-empty/"
	e, err := l.startRegistry(ctx, fmt.Sprintf("replica-%d-empty", n), loadCPU, empty)
	if err != nil {
		return err
	}
	emptyReplica, _, err := e.settledMemory()
	e.stop()
	if err != nil {
		return err
	}
	b, err := l.startRegistry(ctx, fmt.Sprintf("replica-%d-cold", n), loadCPU, run.replica)
	if err != nil {
		return err
	}
	err = addScale(res, "registry replica, view only", b, emptyReplica)
	b.stop()
	if err != nil {
		return err
	}

	r.progressf("N=%d: the baseline: file plugin on a zone file of the same names", n)
	run.zoneFile = filepath.Join(l.dir, fmt.Sprintf("zone-%d.db", n))
	return writeZoneFile(run.zoneFile, n)
}

// queried starts the servers the DNS runs query, the registry first, each checked to give
// the registry's answers.
func (run *sizeRun) queried(ctx context.Context, emptyFile int64) ([]*server, error) {
	n, l, r, res := run.n, run.l, run.r, run.res
	file, err := l.startFile(ctx, fmt.Sprintf("file-%d", n), run.zoneFile)
	if err != nil {
		return nil, err
	}
	if err := addScale(res, "file plugin, zone file", file, emptyFile); err != nil {
		return nil, err
	}
	notes, err := compareAnswers(n, run.reg, file)
	if err != nil {
		return nil, fmt.Errorf("the servers do not give the same answers, so their speeds are not comparable: %w", err)
	}
	res.Notes = append(res.Notes, notes...)
	// A replica on an external etcd (the embedded registry's) is measured too: its process
	// holds the view but not etcd's own data, which the registry's garbage collector traces.
	r.progressf("N=%d: a replica (external etcd) to query", n)
	rep, err := l.startRegistry(ctx, fmt.Sprintf("replica-%d", n), serverCPU, run.replica)
	if err != nil {
		return nil, err
	}
	notes, err = compareAnswers(n, run.reg, rep)
	if err != nil {
		return nil, fmt.Errorf("the replica does not answer as the registry does: %w", err)
	}
	res.Notes = append(res.Notes, notes...)
	servers := []*server{run.reg, file, rep}
	if run.o.memLimit != "" {
		lim, err := run.memLimited(ctx)
		if err != nil {
			return nil, err
		}
		servers = append(servers, lim)
	}
	if k := run.knot(ctx); k != nil {
		servers = append(servers, k)
	}
	return servers, nil
}

// memLimited is the replica with a soft memory limit: what bounding its heap costs in speed.
func (run *sizeRun) memLimited(ctx context.Context) (*server, error) {
	n := run.n
	run.r.progressf("N=%d: a replica with GOMEMLIMIT=%s to query", n, run.o.memLimit)
	limited := run.replica
	limited.env = []string{"GOMEMLIMIT=" + run.o.memLimit}
	limited.dataDir = filepath.Join(run.l.dir, fmt.Sprintf("replica-memlimit-%d", n))
	lim, err := run.l.startRegistry(ctx, fmt.Sprintf("replica-memlimit-%d", n), serverCPU, limited)
	if err != nil {
		return nil, err
	}
	notes, err := compareAnswers(n, run.reg, lim)
	if err != nil {
		return nil, fmt.Errorf("the memory-limited replica does not answer as the registry does: %w", err)
	}
	run.res.Notes = append(run.res.Notes, notes...)
	return lim, nil
}

// knot is Knot DNS on the zone file, an optional second reference: nil when it cannot take
// part, with a note saying why.
func (run *sizeRun) knot(ctx context.Context) *server {
	if _, err := exec.LookPath("knotd"); err != nil {
		return nil
	}
	res := run.res
	run.r.progressf("N=%d: Knot DNS on the same zone file", run.n)
	k, err := run.l.startKnot(ctx, fmt.Sprintf("knot-%d", run.n), run.zoneFile)
	if err == nil {
		err = addScale(res, "knotd, zone file", k, 0)
	}
	if err == nil {
		var notes []string
		notes, err = compareAnswers(run.n, run.reg, k)
		res.Notes = append(res.Notes, notes...)
	}
	if err != nil {
		if k != nil {
			k.stop()
		}
		res.Notes = append(res.Notes, fmt.Sprintf("Knot DNS left out: %v", err))
		return nil
	}
	return k
}

// apiAndPropagation loads the API and etcd, then times changes reaching a replica.
func (run *sizeRun) apiAndPropagation(ctx context.Context) error {
	n, o := run.n, run.o
	run.r.progressf("N=%d: API and etcd load, %d concurrent, %v each", n, o.concurrency, o.apiDuration)
	var err error
	if run.res.API, err = apiLoad(ctx, run.reg, run.cli, run.tokens, o.concurrency, o.apiDuration); err != nil {
		return err
	}
	run.r.progressf("N=%d: propagation to a replica, %d changes/s for %v", n, o.rate, o.propDuration)
	b, err := run.l.startRegistry(ctx, fmt.Sprintf("replica-%d-propagation", n), loadCPU, run.replica)
	if err != nil {
		return err
	}
	p := propagate(ctx, run.reg, b, run.tokens, o.rate, o.propDuration)
	run.res.Prop = &p
	return ctx.Err()
}

// addScale records the cold start and memory of a process that just loaded the zone.
func addScale(res *sizeResult, process string, s *server, emptyRSS int64) error {
	rss, peak, err := s.settledMemory()
	if err != nil {
		return err
	}
	file, err := s.fileBacked()
	if err != nil {
		return err
	}
	res.Scale = append(res.Scale, scaleRow{Process: process, ColdStart: s.coldStart, RSS: rss, Peak: peak, File: file, EmptyRSS: emptyRSS})
	return nil
}

// queriesFile writes the dnsperf queries file of the mix for a zone of n names.
func (l *lab) queriesFile(n, lines int) (string, error) {
	qf := filepath.Join(l.dir, fmt.Sprintf("queries-%d.txt", n))
	f, err := os.Create(qf)
	if err != nil {
		return "", err
	}
	if err := writeQueries(f, queryMix(n, lines)); err != nil {
		f.Close()
		return "", err
	}
	return qf, f.Close()
}

// warmUp is the length of the dnsperf run that warms a server up before runs of d.
func warmUp(d time.Duration) time.Duration {
	return max(min(d/3, 3*time.Second).Round(time.Second), time.Second)
}

// dnsRuns writes the queries file, warms every server up, then runs dnsperf against the
// servers in turn (A, B, A, B...), so a change in the machine's load hits all of them alike.
func dnsRuns(ctx context.Context, l *lab, o options, r *reporter, res *sizeResult, servers []*server) error {
	qf, err := l.queriesFile(res.N, o.queries)
	if err != nil {
		return err
	}
	for _, s := range servers {
		res.DNS = append(res.DNS, dnsRow{Server: s.label})
		if _, err := l.runDnsperf(ctx, s, qf, warmUp(o.duration), filepath.Join(l.dir, "dnsperf-"+s.label+"-warmup.txt")); err != nil {
			return err
		}
	}
	for run := range o.runs {
		for i, s := range servers {
			r.progressf("N=%d: dnsperf run %d/%d against %s (%v)", res.N, run+1, o.runs, s.label, o.duration)
			p, err := l.runDnsperf(ctx, s, qf, o.duration, filepath.Join(l.dir, fmt.Sprintf("dnsperf-%s-%d.txt", s.label, run+1)))
			if err != nil {
				return err
			}
			if err := p.checkMix(); err != nil {
				return fmt.Errorf("%s run %d: %w", s.label, run+1, err)
			}
			res.DNS[i].Runs = append(res.DNS[i].Runs, p)
		}
	}
	for i, s := range servers {
		rss, _, err := s.memory()
		if err != nil {
			return err
		}
		res.DNS[i].RSS = rss
	}
	return nil
}
