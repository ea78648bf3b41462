package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// CPUs the server under test and the load (dnsperf, this program) are pinned to.
const (
	serverCPU = 0
	loadCPU   = 1
)

// startTimeout bounds a server's cold start; a million names take under a minute here.
const startTimeout = 5 * time.Minute

// server is one running process under test: ./coredns or knotd.
type server struct {
	label string
	dns   string // UDP and TCP address
	ready string // URL of the ready plugin; "" for knotd, which is ready once it answers SOA
	// refusing: a server block without any plugin answering, serving once ready and
	// answering REFUSED, not SOA.
	refusing bool
	api      string   // base URL of the registration API, "" if none
	env      []string // added to the environment of the process
	sockets  int      // UDP sockets it opens on its port (multisocket, Knot's UDP workers); 0 is one
	cpu      int      // the CPU it runs on, or allCPUs
	logPath  string

	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error

	// coldStart is from the process start to the first ready answer and SOA answer.
	coldStart time.Duration
}

// lab owns every process and port of one benchmark run.
type lab struct {
	dir     string
	binary  string
	pin     bool // taskset is used: two or more CPUs
	ports   map[int]bool
	servers []*server
	// etcdProcess is the embedded etcds' etcd_process: child (the default) or inline.
	etcdProcess string
}

// freePort returns a loopback port that nobody holds over TCP or UDP. CoreDNS binds with
// SO_REUSEPORT, so a port another CoreDNS holds would be silently shared: checking both
// protocols without that option finds such holders.
func (l *lab) freePort() (int, error) {
	for range 100 {
		t, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := t.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		t.Close()
		if err != nil {
			continue
		}
		u.Close()
		if !l.ports[port] {
			l.ports[port] = true
			return port, nil
		}
	}
	return 0, errors.New("no free loopback port found")
}

