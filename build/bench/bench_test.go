package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/regdns/regdns/etcdstore"
	"github.com/regdns/regdns/etcdstore/etcdtest"
)

func TestZoneFileServesTheSameRecordsAsTheRegistry(t *testing.T) {
	var b bytes.Buffer
	if err := writeZone(&b, 10); err != nil {
		t.Fatal(err)
	}
	zp := dns.NewZoneParser(&b, "", "zone")
	a, txt := map[string]bool{}, map[string]string{}
	var soa *dns.SOA
	var ns int
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		switch rr := rr.(type) {
		case *dns.SOA:
			soa = rr
		case *dns.NS:
			ns++
			if rr.Ns != nsHost {
				t.Errorf("NS %s, want %s", rr.Ns, nsHost)
			}
		case *dns.A:
			if rr.A.String() != tunnelAddr || rr.Hdr.Ttl != addressTTL {
				t.Errorf("A record %s, want %s with TTL %d", rr, tunnelAddr, addressTTL)
			}
			a[rr.Hdr.Name] = true
		case *dns.TXT:
			if rr.Hdr.Ttl != challengeTTL || len(rr.Txt) != 1 {
				t.Errorf("TXT record %s, want one value with TTL %d", rr, challengeTTL)
			}
			txt[rr.Hdr.Name] = rr.Txt[0]
		default:
			t.Errorf("unexpected record %s", rr)
		}
	}
	if err := zp.Err(); err != nil {
		t.Fatal(err)
	}
	// The registry's defaults: `<first ns> hostmaster.ZONE 3600 600 604800 60`.
	if soa == nil || soa.Hdr.Name != zone || soa.Ns != nsHost || soa.Mbox != "hostmaster."+zone ||
		soa.Refresh != 3600 || soa.Retry != 600 || soa.Expire != 604800 || soa.Minttl != 60 || ns != 1 {
		t.Errorf("apex: SOA %v and %d NS, want the registry's default SOA and one NS", soa, ns)
	}
	if len(a) != 10 || len(txt) != 5 {
		t.Fatalf("%d names with A and %d challenges, want 10 and 5", len(a), len(txt))
	}
	for i := range 10 {
		if !a[name(i)+"."+zone] {
			t.Errorf("no A for %s", name(i))
		}
		v, ok := txt["_acme-challenge."+name(i)+"."+zone]
		if ok != hasChallenge(i) || (ok && v != challengeValue(i)) {
			t.Errorf("challenge of %s: %q (present %v), want present %v", name(i), v, ok, hasChallenge(i))
		}
	}
	if len(challengeValue(3)) != 43 {
		t.Errorf("challenge %q is not 43 characters like an ACME digest", challengeValue(3))
	}
}

func TestQueryMixHasTheIssuesProportions(t *testing.T) {
	const n, lines = 10_000, 20_000
	qs := queryMix(n, lines)
	if len(qs) != lines {
		t.Fatalf("%d queries, want %d", len(qs), lines)
	}
	count := map[kind]int{}
	firstKinds := map[kind]bool{}
	for i, q := range qs {
		k := classify(q, n)
		count[k]++
		if i < 50 {
			firstKinds[k] = true
		}
		var idx int
		switch k {
		case kindTXT:
			if !strings.HasPrefix(q.name, "_acme-challenge.gw") {
				t.Fatalf("TXT query %s is not at a challenge", q.name)
			}
			parseIndex(t, strings.TrimPrefix(q.name, "_acme-challenge."), &idx)
			if idx >= n || !hasChallenge(idx) {
				t.Fatalf("TXT query %s: that name has no challenge", q.name)
			}
		case kindNX:
			if parseIndex(t, q.name, &idx); idx < n || q.qtype != "A" {
				t.Fatalf("nonexistent query %s %s names a registered name", q.name, q.qtype)
			}
		}
	}
	want := map[kind]int{kindA: lines * mixA / 100, kindTXT: lines * mixTXT / 100, kindNX: lines * mixNX / 100}
	for k, w := range want {
		if count[k] != w {
			t.Errorf("kind %d: %d queries, want exactly %d", k, count[k], w)
		}
	}
	if len(firstKinds) != 3 {
		t.Errorf("the first 50 queries hold only kinds %v: the mix is not shuffled", firstKinds)
	}
	again := queryMix(n, lines)
	for i := range qs {
		if qs[i] != again[i] {
			t.Fatalf("query %d differs between two generations: %v and %v", i, qs[i], again[i])
		}
	}
	var b bytes.Buffer
	if err := writeQueries(&b, qs[:2]); err != nil {
		t.Fatal(err)
	}
	if want := qs[0].name + " " + qs[0].qtype + "\n" + qs[1].name + " " + qs[1].qtype + "\n"; b.String() != want {
		t.Errorf("queries file %q, want %q", b.String(), want)
	}
}

