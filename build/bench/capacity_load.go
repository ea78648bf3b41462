package main

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/regdns/regdns/etcdstore"
)

// The ping load's client: keep-alive connections, at most pingConns of them, fewer than the
// API's default cap of 64 connections per client address (a trusted proxy is not capped, but
// a bounded pool keeps the generator from opening one connection per request in a stall).
const pingConns = 48

// steadyRecord is the i-th record as in steady state: created 8 h ago, its last ping written
// at a time spread uniformly over [now-7h, now-1h), so that under the default ping_granularity
// 6h about a sixth of the gateways' hourly pings (those last written 6 h ago or more) write to
// etcd, the rest being answered from the view.
func steadyRecord(now time.Time) func(i int, token string) etcdstore.Record {
	return func(i int, token string) etcdstore.Record {
		d := domain(i, token, now)
		d.Created = now.Add(-8 * time.Hour)
		d.LastPing = now.Add(-7*time.Hour + lastPingOffset(i))
		return d
	}
}

// lastPingOffset is where in a 6 h span the i-th name's last ping falls: uniform, the same
// for every run.
func lastPingOffset(i int) time.Duration {
	rng := mrand.New(mrand.NewPCG(mixSeed+2, uint64(i)))
	return time.Duration(rng.Int64N(int64(6 * time.Hour)))
}

// pingPlan is the ping load of one run: gateways pinging hourly, and a burst of distinct
// gateways pinging within a short span (as when many restart together).
type pingPlan struct {
	names      int     // registered names to draw from
	rate       float64 // steady pings per second
	duration   time.Duration
	burst      int // distinct names pinging in the burst
	burstStart time.Duration
	burstSpan  time.Duration
	// first is where this run's names start in the permutation of names (seeded by seed):
	// runs on the same names take disjoint slices, so one run's pings do not make another's
	// gateways recently written. A run that needs more names than there are wraps around.
	first int
	seed  uint64
}

// pingEvent is one scheduled ping: when (from the start of the run) and whose.
type pingEvent struct {
	at    time.Duration
	name  int
	burst bool
}

// steadyPings is how many pings the steady load schedules in the run: exactly rate × duration,
// rounded down.
func (p pingPlan) steadyPings() int { return int(p.rate * p.duration.Seconds()) }

// used is how many names of the permutation the run uses.
func (p pingPlan) used() int { return p.steadyPings() + p.burst }

// schedule is every ping of the run in time order: the steady pings at uniformly random times
// over the run (independent gateways: Poisson arrivals with the count fixed), the burst's at
// uniformly random times over its span, each ping by a different name while there are enough.
func (p pingPlan) schedule() []pingEvent {
	rng := mrand.New(mrand.NewPCG(p.seed, uint64(p.names)))
	perm := rng.Perm(p.names)
	k := p.first
	next := func() int {
		i := perm[k%p.names]
		k++
		return i
	}
	events := make([]pingEvent, 0, p.used())
	for range p.steadyPings() {
		events = append(events, pingEvent{at: time.Duration(rng.Int64N(int64(p.duration))), name: next()})
	}
	for range p.burst {
		events = append(events, pingEvent{at: p.burstStart + time.Duration(rng.Int64N(int64(p.burstSpan))), name: next(), burst: true})
	}
	slices.SortFunc(events, func(a, b pingEvent) int { return int(a.at - b.at) })
	return events
}

// pingResult is how one ping went. latency is from its scheduled time, so that a late start
// (the generator's own lag, lag) counts, as a gateway would see it.
type pingResult struct {
	at, lag, latency time.Duration
	err              string // "" for a 200
}

// runPings sends the events, each in its own goroutine at its time from t0 whatever the
// earlier ones are doing (open loop), as GET /ping with the name's token from the name's own
// address (X-Real-IP, through the trusted proxy 127.0.0.1), and waits for every answer.
func runPings(ctx context.Context, base string, tokens []string, events []pingEvent, t0 time.Time) []pingResult {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxConnsPerHost, t.MaxIdleConnsPerHost = pingConns, pingConns
	api := &apiClient{base: base, http: &http.Client{Transport: t, Timeout: 30 * time.Second}}
	defer t.CloseIdleConnections()
	out := make([]pingResult, len(events))
	var wg sync.WaitGroup
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i, ev := range events {
		if d := time.Until(t0.Add(ev.at)); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				wg.Wait()
				return out[:i]
			}
		}
		wg.Go(func() {
			scheduled := t0.Add(ev.at)
			res := pingResult{at: ev.at, lag: time.Since(scheduled)}
			h := http.Header{"X-Real-Ip": {gatewayAddr(ev.name).String()}}
			if _, err := api.get(ctx, "/ping", url.Values{"token": {tokens[ev.name]}}, h); err != nil {
				res.err = err.Error()
			}
			res.latency = time.Since(scheduled)
			out[i] = res
		})
	}
	wg.Wait()
	return out
}