// freePorts returns n distinct free ports.
func (l *lab) freePorts(n int) ([]int, error) {
	out := make([]int, n)
	for i := range out {
		p, err := l.freePort()
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// start runs args (a program and its arguments) pinned to cpu (or every CPU: allCPUs), with
// its output in a log file named after label, and waits until it serves.
func (l *lab) start(ctx context.Context, label string, cpu int, s *server, args ...string) (*server, error) {
	s.label, s.cpu = label, cpu
	s.logPath = filepath.Join(l.dir, "log-"+label+".txt")
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	if l.pin {
		args = append([]string{"taskset", "-c", cpuList(cpu)}, args...)
	}
	s.cmd = exec.Command(args[0], args[1:]...)
	s.cmd.Dir = l.dir
	if len(s.env) > 0 {
		s.cmd.Env = append(os.Environ(), s.env...)
	}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	// taskset execs the program in place, so the pid is the server's; and if this program
	// dies, the server goes with it instead of holding ports and CPU.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	s.done = make(chan struct{})
	begin := time.Now()
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	l.servers = append(l.servers, s)
	go func() { s.waitErr = s.cmd.Wait(); close(s.done) }()
	if err := s.waitServing(ctx); err != nil {
		s.stop()
		return nil, fmt.Errorf("%s: %w\n%s", label, err, s.logTail())
	}
	s.coldStart = time.Since(begin)
	if n, want := udpSockets(s.port()), max(s.sockets, 1); n != want {
		s.stop()
		return nil, fmt.Errorf("%s: %d UDP sockets on port %d, want %d: another process shares it (SO_REUSEPORT), or the server opened fewer", label, n, s.port(), want)
	}
	return s, nil
}

// waitServing polls the ready plugin, then asks for the zone's SOA until it is answered.
func (s *server) waitServing(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	poll := func(ok func() bool) error {
		for !ok() {
			select {
			case <-s.done:
				return fmt.Errorf("exited before serving: %v", s.waitErr)
			case <-ctx.Done():
				return fmt.Errorf("not serving after %v: %w", startTimeout, ctx.Err())
			case <-time.After(10 * time.Millisecond):
			}
		}
		return nil
	}
	if s.ready != "" {
		client := &http.Client{Timeout: time.Second}
		err := poll(func() bool {
			resp, err := client.Get(s.ready)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
		if err != nil {
			return err
		}
	}
	return poll(func() bool {
		r, err := exchange(s.dns, zone, dns.TypeSOA, 200*time.Millisecond)
		if s.refusing {
			return err == nil && r.Rcode == dns.RcodeRefused
		}
		return err == nil && r.Rcode == dns.RcodeSuccess && r.Authoritative && len(r.Answer) == 1
	})
}

func (s *server) port() int {
	_, p, _ := net.SplitHostPort(s.dns)
	n, _ := strconv.Atoi(p)
	return n
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// cpuTime is the CPU time (user and system) the process and its children (the registry's
// embedded etcd runs in one) have used so far.
func (s *server) cpuTime() (time.Duration, error) {
	var total time.Duration
	for _, pid := range processTree(s.pid()) {
		t, err := cpuTimeOf(pid)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", s.label, err)
		}
		total += t
	}
	return total, nil
}

// cpuTimeOf is the CPU time one process has used so far.
func cpuTimeOf(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces; utime
	// and stime are the 14th and 15th fields of the line, in clock ticks of 1/100 s.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// processTree is pid and its descendants, from /proc/PID/task/*/children.
func processTree(pid int) []int {
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", out[i]))
		for _, task := range tasks {
			b, _ := os.ReadFile(task)
			for _, f := range strings.Fields(string(b)) {
				if n, err := strconv.Atoi(f); err == nil {
					out = append(out, n)
				}
			}
		}
	}
	return out
}

// cpuBusy is the time CPU cpu (every CPU: allCPUs) has spent on anything but idling, from
// /proc/stat.
func cpuBusy(cpu int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	prefix := fmt.Sprintf("cpu%d ", cpu)
	if cpu == allCPUs {
		prefix = "cpu "
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		// user nice system idle iowait irq softirq steal ..., in ticks of 1/100 s.
		f := strings.Fields(line)[1:]
		var busy int64
		for i, v := range f[:min(len(f), 8)] {
			if i == 3 || i == 4 {
				continue // idle, iowait
			}
			n, _ := strconv.ParseInt(v, 10, 64)
			busy += n
		}
		return time.Duration(busy) * 10 * time.Millisecond, nil
	}
	return 0, fmt.Errorf("no %s in /proc/stat", strings.TrimSpace(prefix))
}

// cpuShare measures the share of one CPU the process used while fn ran.
func (s *server) cpuShare(fn func() error) (float64, error) {
	c0, err := s.cpuTime()
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := fn(); err != nil {
		return 0, err
	}
	wall := time.Since(t0)
	c1, err := s.cpuTime()
	if err != nil {
		return 0, err
	}
	return float64(c1-c0) / float64(wall), nil
}

// memory returns the resident set (VmRSS) and its peak (VmHWM) in bytes, of the process and
// its children.
func (s *server) memory() (rss, peak int64, err error) {
	st, err := s.status("VmRSS", "VmHWM")
	return st["VmRSS"], st["VmHWM"], err
}

// fileBacked returns the part of the resident set that is pages of mapped files (RssFile):
// etcd's database, which etcd maps. They are the file's, clean, so the kernel can take them
// back under memory pressure, unlike the rest (RssAnon, RssShmem).
func (s *server) fileBacked() (int64, error) {
	st, err := s.status("RssFile")
	return st["RssFile"], err
}

// status reads the named kB fields of /proc/PID/status, in bytes, summed over the process and
// its children (the registry's embedded etcd runs in one); each must be there. Summed peaks
// (VmHWM) are an upper bound of the tree's peak: its processes may peak at different times.
func (s *server) status(keys ...string) (map[string]int64, error) {
	out := map[string]int64{}
	for _, pid := range processTree(s.pid()) {
		st, err := statusOf(pid)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.label, err)
		}
		for _, k := range keys {
			v, ok := st[k]
			if !ok {
				return nil, fmt.Errorf("%s: no %s in /proc/%d/status", s.label, k, pid)
			}
			out[k] += v
		}
	}
	return out, nil
}

// statusOf reads the kB fields of /proc/PID/status, in bytes.
func statusOf(pid int) (map[string]int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		fields := strings.Fields(v)
		if len(fields) != 2 || fields[1] != "kB" {
			continue
		}
		kb, _ := strconv.ParseInt(fields[0], 10, 64)
		out[k] = kb << 10
	}
	return out, sc.Err()
}

// settledMemory waits for the process to settle after loading (the view's decoding garbage
// collected, etcd's startup work done) and reads its memory.
func (s *server) settledMemory() (rss, peak int64, err error) {
	time.Sleep(2 * time.Second)
	return s.memory()
}

// stop ends the process with SIGTERM (SIGKILL after a minute) and waits for it.
func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(time.Minute):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// stopAll stops every process the lab started.
func (l *lab) stopAll() {
	for _, s := range l.servers {
		s.stop()
	}
	l.servers = nil
}

// logTail is the end of the server's output, for error messages.
func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// udpSockets counts the IPv4 UDP sockets bound to port, from /proc/net/udp.
func udpSockets(port int) int {
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return -1
	}
	suffix := fmt.Sprintf(":%04X", port)
	n := 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 1 && strings.HasSuffix(f[1], suffix) {
			n++
		}
	}
	return n
}

