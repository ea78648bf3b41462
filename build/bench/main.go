// Command bench measures ./coredns with the registry plugin side by side with the same
// binary's file plugin on the same names (dnsperf), the registration API against raw etcd,
// the cost of a million names, and how fast a change reaches another replica. `make bench`
// runs it; README.md beside this file explains each measurement.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command line.
type options struct {
	names        []int
	duration     time.Duration // one dnsperf run
	runs         int           // dnsperf runs per server, alternated between servers
	apiDuration  time.Duration // one API or etcd load
	concurrency  int           // workers of the API and etcd loads
	rate         int           // changes per second of the propagation run
	propDuration time.Duration
	queries      int    // lines of the dnsperf queries file
	memLimit     string // GOMEMLIMIT of a second replica; "" for none
	out          string
	binary       string
	save         bool
	etcdProcess  string // etcd_process of the registry's embedded etcd
	multicore    bool   // the multi-core scenario instead of the others
	args         []string

	// The capacity scenario (capacity.go) instead of the side-by-side benchmark.
	capacity            bool
	quick               bool
	capacityDuration    time.Duration // main run of the registry and the replica
	capacityOutstanding int           // dnsperf -q of the capacity runs
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := options{args: args}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	names := fs.String("names", "10000,1000000", "comma-separated zone sizes (registered names)")
	fs.DurationVar(&o.duration, "duration", 15*time.Second, "length of each dnsperf run")
	fs.IntVar(&o.runs, "runs", 2, "dnsperf runs per server, alternated registry/file/registry/file")
	fs.DurationVar(&o.apiDuration, "api-duration", 10*time.Second, "length of each API and etcd load")
	fs.IntVar(&o.concurrency, "concurrency", 32, "concurrent requests of the API and etcd loads")
	fs.IntVar(&o.rate, "rate", 200, "changes per second of the propagation run")
	fs.DurationVar(&o.propDuration, "propagation-duration", 10*time.Second, "length of the propagation run")
	fs.IntVar(&o.queries, "queries", 200_000, "lines of the dnsperf queries file")
	fs.StringVar(&o.memLimit, "replica-memlimit", "900MiB", "also query a replica run with this GOMEMLIMIT (\"\" for none)")
	quick := fs.Bool("quick", false, "smoke run: 10000 names, short runs (flags given explicitly still apply)")
	fs.StringVar(&o.out, "out", "", "keep zone, query, Corefile, log and dnsperf files in this directory (default: a temporary one, deleted)")
	fs.StringVar(&o.binary, "binary", "./coredns", "the coredns binary under test")
	fs.StringVar(&o.etcdProcess, "etcd-process", "child", "where the registry's embedded etcd runs: child (the default) or inline (in the server's process)")
	fs.BoolVar(&o.save, "save", false, "also write the report to "+resultsDir+"/results-<date>.txt")
	fs.BoolVar(&o.multicore, "multicore", false, "only the multi-core scenario: servers and dnsperf on every CPU, multisocket and Knot's UDP workers (default -names "+multicoreNames+")")
	fs.BoolVar(&o.capacity, "capacity", false, "run the capacity scenario instead: N names under DNS and ping load (default N 1000000, -quick 100000)")
	fs.DurationVar(&o.capacityDuration, "capacity-duration", 0, "capacity: the registry's and the replica's run (default 4m, -quick 60s)")
	fs.IntVar(&o.capacityOutstanding, "capacity-outstanding", perfOutstanding, "capacity: dnsperf -q, queries outstanding")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	o.quick = *quick
	if *quick {
		quickDefaults := map[string]func(){
			"names":                func() { *names = "10000" },
			"duration":             func() { o.duration = 5 * time.Second },
			"api-duration":         func() { o.apiDuration = 3 * time.Second },
			"propagation-duration": func() { o.propDuration = 5 * time.Second },
		}
		for f, apply := range quickDefaults {
			if !set[f] {
				apply()
			}
		}
	}
	if o.multicore && !set["names"] && !*quick {
		*names = multicoreNames
	}
	if o.capacity && !set["names"] {
		*names = strconv.Itoa(capacityNames(o.quick))
	}
	for s := range strings.SplitSeq(*names, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 {
			return o, fmt.Errorf("-names: %q is not a zone size of at least 2", s)
		}
		o.names = append(o.names, n)
	}
	switch {
	case o.duration < time.Second:
		return o, errors.New("-duration must be at least 1s (dnsperf counts whole seconds)")
	case o.runs < 1, o.concurrency < 1, o.rate < 1, o.queries < 100:
		return o, errors.New("-runs, -concurrency, -rate must be positive and -queries at least 100")
	case o.etcdProcess != "child" && o.etcdProcess != "inline":
		return o, fmt.Errorf("-etcd-process: %q is neither child nor inline", o.etcdProcess)
	case o.apiDuration <= 0, o.propDuration <= 0:
		return o, errors.New("-api-duration and -propagation-duration must be positive")
	case o.capacity && (len(o.names) != 1 || o.capacityOutstanding < 1 || o.capacityDuration < 0):
		return o, errors.New("-capacity takes one zone size in -names, a positive -capacity-outstanding and -capacity-duration")
	}
	return o, nil
}