func parseIndex(t *testing.T, qname string, idx *int) {
	t.Helper()
	m := regexp.MustCompile(`^gw(\d+)\.` + regexp.QuoteMeta(zone) + `$`).FindStringSubmatch(qname)
	if m == nil {
		t.Fatalf("query name %q is not gwN.%s", qname, zone)
	}
	*idx = 0
	for _, c := range m[1] {
		*idx = *idx*10 + int(c-'0')
	}
}

// dnsperfSample is dnsperf 2.10.0 output as captured from a run with -v (query lines cut
// down to ten, one of them a timeout).
const dnsperfSample = `DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.1 -p 35013 -d queries-10000.txt -l 5 -c 10 -q 100 -t 2 -v
[Status] Sending queries (to 127.0.0.1:35013)
[Status] Started at: Thu Nov 26 21:13:02 2026
[Status] Stopping after 5.000000 seconds
> NOERROR gw1093.bench.example A 0.000248
> NOERROR _acme-challenge.gw5346.bench.example TXT 0.000219
> NXDOMAIN gw14411.bench.example A 0.000203
> NOERROR gw7.bench.example A 0.000124
> NOERROR gw8.bench.example A 0.000110
> T gw9.bench.example A
> NOERROR gw10.bench.example A 0.000152
> NOERROR gw11.bench.example A 0.000147
> NOERROR gw12.bench.example A 0.000114
> NOERROR gw13.bench.example A 0.003359
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         64707
  Queries completed:    64608 (99.85%)
  Queries lost:         99 (0.15%)

  Response codes:       NOERROR 58232 (90.13%), NXDOMAIN 6376 (9.87%)
  Average packet size:  request 38, response 97
  Run time (s):         5.528222
  Queries per second:   11686.982494

  Average Latency (s):  0.006960 (min 0.000016, max 0.885210)
  Latency StdDev (s):   0.024450

`

func TestParseDnsperfReadsStatisticsAndPerQueryLatencies(t *testing.T) {
	p, err := parseDnsperf(strings.NewReader(dnsperfSample))
	if err != nil {
		t.Fatal(err)
	}
	if p.Sent != 64707 || p.Completed != 64608 || p.Lost != 99 || p.QPS != 11686.982494 {
		t.Errorf("sent %d completed %d lost %d qps %f", p.Sent, p.Completed, p.Lost, p.QPS)
	}
	if p.Avg != 6960*time.Microsecond {
		t.Errorf("average %v, want 6.96ms", p.Avg)
	}
	if p.Rcodes["NOERROR"] != 58232 || p.Rcodes["NXDOMAIN"] != 6376 || len(p.Rcodes) != 2 {
		t.Errorf("response codes %v", p.Rcodes)
	}
	// Nine latencies (the timeout has none); nearest rank: p50 is the 5th, p99 the 9th.
	if p.latencies != 9 || p.P50 != 152*time.Microsecond || p.P99 != 3359*time.Microsecond {
		t.Errorf("%d latencies, p50 %v, p99 %v; want 9, 152µs, 3.359ms", p.latencies, p.P50, p.P99)
	}
	if err := p.checkMix(); err != nil {
		t.Errorf("a run of the right mix fails the check: %v", err)
	}

	if _, err := parseDnsperf(strings.NewReader(strings.Split(dnsperfSample, "Statistics:")[0])); err == nil {
		t.Error("output without statistics parsed")
	}
	noVerbose := regexp.MustCompile(`(?m)^> .*\n`).ReplaceAllString(dnsperfSample, "")
	if _, err := parseDnsperf(strings.NewReader(noVerbose)); err == nil {
		t.Error("output without per-query latencies parsed")
	}
}