// exchange sends one UDP query without recursion desired, as an authoritative server gets it.
func exchange(addr, qname string, qtype uint16, timeout time.Duration) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(qname, qtype)
	m.RecursionDesired = false
	c := &dns.Client{Net: "udp", Timeout: timeout}
	r, _, err := c.Exchange(m, addr)
	return r, err
}

// registryOptions is what differs between the registry processes of a run.
type registryOptions struct {
	dataDir string
	// embedded etcd: its client and peer ports; replica: the endpoint of another's etcd.
	etcdClient, etcdPeer int
	endpoint             string
	prefix               string
	env                  []string // added to the process's environment
	etcdProcess          string   // etcd_process of an embedded etcd: child or inline ("": the lab's)
	sockets              int      // multisocket's number of DNS sockets; 0 or 1: one, without the plugin
	// production keeps the plugin's default write_limit, which the benchmark otherwise turns off.
	production bool
}

// startRegistry starts ./coredns serving the zone with the registry plugin.
func (l *lab) startRegistry(ctx context.Context, label string, cpu int, o registryOptions) (*server, error) {
	ports, err := l.freePorts(3)
	if err != nil {
		return nil, err
	}
	return l.startRegistryOn(ctx, label, cpu, o, ports)
}

// startRegistryOn starts the registry on given DNS, ready and API ports; a restart reuses
// them, and must, since the embedded etcd's member keeps its URLs. The bench measures how many
// changes etcd takes, so the per-name write limit, which would refuse most of them, is off
// unless the options ask for production settings.
func (l *lab) startRegistryOn(ctx context.Context, label string, cpu int, o registryOptions, ports []int) (*server, error) {
	if o.etcdProcess == "" {
		o.etcdProcess = l.etcdProcess
	}
	return l.startCorefile(ctx, label, cpu, registryCorefile(o, ports), ports, o.sockets, o.env...)
}

// registryCorefile is the Corefile of a registry process on its DNS, ready and API ports.
func registryCorefile(o registryOptions, ports []int) string {
	etcd := fmt.Sprintf("etcd_listen http://127.0.0.1:%d http://127.0.0.1:%d", o.etcdClient, o.etcdPeer)
	if o.etcdProcess != "" {
		etcd += "\n        etcd_process " + o.etcdProcess
	}
	if o.endpoint != "" {
		etcd = "etcd " + o.endpoint
	}
	writeLimit := "write_limit off"
	if o.production {
		writeLimit = ""
	}
	prefix := ""
	if o.prefix != "" {
		prefix = "etcd_prefix " + o.prefix
	}
	return fmt.Sprintf(`%s:%d {
    bind 127.0.0.1
    ready 127.0.0.1:%d
%s    registry {
        api 127.0.0.1:%d
        data %s
        %s
        %s
        tunnel %s
        trusted_proxy 127.0.0.1
        %s
    }
}
`, zone, ports[0], ports[1], multisocketLine(o.sockets), ports[2], o.dataDir, etcd, prefix, tunnelAddr, writeLimit)
}