// memSample is the memory of the server process and of all its descendants at one time.
type memSample struct {
	at                  time.Duration // from the start of the run
	rss, file           int64         // the server process: VmRSS and, of it, RssFile
	childRSS, childFile int64         // the sum over its descendant processes
}

func (m memSample) total() int64 { return m.rss + m.childRSS }

// sampleMemory reads the memory of pid and its descendants every second from t0 until ctx ends.
func sampleMemory(ctx context.Context, pid int, t0 time.Time) []memSample {
	var out []memSample
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if m, err := readMemory(pid); err == nil {
			m.at = time.Since(t0)
			out = append(out, m)
		}
		select {
		case <-ctx.Done():
			return out
		case <-tick.C:
		}
	}
}

// readMemory reads VmRSS and RssFile of pid and of each of its descendants (processTree); a
// descendant that exits meanwhile is left out.
func readMemory(pid int) (memSample, error) {
	tree := processTree(pid)
	st, err := statusOf(tree[0])
	if err != nil {
		return memSample{}, err
	}
	m := memSample{rss: st["VmRSS"], file: st["RssFile"]}
	for _, c := range tree[1:] {
		if st, err := statusOf(c); err == nil {
			m.childRSS += st["VmRSS"]
			m.childFile += st["RssFile"]
		}
	}
	return m, nil
}

// dnsWindow is one dnsperf run of a capacity run: its time span from the start of the run,
// its output file (parsed after the run, so that parsing takes no CPU from the load), and the
// share of a CPU the server used meanwhile.
type dnsWindow struct {
	start, end time.Duration
	outFile    string
	serverCPU  float64
	perf       perfResult
}

// runDNSWindows runs dnsperf against s back to back, windows runs of window each, on the
// load CPU with outstanding queries outstanding.
func (l *lab) runDNSWindows(ctx context.Context, s *server, queries string, windows int, window time.Duration, outstanding int, t0 time.Time) ([]dnsWindow, error) {
	out := make([]dnsWindow, 0, windows)
	for w := range windows {
		args := withOutstanding(dnsperfArgs(s.dns, queries, window, perfClients, 1), outstanding)
		if l.pin {
			args = append([]string{"taskset", "-c", strconv.Itoa(loadCPU)}, args...)
		}
		dw := dnsWindow{outFile: filepath.Join(l.dir, fmt.Sprintf("dnsperf-capacity-%s-%02d.txt", s.label, w+1))}
		f, err := os.Create(dw.outFile)
		if err != nil {
			return out, err
		}
		c0, err := s.cpuTime()
		if err != nil {
			f.Close()
			return out, err
		}
		dw.start = time.Since(t0)
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Stdout, cmd.Stderr = f, f
		err = cmd.Run()
		dw.end = time.Since(t0)
		f.Close()
		if err != nil {
			return out, fmt.Errorf("%s: %w (output in %s)", strings.Join(args, " "), err, dw.outFile)
		}
		if c1, err := s.cpuTime(); err == nil {
			dw.serverCPU = float64(c1-c0) / float64(dw.end-dw.start)
		}
		out = append(out, dw)
	}
	return out, nil
}

// parseWindows reads each window's dnsperf output.
func parseWindows(ws []dnsWindow) error {
	for i := range ws {
		f, err := os.Open(ws[i].outFile)
		if err != nil {
			return err
		}
		ws[i].perf, err = parseDnsperf(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("dnsperf output %s: %w", ws[i].outFile, err)
		}
	}
	return nil
}

// withOutstanding sets dnsperf's -q in args.
func withOutstanding(args []string, outstanding int) []string {
	if i := slices.Index(args, "-q"); i >= 0 && i+1 < len(args) {
		args[i+1] = strconv.Itoa(outstanding)
	}
	return args
}
