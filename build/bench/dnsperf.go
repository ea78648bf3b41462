package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// dnsperf settings: 10 client sockets with 100 queries outstanding in all keep one server
// core saturated (more outstanding queries only add queueing delay to every latency), and
// -v reports each query's latency, from which the percentiles are computed.
const (
	perfClients     = 10
	perfOutstanding = 100
	perfTimeout     = 2 // seconds before a query counts as lost
)

// perfResult is what one dnsperf run measured.
type perfResult struct {
	Sent, Completed, Lost int64
	Rcodes                map[string]int64
	QPS                   float64
	Avg                   time.Duration // dnsperf's own average
	P50, P99              time.Duration // from the per-query latencies of -v
	latencies             int           // how many per-query lines there were

	// ServerCPU is the share of one CPU the server used during the run, and PerCPU the
	// queries it answered per CPU second: other load on the machine lowers the first and
	// barely moves the second. OthersCPU is the share of the server's CPU that went to
	// other work, other processes and interrupts (-1 if unknown); for a server on every CPU,
	// the CPU time of the whole machine less the server's and dnsperf's, over the run's time. LoadCPU is the share of
	// a CPU dnsperf itself used: near 100% means dnsperf, not the server, set the pace.
	ServerCPU, PerCPU, OthersCPU, LoadCPU float64
}

// dnsperfArgs is the command line of one run against addr from clients sockets in threads
// pairs of send and receive threads.
func dnsperfArgs(addr, queries string, d time.Duration, clients, threads int) []string {
	host, port, _ := net.SplitHostPort(addr)
	return []string{"dnsperf", "-s", host, "-p", port, "-d", queries,
		"-l", strconv.FormatFloat(d.Seconds(), 'f', -1, 64),
		"-c", strconv.Itoa(clients), "-T", strconv.Itoa(threads), "-q", strconv.Itoa(perfOutstanding),
		"-t", strconv.Itoa(perfTimeout), "-v"}
}

// runDnsperf runs dnsperf against s on the load CPU, its output kept in outFile, and
// parses that output once it is done, so the parsing takes no CPU from the run.
func (l *lab) runDnsperf(ctx context.Context, s *server, queries string, d time.Duration, outFile string) (perfResult, error) {
	clients, threads, cpu := perfClients, 1, loadCPU
	if s.cpu == allCPUs {
		clients, threads, cpu = sharedPerfClients, sharedPerfThreads, allCPUs
	}
	args := dnsperfArgs(s.dns, queries, d, clients, threads)
	if l.pin {
		args = append([]string{"taskset", "-c", cpuList(cpu)}, args...)
	}
	out, err := os.Create(outFile)
	if err != nil {
		return perfResult{}, err
	}
	defer out.Close()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	c0, err := s.cpuTime()
	if err != nil {
		return perfResult{}, err
	}
	busy0, busyErr := cpuBusy(s.cpu)
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return perfResult{}, fmt.Errorf("%s: %w (output in %s)", strings.Join(args, " "), err, outFile)
	}
	wall := time.Since(t0)
	c1, err := s.cpuTime()
	if err != nil {
		return perfResult{}, err
	}
	busy1, busyErr1 := cpuBusy(s.cpu)
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		return perfResult{}, err
	}
	res, err := parseDnsperf(out)
	if err != nil {
		return perfResult{}, fmt.Errorf("dnsperf output %s: %w", outFile, err)
	}
	res.ServerCPU = float64(c1-c0) / float64(wall)
	res.LoadCPU = float64(cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime()) / float64(wall)
	res.OthersCPU = -1
	if l.pin && busyErr == nil && busyErr1 == nil {
		others := busy1 - busy0 - (c1 - c0)
		if s.cpu == allCPUs {
			others -= cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}
		res.OthersCPU = max(float64(others), 0) / float64(wall)
	}
	if c1 > c0 {
		res.PerCPU = float64(res.Completed) / (c1 - c0).Seconds()
	}
	return res, nil
}

// parseDnsperf reads dnsperf 2.10's output: the "> RCODE name type latency" line of each
// query (-v) and the closing statistics.
func parseDnsperf(r io.Reader) (perfResult, error) {
	res := perfResult{Rcodes: map[string]int64{}}
	var lat []float64
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// A run has millions of per-query lines: they are read without copying them.
		if rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("> ")); ok {
			// A timed-out query is reported as "> T name type", without a latency: its last
			// field is a type, not a number.
			if i := bytes.LastIndexByte(rest, ' '); i >= 0 {
				if v, err := strconv.ParseFloat(string(rest[i+1:]), 64); err == nil {
					lat = append(lat, v)
				}
			}
			continue
		}
		key, val, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		first := strings.Fields(val + " ")
		switch key {
		case "Queries sent":
			res.Sent, _ = strconv.ParseInt(first[0], 10, 64)
		case "Queries completed":
			res.Completed, _ = strconv.ParseInt(first[0], 10, 64)
		case "Queries lost":
			res.Lost, _ = strconv.ParseInt(first[0], 10, 64)
		case "Queries per second":
			res.QPS, _ = strconv.ParseFloat(first[0], 64)
		case "Average Latency (s)":
			v, _ := strconv.ParseFloat(first[0], 64)
			res.Avg = seconds(v)
		case "Response codes":
			for part := range strings.SplitSeq(val, ",") {
				f := strings.Fields(part)
				if len(f) >= 2 {
					n, _ := strconv.ParseInt(f[1], 10, 64)
					res.Rcodes[f[0]] = n
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return res, err
	}
	if res.QPS == 0 || res.Completed == 0 {
		return res, fmt.Errorf("no statistics (no query answered?)")
	}
	if len(lat) == 0 {
		return res, fmt.Errorf("no per-query latencies (dnsperf without -v?)")
	}
	slices.Sort(lat)
	res.latencies = len(lat)
	res.P50, res.P99 = seconds(quantile(lat, 0.50)), seconds(quantile(lat, 0.99))
	return res, nil
}

// checkMix verifies that a run's answers are what the query mix asks for: NOERROR for the
// registered names and their challenges, NXDOMAIN for the rest, and nothing else. A server
// that refused or failed queries would otherwise look fast.
func (p perfResult) checkMix() error {
	var total int64
	for rc, n := range p.Rcodes {
		if rc != "NOERROR" && rc != "NXDOMAIN" {
			return fmt.Errorf("%d answers with %s", n, rc)
		}
		total += n
	}
	if total == 0 {
		return fmt.Errorf("no answers")
	}
	share := 100 * float64(p.Rcodes["NXDOMAIN"]) / float64(total)
	if math.Abs(share-mixNX) > 1.5 {
		return fmt.Errorf("%.1f%% NXDOMAIN answers, the mix has %d%% nonexistent names", share, mixNX)
	}
	return nil
}

func seconds(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }

// quantile of sorted values, nearest rank.
func quantile[T int64 | float64 | time.Duration](sorted []T, q float64) T {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// median of values, which it sorts.
func median[T int64 | float64 | time.Duration](values []T) T {
	if len(values) == 0 {
		return 0
	}
	slices.Sort(values)
	n := len(values)
	if n%2 == 1 {
		return values[n/2]
	}
	return (values[n/2-1] + values[n/2]) / 2
}

// dnsperfVersion is the version line of the installed dnsperf.
func dnsperfVersion() string {
	out, _ := exec.Command("dnsperf", "-h").CombinedOutput()
	for line := range strings.SplitSeq(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "Version "); ok {
			return v
		}
	}
	return "unknown"
}