func TestCheckMixRejectsRunsThatDoNotAnswerTheMix(t *testing.T) {
	for _, tc := range []struct {
		rcodes map[string]int64
		ok     bool
	}{
		{map[string]int64{"NOERROR": 900, "NXDOMAIN": 100}, true},
		{map[string]int64{"NOERROR": 890, "NXDOMAIN": 110}, true},
		{map[string]int64{"NOERROR": 880, "NXDOMAIN": 100, "REFUSED": 20}, false},
		{map[string]int64{"NOERROR": 700, "NXDOMAIN": 300}, false}, // challenges expired or missing
		{map[string]int64{"NOERROR": 1000}, false},
		{map[string]int64{}, false},
	} {
		err := perfResult{Rcodes: tc.rcodes}.checkMix()
		if (err == nil) != tc.ok {
			t.Errorf("%v: error %v, want ok=%v", tc.rcodes, err, tc.ok)
		}
	}
}

func TestQuantileAndMedian(t *testing.T) {
	v := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if quantile(v, 0.5) != 5 || quantile(v, 0.99) != 10 || quantile(v, 0.1) != 1 || quantile(v, 1) != 10 {
		t.Errorf("quantiles of 1..10: p50 %v p99 %v p10 %v max %v", quantile(v, 0.5), quantile(v, 0.99), quantile(v, 0.1), quantile(v, 1))
	}
	if quantile([]float64{}, 0.5) != 0 {
		t.Error("quantile of nothing is not 0")
	}
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median of 3 1 2 = %v", m)
	}
	if m := median([]time.Duration{4, 1}); m != 2 {
		t.Errorf("median of 4 1 = %v, want 2 (the mean of the middle two, truncated)", m)
	}
}

func TestAnswerKeyIgnoresSerialAndNegativeTTLOnly(t *testing.T) {
	msg := func(rcode int, answer, ns string) *dns.Msg {
		m := new(dns.Msg)
		m.Authoritative, m.Rcode = true, rcode
		if answer != "" {
			m.Answer = []dns.RR{mustRR(t, answer)}
		}
		if ns != "" {
			m.Ns = []dns.RR{mustRR(t, ns)}
		}
		return m
	}
	soa := "bench.example. %d IN SOA ns1.bench.example. hostmaster.bench.example. %d 3600 600 604800 60"
	nx1 := msg(dns.RcodeNameError, "", strings.Replace(strings.Replace(soa, "%d", "60", 1), "%d", "17", 1))
	nx2 := msg(dns.RcodeNameError, "", strings.Replace(strings.Replace(soa, "%d", "3600", 1), "%d", "1", 1))
	if answerKey(nx1) != answerKey(nx2) {
		t.Errorf("NXDOMAIN answers differing in SOA serial and TTL compare different:\n%s\n%s", answerKey(nx1), answerKey(nx2))
	}
	a := msg(dns.RcodeSuccess, "gw1.bench.example. 60 IN A 192.0.2.1", "")
	withNS := msg(dns.RcodeSuccess, "gw1.bench.example. 60 IN A 192.0.2.1", "bench.example. 3600 IN NS ns1.bench.example.")
	if answerKey(a) != answerKey(withNS) {
		t.Error("the authority section of a positive answer is compared")
	}
	for _, other := range []*dns.Msg{
		msg(dns.RcodeSuccess, "gw1.bench.example. 60 IN A 192.0.2.2", ""),
		msg(dns.RcodeSuccess, "gw1.bench.example. 30 IN A 192.0.2.1", ""),
		msg(dns.RcodeNameError, "", ""),
		nx1,
	} {
		if answerKey(other) == answerKey(a) {
			t.Errorf("%s compares equal to %s", answerKey(other), answerKey(a))
		}
	}
	notAA := msg(dns.RcodeSuccess, "gw1.bench.example. 60 IN A 192.0.2.1", "")
	notAA.Authoritative = false
	if answerKey(notAA) == answerKey(a) {
		t.Error("a missing AA flag is not noticed")
	}
}