// run is the whole program apart from the process, so that the smoke test can call it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "bench: %v\n", err)
		}
		return 2
	}
	if _, err := exec.LookPath("dnsperf"); err != nil {
		fmt.Fprintln(stderr, "bench: dnsperf is not installed; install it with: apt-get install -y dnsperf")
		return 2
	}
	pin := runtime.NumCPU() >= 2
	if _, err := exec.LookPath("taskset"); pin && err != nil {
		fmt.Fprintln(stderr, "bench: taskset is not installed; install it with: apt-get install -y util-linux")
		return 2
	}
	if o.binary, err = filepath.Abs(o.binary); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	if err := checkBinary(o.binary); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	dir := o.out
	if dir == "" {
		if dir, err = os.MkdirTemp("", "regdns-bench-"); err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			return 1
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	if dir, err = filepath.Abs(dir); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	if pin {
		// This program is the load generator: keep it off the server's core too.
		if b, err := exec.Command("taskset", "-a", "-p", "-c", strconv.Itoa(loadCPU), strconv.Itoa(os.Getpid())).CombinedOutput(); err != nil {
			fmt.Fprintf(stderr, "bench: pinning to CPU %d: %v %s\n", loadCPU, err, b)
			return 1
		}
	}

	// Every process runs one copy of the binary, even if it is rebuilt during the run.
	bin := filepath.Join(dir, "coredns-under-test")
	sum, err := copyFile(o.binary, bin)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}

	var report bytes.Buffer
	w := io.MultiWriter(stdout, &report)
	r := &reporter{w: w, progress: stderr, o: o, start: time.Now(), binarySum: sum}
	r.header(pin)
	l := &lab{dir: dir, binary: bin, pin: pin, ports: map[int]bool{}, etcdProcess: o.etcdProcess}
	defer l.stopAll()
	var plot []byte
	switch {
	case o.multicore:
		err = multicore(ctx, l, o, r)
	case o.capacity:
		plot, err = capacity(ctx, l, o, r)
	default:
		var results []sizeResult
		results, err = benchmark(ctx, l, o, r)
		r.results(results, pin)
	}
	if err != nil {
		fmt.Fprintf(w, "\nFAILED: %v\n", err)
	}
	if o.save {
		path := filepath.Join(resultsDir, "results-"+r.start.UTC().Format("2006-01-02T150405Z")+".txt")
		if werr := saveReport(path, report.Bytes()); werr != nil {
			fmt.Fprintf(stderr, "bench: saving the report: %v\n", werr)
			return 1
		}
		fmt.Fprintf(stderr, "bench: report saved to %s\n", path)
		if plot != nil {
			md, werr := saveCapacityReport(r.start, report.Bytes(), plot)
			if werr != nil {
				fmt.Fprintf(stderr, "bench: saving the capacity report: %v\n", werr)
				return 1
			}
			fmt.Fprintf(stderr, "bench: capacity report and its plot saved to %s\n", md)
		}
	}
	if err != nil {
		return 1
	}
	return 0
}

// resultsDir holds the reports written by -save. It is git-ignored: results are not source;
// the figures worth keeping are quoted in the project README.
const resultsDir = "build/bench/results"

// saveReport writes a report to path, creating its directory.
func saveReport(path string, report []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, report, 0o644)
}

// copyFile copies an executable and returns the start of its SHA-256.
func copyFile(from, to string) (string, error) {
	src, err := os.Open(from)
	if err != nil {
		return "", err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(dst, h), src); err != nil {
		dst.Close()
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:12], dst.Close()
}

// checkBinary makes sure the binary is a coredns with both plugins compared.
func checkBinary(bin string) error {
	out, err := exec.Command(bin, "-plugins").Output()
	if err != nil {
		return fmt.Errorf("%s -plugins: %v (run `make build` first)", bin, err)
	}
	for _, p := range []string{"registry", "file", "ready", "bind"} {
		if !regexp.MustCompile(`(?m)^\s*(dns\.)?` + p + `\s*$`).Match(out) {
			return fmt.Errorf("%s has no %s plugin", bin, p)
		}
	}
	return nil
}