// startFile starts ./coredns serving zoneFile with the file plugin: the baseline.
func (l *lab) startFile(ctx context.Context, label, zoneFile string) (*server, error) {
	return l.startFileOn(ctx, label, zoneFile, serverCPU, 0)
}

// startFileOn starts the file plugin on cpu (or allCPUs) with multisocket's sockets (0 or
// 1: without the plugin) and env added to its environment.
func (l *lab) startFileOn(ctx context.Context, label, zoneFile string, cpu, sockets int, env ...string) (*server, error) {
	ports, err := l.freePorts(2)
	if err != nil {
		return nil, err
	}
	return l.startCorefile(ctx, label, cpu, fileCorefile(zoneFile, sockets, ports), ports, sockets, env...)
}

// fileCorefile is the Corefile of the file plugin on its DNS and ready ports.
func fileCorefile(zoneFile string, sockets int, ports []int) string {
	// reload 0: the file plugin would otherwise re-read the file's SOA every minute.
	return fmt.Sprintf(`%s:%d {
    bind 127.0.0.1
    ready 127.0.0.1:%d
%s    file %s {
        reload 0
    }
}
`, zone, ports[0], ports[1], multisocketLine(sockets), zoneFile)
}

// startCorefile writes corefile and starts ./coredns on it, with env added to its
// environment; ports are its DNS, ready and (when there is one) API ports, sockets the UDP
// sockets multisocket opens (0: one).
func (l *lab) startCorefile(ctx context.Context, label string, cpu int, corefile string, ports []int, sockets int, env ...string) (*server, error) {
	cf := filepath.Join(l.dir, "Corefile-"+label)
	if err := os.WriteFile(cf, []byte(corefile), 0o644); err != nil {
		return nil, err
	}
	s := &server{
		dns:     fmt.Sprintf("127.0.0.1:%d", ports[0]),
		ready:   fmt.Sprintf("http://127.0.0.1:%d/ready", ports[1]),
		env:     env,
		sockets: sockets,
	}
	if len(ports) > 2 {
		s.api = fmt.Sprintf("http://127.0.0.1:%d", ports[2])
	}
	return l.start(ctx, label, cpu, s, l.binary, "-conf", cf)
}

// startKnot starts Knot DNS on zoneFile with one UDP and one TCP worker, the same single
// core as the others.
func (l *lab) startKnot(ctx context.Context, label, zoneFile string) (*server, error) {
	return l.startKnotOn(ctx, label, zoneFile, serverCPU, 1)
}

// startKnotOn starts Knot DNS on zoneFile on cpu (or allCPUs) with udpWorkers UDP workers,
// each on its own socket (Knot binds them with SO_REUSEPORT), and one TCP worker.
func (l *lab) startKnotOn(ctx context.Context, label, zoneFile string, cpu, udpWorkers int) (*server, error) {
	port, err := l.freePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(l.dir, label)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cf := filepath.Join(dir, "knot.conf")
	if err := os.WriteFile(cf, []byte(knotConfig(dir, zoneFile, port, udpWorkers)), 0o644); err != nil {
		return nil, err
	}
	s := &server{dns: fmt.Sprintf("127.0.0.1:%d", port), sockets: udpWorkers}
	return l.start(ctx, label, cpu, s, "knotd", "-c", cf)
}

// knotConfig is the configuration of knotd serving zoneFile on port, its state in dir.
func knotConfig(dir, zoneFile string, port, udpWorkers int) string {
	return fmt.Sprintf(`server:
    rundir: "%[1]s"
    listen: 127.0.0.1@%[2]d
    udp-workers: %[5]d
    tcp-workers: 1
    background-workers: 1
database:
    storage: "%[1]s"
zone:
  - domain: %[3]s
    storage: "%[1]s"
    file: "%[4]s"
`, dir, port, zone, zoneFile, udpWorkers)
}