func mustRR(t *testing.T, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

func TestQuickSetsShortRunsButExplicitFlagsWin(t *testing.T) {
	o, err := parseFlags([]string{"-quick", "-duration", "7s"}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.names) != 1 || o.names[0] != 10_000 || o.duration != 7*time.Second || o.apiDuration != 3*time.Second {
		t.Errorf("-quick -duration 7s: names %v duration %v api %v", o.names, o.duration, o.apiDuration)
	}
	o, err = parseFlags(nil, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.names) != 2 || o.names[1] != 1_000_000 || o.duration != 15*time.Second || o.runs != 2 || o.concurrency != 32 || o.rate != 200 {
		t.Errorf("defaults: %+v", o)
	}
	for _, bad := range [][]string{{"-names", "10k"}, {"-names", "1"}, {"-duration", "100ms"}, {"-runs", "0"}, {"extra"}} {
		if _, err := parseFlags(bad, &bytes.Buffer{}); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestBenchAddressesAreDistinctAndInTheBenchmarkRange(t *testing.T) {
	seen := map[string]bool{}
	for i := range uint32(1 << 17) {
		a := benchAddr(i)
		if seen[a] {
			t.Fatalf("address %s repeats at %d", a, i)
		}
		seen[a] = true
		if !strings.HasPrefix(a, "198.18.") && !strings.HasPrefix(a, "198.19.") {
			t.Fatalf("address %s is outside 198.18.0.0/15", a)
		}
	}
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// The bulk writer is checked against the registry's own code: etcdstore's consistency check
// and its View, on a real embedded etcd.
func TestPopulatedNamesAreWhatTheRegistryReads(t *testing.T) {
	e := etcdtest.Start(t)
	cli, err := etcdClient(e.Endpoints()[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 3*namesPerTxn + 5 // several transactions and a partial one
	tokens, err := populate(ctx, cli, n)
	if err != nil {
		t.Fatal(err)
	}
	if len(tokens) != n || !uuidV4.MatchString(tokens[0]) || tokens[0] == tokens[1] {
		t.Fatalf("%d tokens, the first two equal: %v; the first shaped like a UUIDv4: %v", len(tokens), tokens[0] == tokens[1], uuidV4.MatchString(tokens[0]))
	}
	if err := checkLayout(ctx, e.Endpoints()[0]); err != nil {
		t.Fatal(err)
	}

	s, err := etcdstore.Open(ctx, etcdstore.Config{Endpoints: e.Endpoints(), Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.View().WaitLoaded(ctx); err != nil {
		t.Fatal(err)
	}
	if s.View().Len() != n {
		t.Fatalf("the view holds %d names, want %d", s.View().Len(), n)
	}
	for _, i := range []int{0, 1, n - 1} {
		d, ok := s.View().Lookup(name(i))
		if !ok {
			t.Fatalf("%s is not in the view", name(i))
		}
		live := d.LiveChallenges(time.Now(), 24*time.Hour)
		if hasChallenge(i) != (len(live) == 1) || (len(live) == 1 && live[0] != challengeValue(i)) {
			t.Errorf("%s: live challenges %v, want one (%v)", name(i), live, hasChallenge(i))
		}
		// The token index leads to the record, as the API looks it up.
		got, err := s.Get(ctx, etcdstore.ByToken(tokens[i]))
		if err != nil || got.Name != name(i) {
			t.Errorf("record by the token of %s: %q, %v", name(i), got.Name, err)
		}
	}

	// A record whose index is missing is caught, so the check above can fail.
	if _, err := cli.Delete(ctx, tokensKey+hashOf(tokens[2])); err != nil {
		t.Fatal(err)
	}
	if err := checkLayout(ctx, e.Endpoints()[0]); err == nil {
		t.Error("the check passes with a token index missing")
	}
}

// runSmoke runs the harness with args against $COREDNS_BINARY (or ./coredns built into a
// temporary directory), keeping its files in a temporary directory, and returns the report and
// that directory; it fails the test if the harness exits with an error. Smoke runs take real
// CPU time, so they run only when REGDNS_BENCH_SMOKE=1.
func runSmoke(t *testing.T, args ...string) (report, out string) {
	t.Helper()
	if os.Getenv("REGDNS_BENCH_SMOKE") != "1" {
		t.Skip("set REGDNS_BENCH_SMOKE=1 to run the harness against ./coredns and dnsperf")
	}
	bin := os.Getenv("COREDNS_BINARY")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "coredns")
		if b, err := exec.Command("go", "build", "-o", bin, "..").CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, b)
		}
	}
	out = t.TempDir()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	code := run(ctx, append(args, "-binary", bin, "-out", out), &stdout, &stderr)
	report = stdout.String()
	if code != 0 {
		t.Fatalf("exit %d\nreport:\n%s\nprogress:\n%s", code, report, stderr.String())
	}
	return report, out
}

// TestSmoke runs the whole harness in -quick mode with very short runs against the real
// ./coredns and dnsperf. It takes about a minute of both CPUs, so it runs only when asked:
// REGDNS_BENCH_SMOKE=1 go test ./build/bench -run Smoke
func TestSmoke(t *testing.T) {
	report, out := runSmoke(t, "-quick", "-duration", "1s", "-runs", "1", "-queries", "5000",
		"-api-duration", "1s", "-propagation-duration", "1s")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^\s+10000\s+registry\s+\d+ `),
		regexp.MustCompile(`(?m)^\s+10000\s+file\s+\d+ .*\s1\.00\s+[\d.]+ [KMG]iB\s*$`), // vs file, then RSS after
		regexp.MustCompile(`(?m)^\s+10000\s+registry\s+\d+%\s+\d+%\s+\d+%\s+\d+\s+[\d.]+\s+\d+\s*$`),
		regexp.MustCompile(`(?m)^\s+10000\s+registry replica, view only\s+[\d.]+ s `),
		regexp.MustCompile(`layout verified by etcdstore\.Check`),
		regexp.MustCompile(`(?m)^\s+API /subscribe\s+\d+ .*\s0\s+\d+%\s*$`),
		regexp.MustCompile(`(?m)^\s+etcd txn as /subscribe\s+\d+ `),
		regexp.MustCompile(`(?m)^\s+B's DNS answers it, after A's 200\s+200\s`),
		regexp.MustCompile(`failed changes: 0; never answered by B within 10s: 0; .*read-your-writes\): 0`),
	} {
		if !want.MatchString(report) {
			t.Errorf("the report has no line matching %s:\n%s", want, report)
		}
	}
	for _, f := range []string{"zone-10000.db", "queries-10000.txt", "dnsperf-registry-10000-1.txt"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("-out kept no %s: %v", f, err)
		}
	}
}

// TestProcessTree: a shell's child shows in its tree, and the tree's memory is the sum of both.
func TestProcessTree(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 30 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	s := &server{label: "sh", cmd: cmd}
	var tree []int
	deadline := time.Now().Add(5 * time.Second)
	for tree = processTree(cmd.Process.Pid); len(tree) < 2 && time.Now().Before(deadline); tree = processTree(cmd.Process.Pid) {
		time.Sleep(10 * time.Millisecond)
	}
	if len(tree) != 2 || tree[0] != cmd.Process.Pid {
		t.Fatalf("tree of sh: %v, want sh and its sleep", tree)
	}
	defer exec.Command("kill", strconv.Itoa(tree[1])).Run()
	sum, err := s.status("VmRSS")
	if err != nil {
		t.Fatal(err)
	}
	parent, _ := statusOf(tree[0])
	child, _ := statusOf(tree[1])
	if sum["VmRSS"] != parent["VmRSS"]+child["VmRSS"] || child["VmRSS"] == 0 {
		t.Errorf("tree VmRSS %d, want %d + %d", sum["VmRSS"], parent["VmRSS"], child["VmRSS"])
	}
}
