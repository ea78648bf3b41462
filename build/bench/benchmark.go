package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
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

func benchSize(ctx context.Context, l *lab, o options, r *reporter, res *sizeResult, first bool, emptyFile int64) error {
	n := res.N
	r.progressf("N=%d: starting the registry with an empty embedded etcd", n)
	etcdPorts, err := l.freePorts(2)
	if err != nil {
		return err
	}
	ports, err := l.freePorts(3)
	if err != nil {
		return err
	}
	embedded := registryOptions{dataDir: filepath.Join(l.dir, fmt.Sprintf("registry-%d", n)), etcdClient: etcdPorts[0], etcdPeer: etcdPorts[1]}
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", etcdPorts[0])
	label := fmt.Sprintf("registry-%d", n)
	reg, err := l.startRegistryOn(ctx, label+"-empty", serverCPU, embedded, ports)
	if err != nil {
		return err
	}
	emptyReg, _, err := reg.settledMemory()
	if err != nil {
		return err
	}

	r.progressf("N=%d: writing %d names into etcd", n, n)
	cli, err := etcdClient(endpoint)
	if err != nil {
		return err
	}
	defer cli.Close()
	begin := time.Now()
	tokens, err := populate(ctx, cli, n)
	if err != nil {
		return err
	}
	res.Populate = time.Since(begin)
	if n <= checkUpTo {
		r.progressf("N=%d: checking the key layout with etcdstore.Check", n)
		if err := checkLayout(ctx, endpoint); err != nil {
			return err
		}
		res.Checked = true
	}

	r.progressf("N=%d: cold start of the registry (embedded etcd)", n)
	reg.stop()
	if reg, err = l.startRegistryOn(ctx, label, serverCPU, embedded, ports); err != nil {
		return err
	}
	if err := addScale(res, "registry, embedded etcd", reg, emptyReg); err != nil {
		return err
	}

	r.progressf("N=%d: cold start of a replica (external etcd)", n)
	replica := registryOptions{dataDir: filepath.Join(l.dir, fmt.Sprintf("replica-%d", n)), endpoint: endpoint}
	empty := replica
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
	b, err := l.startRegistry(ctx, fmt.Sprintf("replica-%d-cold", n), loadCPU, replica)
	if err != nil {
		return err
	}
	err = addScale(res, "registry replica, view only", b, emptyReplica)
	b.stop()
	if err != nil {
		return err
	}

	r.progressf("N=%d: the baseline: file plugin on a zone file of the same names", n)
	zf := filepath.Join(l.dir, fmt.Sprintf("zone-%d.db", n))
	if err := writeZoneFile(zf, n); err != nil {
		return err
	}
	file, err := l.startFile(ctx, fmt.Sprintf("file-%d", n), zf)
	if err != nil {
		return err
	}
	if err := addScale(res, "file plugin, zone file", file, emptyFile); err != nil {
		return err
	}
	notes, err := compareAnswers(n, reg, file)
	if err != nil {
		return fmt.Errorf("the servers do not give the same answers, so their speeds are not comparable: %w", err)
	}
	res.Notes = append(res.Notes, notes...)
	// A replica on an external etcd (the embedded registry's) is measured too: its process
	// holds the view but not etcd's own data, which the registry's garbage collector traces.
	r.progressf("N=%d: a replica (external etcd) to query", n)
	rep, err := l.startRegistry(ctx, fmt.Sprintf("replica-%d", n), serverCPU, replica)
	if err != nil {
		return err
	}
	notes, err = compareAnswers(n, reg, rep)
	if err != nil {
		return fmt.Errorf("the replica does not answer as the registry does: %w", err)
	}
	res.Notes = append(res.Notes, notes...)
	servers := []*server{reg, file, rep}
	if o.memLimit != "" {
		// The same replica with a soft memory limit: what bounding its heap costs in speed.
		r.progressf("N=%d: a replica with GOMEMLIMIT=%s to query", n, o.memLimit)
		limited := replica
		limited.env = []string{"GOMEMLIMIT=" + o.memLimit}
		limited.dataDir = filepath.Join(l.dir, fmt.Sprintf("replica-memlimit-%d", n))
		lim, err := l.startRegistry(ctx, fmt.Sprintf("replica-memlimit-%d", n), serverCPU, limited)
		if err != nil {
			return err
		}
		if notes, err = compareAnswers(n, reg, lim); err != nil {
			return fmt.Errorf("the memory-limited replica does not answer as the registry does: %w", err)
		}
		res.Notes = append(res.Notes, notes...)
		servers = append(servers, lim)
	}
	// Knot is an optional second reference: when it cannot take part, say why and go on.
	if _, err := exec.LookPath("knotd"); err == nil {
		r.progressf("N=%d: Knot DNS on the same zone file", n)
		k, err := l.startKnot(ctx, fmt.Sprintf("knot-%d", n), zf)
		if err == nil {
			err = addScale(res, "knotd, zone file", k, 0)
		}
		if err == nil {
			notes, err = compareAnswers(n, reg, k)
			res.Notes = append(res.Notes, notes...)
		}
		if err != nil {
			if k != nil {
				k.stop()
			}
			res.Notes = append(res.Notes, fmt.Sprintf("Knot DNS left out: %v", err))
		} else {
			servers = append(servers, k)
		}
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
	r.progressf("N=%d: API and etcd load, %d concurrent, %v each", n, o.concurrency, o.apiDuration)
	if res.API, err = apiLoad(ctx, reg, cli, tokens, o.concurrency, o.apiDuration); err != nil {
		return err
	}

	r.progressf("N=%d: propagation to a replica, %d changes/s for %v", n, o.rate, o.propDuration)
	if b, err = l.startRegistry(ctx, fmt.Sprintf("replica-%d-propagation", n), loadCPU, replica); err != nil {
		return err
	}
	p := propagate(ctx, reg, b, tokens, o.rate, o.propDuration)
	res.Prop = &p
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

// dnsRuns writes the queries file, warms every server up, then runs dnsperf against the
// servers in turn (A, B, A, B...), so a change in the machine's load hits all of them alike.
func dnsRuns(ctx context.Context, l *lab, o options, r *reporter, res *sizeResult, servers []*server) error {
	qf := filepath.Join(l.dir, fmt.Sprintf("queries-%d.txt", res.N))
	f, err := os.Create(qf)
	if err != nil {
		return err
	}
	if err := writeQueries(f, queryMix(res.N, o.queries)); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	warm := min(o.duration/3, 3*time.Second).Round(time.Second)
	for _, s := range servers {
		res.DNS = append(res.DNS, dnsRow{Server: s.label})
		if _, err := l.runDnsperf(ctx, s, qf, max(warm, time.Second), filepath.Join(l.dir, "dnsperf-"+s.label+"-warmup.txt")); err != nil {
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
