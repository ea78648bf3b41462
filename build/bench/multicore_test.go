package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy/caddyfile"
)

func TestMulticoreFlagMeasuresAMillionNamesUnlessTold(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []int
	}{
		{[]string{"-multicore"}, []int{1_000_000}},
		{[]string{"-multicore", "-quick"}, []int{10_000}},
		{[]string{"-multicore", "-names", "5000,20000"}, []int{5000, 20000}},
		{[]string{"-multicore", "-quick", "-names", "300"}, []int{300}},
		{nil, []int{10_000, 1_000_000}},
	} {
		o, err := parseFlags(tc.args, &bytes.Buffer{})
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if !slices.Equal(o.names, tc.want) || o.multicore != slices.Contains(tc.args, "-multicore") {
			t.Errorf("%v: names %v multicore %v, want names %v", tc.args, o.names, o.multicore, tc.want)
		}
	}
}

// serverBlock parses corefile with CoreDNS's Corefile parser, allowing only the directives
// the bench writes, and returns its one server block's directives and their arguments.
func serverBlock(t *testing.T, corefile string) (key string, directives map[string][]string) {
	t.Helper()
	blocks, err := caddyfile.Parse("Corefile", strings.NewReader(corefile), []string{"bind", "ready", "multisocket", "registry", "file"})
	if err != nil || len(blocks) != 1 || len(blocks[0].Keys) != 1 {
		t.Fatalf("%v, %d server blocks in\n%s", err, len(blocks), corefile)
	}
	directives = map[string][]string{}
	for d, tokens := range blocks[0].Tokens {
		// The directive's own line: its name and arguments, up to a block.
		line := tokens[0].Line
		for _, tok := range tokens[1:] {
			if tok.Line != line || tok.Text == "{" {
				break
			}
			directives[d] = append(directives[d], tok.Text)
		}
		if _, ok := directives[d]; !ok {
			directives[d] = nil
		}
	}
	return blocks[0].Keys[0], directives
}

func TestCorefilesOpenMultisocketsSockets(t *testing.T) {
	ports := []int{5300, 8181, 8081}
	reg := registryOptions{dataDir: "/data", etcdClient: 2379, etcdPeer: 2380}
	for _, sockets := range []int{0, 1, 2, 4} {
		reg.sockets = sockets
		for kind, corefile := range map[string]string{
			"registry": registryCorefile(reg, ports),
			"file":     fileCorefile("/zone.db", sockets, ports),
		} {
			key, d := serverBlock(t, corefile)
			if _, ok := d[kind]; !ok || key != fmt.Sprintf("%s:%d", zone, ports[0]) || !slices.Equal(d["bind"], []string{"127.0.0.1"}) {
				t.Errorf("%s, %d sockets: block %s with %v", kind, sockets, key, d)
			}
			got, ok := d["multisocket"]
			if want := fmt.Sprint(sockets); sockets > 1 && !slices.Equal(got, []string{want}) || sockets <= 1 && ok {
				t.Errorf("%s, %d sockets: multisocket %v (present %v)\n%s", kind, sockets, got, ok, corefile)
			}
		}
	}
}

// Knot's own checker accepts the configuration (and, so that its acceptance means
// something, refuses a broken one); the worker count is the one asked for.
func TestKnotConfigHasTheUDPWorkers(t *testing.T) {
	dir := t.TempDir()
	zf := filepath.Join(dir, "zone.db")
	if err := writeZoneFile(zf, 3); err != nil {
		t.Fatal(err)
	}
	conf := knotConfig(dir, zf, 5353, 2)
	if !regexp.MustCompile(`(?m)^server:\n(    .*\n)*    udp-workers: 2\n`).MatchString(conf) {
		t.Errorf("no udp-workers: 2 in the server section:\n%s", conf)
	}
	if _, err := exec.LookPath("knotc"); err != nil {
		t.Skip("knotc (Debian package knot) is not installed: the configuration is not checked by Knot")
	}
	check := func(conf string) error {
		cf := filepath.Join(dir, "knot.conf")
		if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("knotc", "-c", cf, "conf-check").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	if err := check(conf); err != nil {
		t.Errorf("knotc conf-check: %v\n%s", err, conf)
	}
	if err := check(strings.Replace(conf, "udp-workers: 2", "udp-workers: two", 1)); err == nil {
		t.Error("knotc conf-check accepts udp-workers: two")
	}
}

func TestMulticoreConfigsAndCPUs(t *testing.T) {
	var got []string
	for _, c := range multicoreConfigs(2, true) {
		got = append(got, fmt.Sprintf("%s/%d", c, c.cores))
	}
	want := []string{"registry/1", "registry/2", "registry, multisocket 2/2", "file/1", "file/2", "file, multisocket 2/2",
		"knot/1", "knot/2", "knot, 2 UDP workers/2"}
	if !slices.Equal(got, want) {
		t.Errorf("configs %q, want %q", got, want)
	}
	if n := len(multicoreConfigs(4, false)); n != 6 {
		t.Errorf("%d configs without Knot, want 6", n)
	}
	if got, want := cpuList(allCPUs), fmt.Sprintf("0-%d", runtime.NumCPU()-1); got != want {
		t.Errorf("cpuList(allCPUs) = %q, want %q", got, want)
	}
	if got := cpuList(1); got != "1" {
		t.Errorf("cpuList(1) = %q", got)
	}
	args := strings.Join(dnsperfArgs("127.0.0.1:53", "q.txt", 5*time.Second, sharedPerfClients, sharedPerfThreads), " ")
	if !strings.Contains(args, "-c 20 -T 2 -q 100") {
		t.Errorf("dnsperf against a server on every CPU: %s", args)
	}
}

// TestMulticoreSmoke runs the -multicore scenario with very short runs against the real
// ./coredns, dnsperf and knotd (if installed): REGDNS_BENCH_SMOKE=1 go test ./build/bench -run Smoke
func TestMulticoreSmoke(t *testing.T) {
	report, out := runSmoke(t, "-multicore", "-quick", "-duration", "1s", "-runs", "1", "-queries", "5000")
	_, knot := exec.LookPath("knotd")
	for _, c := range multicoreConfigs(runtime.NumCPU(), knot == nil) {
		row := fmt.Sprintf(`(?m)^\s+10000\s+%s\s+%d\s+\d+\s+[\d.]+\s+[\d.]+\s+\d+\s+\d+%%\s+\d+%%\s+\d+%%\s+\d+\s+[\d.]+\s`, regexp.QuoteMeta(c.String()), c.cores)
		if !regexp.MustCompile(row).MatchString(report) {
			t.Errorf("the report has no row for %s on %d cores:\n%s", c, c.cores, report)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "dnsperf-registry-2c-2s-10000-run1.txt")); runtime.NumCPU() == 2 && err != nil {
		t.Errorf("-out kept no dnsperf output of the registry with multisocket 2: %v", err)
	}
}
