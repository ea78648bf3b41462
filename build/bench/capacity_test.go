package main

import (
	"bytes"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCapacityFlagsSizeTheRuns(t *testing.T) {
	for _, tc := range []struct {
		args                       []string
		n                          int
		main, baseline, ref, burst time.Duration
		outstanding                int
	}{
		{[]string{"-capacity"}, 1_000_000, 4 * time.Minute, time.Minute, 30 * time.Second, time.Minute, 100},
		{[]string{"-capacity", "-quick"}, 100_000, time.Minute, 20 * time.Second, 10 * time.Second, 20 * time.Second, 100},
		{[]string{"-capacity", "-quick", "-names", "5000", "-capacity-outstanding", "20"}, 5000, time.Minute, 20 * time.Second, 10 * time.Second, 20 * time.Second, 20},
		// A short main run bounds the others and the burst; durations round up to whole windows.
		{[]string{"-capacity", "-capacity-duration", "15s"}, 1_000_000, 20 * time.Second, 20 * time.Second, 20 * time.Second, 13 * time.Second, 100},
	} {
		o, err := parseFlags(tc.args, &bytes.Buffer{})
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		p := planCapacity(o)
		if !o.capacity || p.n != tc.n || p.main != tc.main || p.baseline != tc.baseline || p.reference != tc.ref || p.burstSpan != tc.burst || p.outstanding != tc.outstanding {
			t.Errorf("%v: %+v, want N %d, runs %v %v %v, burst span %v, -q %d", tc.args, p, tc.n, tc.main, tc.baseline, tc.ref, tc.burst, tc.outstanding)
		}
	}
	for _, bad := range [][]string{{"-capacity", "-names", "10000,20000"}, {"-capacity", "-capacity-outstanding", "0"}} {
		if _, err := parseFlags(bad, &bytes.Buffer{}); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestPingScheduleHasTheRateAndTheBurstExactly(t *testing.T) {
	p := planCapacity(options{names: []int{100_000}, quick: true, capacityOutstanding: 100}).mainPings(0)
	// 100,000 hourly gateways for 60 s, and 10% of them within 20 s from 20 s.
	if p.rate*3600 != 100_000 || p.steadyPings() != 1666 || p.burst != 10_000 || p.burstStart != 20*time.Second || p.burstSpan != 20*time.Second {
		t.Fatalf("plan %+v", p)
	}
	events := p.schedule()
	var steady, burst int
	perWindow := make([]int, 6)
	names := map[int]bool{}
	for i, ev := range events {
		if i > 0 && ev.at < events[i-1].at {
			t.Fatalf("event %d at %v before its predecessor's %v", i, ev.at, events[i-1].at)
		}
		if ev.burst {
			burst++
			if ev.at < 20*time.Second || ev.at >= 40*time.Second {
				t.Errorf("burst ping at %v, outside [20s, 40s)", ev.at)
			}
		} else {
			steady++
			if ev.at < 0 || ev.at >= time.Minute {
				t.Errorf("steady ping at %v, outside the run", ev.at)
			}
			perWindow[ev.at/windowLength]++
		}
		if names[ev.name] || ev.name < 0 || ev.name >= p.names {
			t.Errorf("name %d pings twice or is not registered", ev.name)
		}
		names[ev.name] = true
	}
	if steady != 1666 || burst != 10_000 {
		t.Errorf("%d steady and %d burst pings, want 1666 and 10000", steady, burst)
	}
	// Uniform over the run: each window near 277.7 (Poisson-like spread, 6 sigma ~ 100).
	for w, n := range perWindow {
		if n < 180 || n > 380 {
			t.Errorf("window %d has %d steady pings, want about 278", w, n)
		}
	}
	if again := p.schedule(); !slices.Equal(again, events) {
		t.Error("the same plan gives another schedule")
	}
	// The replica's run takes the next names of the same permutation: none of the registry's.
	for _, ev := range planCapacity(options{names: []int{100_000}, quick: true}).mainPings(p.used()).schedule() {
		if names[ev.name] {
			t.Fatalf("name %d pings in both runs", ev.name)
		}
	}
	// registry-10k: the same steady rate over 10,000 names, which wraps, and no burst.
	b := planCapacity(options{names: []int{100_000}, quick: true}).baselinePings()
	if ev := b.schedule(); len(ev) != 555 || b.burst != 0 || slices.ContainsFunc(ev, func(e pingEvent) bool { return e.burst || e.name >= baselineNames }) {
		t.Errorf("baseline: %d pings (want 555 = 100000/3600*20), burst %d", len(ev), b.burst)
	}
}

// The records are in steady state: under ping_granularity 6h, a ping writes when the last one
// written is 6 h old or more, which is a sixth of the records.
func TestSteadyRecordsSpreadTheLastPingOverSixHours(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	record := steadyRecord(now)
	const n = 60_000
	hours := make([]int, 6)
	for i := range n {
		d := record(i, "token")
		age := now.Sub(d.LastPing)
		if age <= time.Hour || age > 7*time.Hour || !d.Created.Before(d.LastPing) {
			t.Fatalf("%s: last ping %v ago, created %v ago", d.Name, age, now.Sub(d.Created))
		}
		if d.Name != name(i) || d.Token != "token" || d.IPv4 != gatewayAddr(i) || d.IPv4 != domain(i, "token", now).IPv4 {
			t.Fatalf("record %d is not domain's: %+v", i, d)
		}
		hours[int((age-time.Hour)/time.Hour)]++
	}
	for h, c := range hours {
		if share := float64(c) / n; share < 1.0/6-0.01 || share > 1.0/6+0.01 {
			t.Errorf("%.3f of the last pings are %d-%d h old, want 1/6", share, h+1, h+2)
		}
	}
	if record(7, "x").LastPing != record(7, "y").LastPing {
		t.Error("the spread is not the same in every run")
	}
}

func TestAggregatePutsPingsAndMemoryInTheirWindows(t *testing.T) {
	runs := []dnsWindow{
		{start: 20 * time.Millisecond, end: 10 * time.Second, perf: perfResult{QPS: 100}},
		{start: 10050 * time.Millisecond, end: 20100 * time.Millisecond, perf: perfResult{QPS: 200}},
	}
	ping := func(at, latency time.Duration, err string) pingResult {
		return pingResult{at: at, latency: latency, lag: latency / 10, err: err}
	}
	pings := []pingResult{
		ping(0, time.Millisecond, ""),                         // before the first run: the first window
		ping(5*time.Second, 3*time.Millisecond, ""),           // first
		ping(10040*time.Millisecond, 2*time.Millisecond, "x"), // in the gap after the first run: first
		ping(10050*time.Millisecond, 7*time.Millisecond, ""),  // second
		ping(25*time.Second, 9*time.Millisecond, "y"),         // after the last run: last
	}
	mem := []memSample{
		{at: time.Second, rss: 100, childRSS: 10},
		{at: 2 * time.Second, rss: 90, childRSS: 30},
		{at: 11 * time.Second, rss: 50},
	}
	ws := aggregate(runs, pings, mem)
	if len(ws) != 2 {
		t.Fatalf("%d windows, want 2", len(ws))
	}
	w0, w1 := ws[0], ws[1]
	if w0.lo != 0 || w0.hi != runs[1].start || w1.lo != runs[1].start || w1.hi != runs[1].end || w0.perf.QPS != 100 || w1.perf.QPS != 200 {
		t.Errorf("spans [%v, %v) [%v, %v], q/s %v %v", w0.lo, w0.hi, w1.lo, w1.hi, w0.perf.QPS, w1.perf.QPS)
	}
	want0 := pingStats{scheduled: 3, ok: 2, failed: 1, p50: 2 * time.Millisecond, p99: 3 * time.Millisecond, max: 3 * time.Millisecond, lagP99: 300 * time.Microsecond}
	want1 := pingStats{scheduled: 2, ok: 1, failed: 1, p50: 7 * time.Millisecond, p99: 9 * time.Millisecond, max: 9 * time.Millisecond, lagP99: 900 * time.Microsecond}
	if w0.pings != want0 || w1.pings != want1 {
		t.Errorf("pings %+v and %+v, want %+v and %+v", w0.pings, w1.pings, want0, want1)
	}
	// The peak is by total: process and children.
	if w0.peak.total() != 120 || w0.peak.rss != 90 || w1.peak.total() != 50 {
		t.Errorf("peaks %+v %+v", w0.peak, w1.peak)
	}
	if got := distinctErrors(pings); !slices.Equal(got, []string{"1x x", "1x y"}) {
		t.Errorf("distinct errors %q", got)
	}
}

// readMemory on real processes: a shell with a child and a grandchild, the process and its
// descendants apart.
func TestMemoryOfAProcessAndItsDescendants(t *testing.T) {
	cmd := exec.Command("sh", "-c", `sleep 60 & sh -c 'sleep 60; true' & wait`)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	var pids []int
	deadline := time.Now().Add(30 * time.Second)
	for len(pids) < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		pids = processTree(cmd.Process.Pid)[1:]
	}
	var comms []string
	for _, p := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/comm")
		if err != nil {
			t.Fatal(err)
		}
		comms = append(comms, strings.TrimSpace(string(b)))
	}
	slices.Sort(comms)
	if !slices.Equal(comms, []string{"sh", "sleep", "sleep"}) {
		t.Fatalf("descendants %v are %v, want a sleep, and a sh with its sleep", pids, comms)
	}
	m, err := readMemory(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, p := range pids {
		st, err := statusOf(p)
		if err != nil {
			t.Fatal(err)
		}
		sum += st["VmRSS"]
	}
	// The children's RSS is theirs, not the shell's, within what a process's RSS moves
	// between two reads.
	if m.rss <= 0 || m.childRSS <= 0 || m.childRSS < sum/2 || m.childRSS > 2*sum || m.total() != m.rss+m.childRSS {
		t.Errorf("memory %+v, children's VmRSS summed apart %d", m, sum)
	}
	own, err := statusOf(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if m.rss < own["VmRSS"]/2 || m.rss > 2*own["VmRSS"] {
		t.Errorf("the shell's own RSS %d, read apart %d", m.rss, own["VmRSS"])
	}
	if _, err := readMemory(1 << 30); err == nil {
		t.Error("a process that does not exist has memory")
	}
}

// svgDoc is the part of the plot the test reads.
type svgDoc struct {
	Groups []struct {
		ID        string `xml:"id,attr"`
		Polylines []struct {
			ID     string `xml:"id,attr"`
			Points string `xml:"points,attr"`
		} `xml:"polyline"`
		Lines []struct {
			ID    string  `xml:"id,attr"`
			Class string  `xml:"class,attr"`
			Y1    float64 `xml:"y1,attr"`
			Y2    float64 `xml:"y2,attr"`
		} `xml:"line"`
	} `xml:"g"`
}

func TestPlotHasAPointPerWindowAndGoalsOnTheScale(t *testing.T) {
	windows := func(n int, p99 func(i int) time.Duration) []capacityWindow {
		var ws []capacityWindow
		for i := range n {
			lo := time.Duration(i) * windowLength
			w := capacityWindow{lo: lo, hi: lo + windowLength, pings: pingStats{scheduled: 100 * i, p99: 10 * time.Duration(i) * time.Millisecond}}
			w.perf = perfResult{QPS: float64(1000 * (i + 1)), P99: p99(i)}
			ws = append(ws, w)
		}
		return ws
	}
	plan := pingPlan{}
	// registry's p99 is exactly the 5 ms goal in window 5 and its ping p99 50 ms there too;
	// its memory reaches 1.5 GiB at 3 s, the replica's 1 GiB at 2 s.
	reg := &capacityServer{label: "registry", pings: &plan, windows: windows(6, func(i int) time.Duration { return time.Duration(i) * time.Millisecond }),
		memory: []memSample{{at: time.Second, rss: 1 << 30}, {at: 3 * time.Second, rss: 1 << 30, childRSS: 1 << 29}}}
	rep := &capacityServer{label: "replica", pings: &plan, windows: windows(6, func(int) time.Duration { return 9 * time.Millisecond }),
		memory: []memSample{{at: 2 * time.Second, rss: 1 << 30}}}
	file := &capacityServer{label: "file", windows: windows(3, func(int) time.Duration { return 2 * time.Millisecond })}
	svg := plotCapacity([]*capacityServer{reg, rep, file}, capacityPlan{n: 1000, main: time.Minute, outstanding: 100})

	var doc svgDoc
	if err := xml.Unmarshal(svg, &doc); err != nil {
		t.Fatalf("the plot is not XML: %v\n%s", err, svg)
	}
	points := map[string][][2]float64{}
	goals := map[string]float64{}
	for _, g := range doc.Groups {
		for _, p := range g.Polylines {
			for pt := range strings.FieldsSeq(p.Points) {
				x, y, _ := strings.Cut(pt, ",")
				fx, _ := strconv.ParseFloat(x, 64)
				fy, _ := strconv.ParseFloat(y, 64)
				points[p.ID] = append(points[p.ID], [2]float64{fx, fy})
			}
		}
		for _, l := range g.Lines {
			if l.Class == "goal" {
				if l.Y1 != l.Y2 {
					t.Errorf("goal %s is not horizontal", l.ID)
				}
				goals[l.ID] = l.Y1
			}
		}
	}
	for id, want := range map[string]int{
		"qps-registry": 6, "qps-replica": 6, "qps-file": 3, "p99-registry": 6, "p99-file": 3,
		"pings-registry": 6, "ping-p99-replica": 6, "rss-registry": 2, "rss-replica": 1,
	} {
		if len(points[id]) != want {
			t.Errorf("%s has %d points, want %d", id, len(points[id]), want)
		}
	}
	if _, ok := points["pings-file"]; ok {
		t.Error("the file plugin, without pings, has a ping line")
	}
	// Time runs left to right, and the servers share the axis.
	if q := points["qps-registry"]; q[0][0] >= q[1][0] || q[0][0] != points["qps-file"][0][0] {
		t.Errorf("x of the first windows: registry %v, file %v", q[0], points["qps-file"][0])
	}
	near := func(a, b float64) bool { return a-b < 0.02 && b-a < 0.02 }
	for goal, at := range map[string][2]float64{
		"goal-p99":          points["p99-registry"][5],
		"goal-ping-p99":     points["ping-p99-registry"][5],
		"goal-rss-registry": points["rss-registry"][1],
		"goal-rss-replica":  points["rss-replica"][0],
	} {
		if y, ok := goals[goal]; !ok || !near(y, at[1]) {
			t.Errorf("%s at y %v (drawn: %v), want %v, the y of a value at the goal", goal, y, ok, at[1])
		}
	}
	// Higher values are drawn higher.
	if p := points["p99-registry"]; p[0][1] <= p[5][1] {
		t.Errorf("p99 0 ms at y %v, 5 ms at y %v", p[0][1], p[5][1])
	}
}

func TestGoalChecksPassAndFailOnTheFigures(t *testing.T) {
	plan := pingPlan{}
	win := func(qps float64, p99 time.Duration) capacityWindow {
		return capacityWindow{dnsWindow: dnsWindow{perf: perfResult{QPS: qps, P99: p99}}}
	}
	ok := pingResult{latency: 10 * time.Millisecond}
	reg := &capacityServer{label: "registry", coldStart: 19 * time.Second, pings: &plan,
		windows: []capacityWindow{win(900, 4*time.Millisecond), win(950, 5*time.Millisecond), win(880, 3*time.Millisecond)},
		results: []pingResult{ok, ok}, memory: []memSample{{rss: goalRegistryRSS}}}
	rep := &capacityServer{label: "replica", coldStart: 21 * time.Second, pings: &plan,
		windows: []capacityWindow{win(900, 6*time.Millisecond)},
		results: []pingResult{ok, {latency: time.Millisecond, err: "/ping: HTTP 503 Busy"}}, memory: []memSample{{rss: goalReplicaRSS, childRSS: 1}}}
	base := &capacityServer{label: "registry-10k", windows: []capacityWindow{win(1000, time.Millisecond)}}
	var got []string
	for _, c := range goalChecks([]*capacityServer{reg, rep, base}) {
		got = append(got, strconv.FormatBool(c.pass)+" "+c.what)
	}
	want := []string{
		"true registry: DNS p99 <= 5ms in every window",
		"true registry: q/s >= 90% of registry-10k's", // median 900 of 1000
		"true registry: pings p99 <= 50ms and none refused",
		"true registry: peak RSS <= 1.50 GiB",
		"true registry: cold start <= 20s",
		"false replica: DNS p99 <= 5ms in every window",
		"false replica: pings p99 <= 50ms and none refused",
		"false replica: peak RSS <= 1.00 GiB",
		"false replica: cold start <= 20s",
	}
	if !slices.Equal(got, want) {
		t.Errorf("checks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	reg.windows[0].perf.QPS = 800 // median 880: 88%
	if c := goalChecks([]*capacityServer{reg, base})[1]; c.pass || c.figure != "88% (median 880 vs 1000)" {
		t.Errorf("q/s check at 88%%: %+v", c)
	}
}

// TestCapacitySmoke runs the capacity scenario with 10-s runs against the real ./coredns and
// dnsperf (about 70 s of both CPUs), only when asked:
// REGDNS_BENCH_SMOKE=1 go test ./build/bench -run CapacitySmoke
func TestCapacitySmoke(t *testing.T) {
	report, out := runSmoke(t, "-capacity", "-names", "3000", "-capacity-duration", "10s", "-queries", "5000")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^registry, N=3000, cold start [\d.]+ s \(CPU 0\)$`),
		regexp.MustCompile(`(?m)^\s+0-10\s+\d+\s+[\d.]+\s+[\d.]+\s+\d+%\s+\d+\s+[\d.]+\s+\d+\s+0\s+`),  // a window with pings, none refused
		regexp.MustCompile(`(?m)^\s+registry\s+3000\s+1\s+\d+\s+\d+\s+[\d.]+\s+308\s+\d+ \(\d+%\)\s+`), // 0.83/s for 10 s and a burst of 300
		regexp.MustCompile(`(?m)^\s+replica\s+3000\s+1\s+`),
		regexp.MustCompile(`(?m)^\s+file\s+3000\s+1\s+\d+ `),
		regexp.MustCompile(`(?m)^\s+empty\s+0\s+1\s+\d+ `),
		regexp.MustCompile(`(?m)^\s+registry-10k\s+10000\s+1\s+\d+\s+\d+\s+[\d.]+\s+8\s+`),
		regexp.MustCompile(`(?m)^  (PASS|FAIL)  registry: q/s >= 90% of registry-10k's: \d+%`),
		regexp.MustCompile(`(?m)^  (PASS|FAIL)  replica: cold start <= 20s: [\d.]+ s$`),
		regexp.MustCompile(`(?m)^plot: .*capacity\.svg \(kept\)$`),
	} {
		if !want.MatchString(report) {
			t.Errorf("the report has no line matching %s:\n%s", want, report)
		}
	}
	svg, err := os.ReadFile(filepath.Join(out, "capacity.svg"))
	if err != nil {
		t.Fatal(err)
	}
	var doc svgDoc
	if err := xml.Unmarshal(svg, &doc); err != nil {
		t.Fatalf("the plot is not XML: %v", err)
	}
}
