package etcdstore

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// The embedded etcd can run in a child process of the server's own binary, supervised by the
// server (EmbeddedProcess), instead of inside the server's process (Embedded). The child has its
// own heap: the garbage collector of the process that answers DNS then traces the view only, not
// etcd's key index and raft log as well, which at a million names doubled the work of every
// collection cycle and the heap it grows to (build/bench/README.md, "Capacity"). The server reaches
// the child through the same owner-only Unix socket that operator tools use.
//
// The child is the same executable (/proc/self/exe, so a binary replaced on disk by an upgrade
// still starts the version that runs), told by processEnv what to serve. It writes one JSON
// processEvent per line on its standard output: ready (or the error that stopped it), log lines
// for the server's log, and its metrics every second, which the server publishes as its own. It
// stops when its standard input closes: the server closes it, and the kernel closes the pipe when
// the server exits, however it exits. It ignores SIGINT and SIGTERM, which a terminal's Ctrl-C
// or systemd's stop send to the whole process group or cgroup: the server decides when etcd
// stops, after its own shutdown, rather than seeing etcd vanish under it and start it again.

// processEnv carries a child's EmbeddedConfig, as JSON (without its Log); its presence makes the binary's main run
// ServeEmbeddedProcess instead of the server.
const processEnv = "REGDNS_EMBEDDED_ETCD"

// processBinary is the executable StartEmbeddedProcess runs, "" until EnableEmbeddedProcess.
var processBinary atomic.Pointer[string]

// EnableEmbeddedProcess lets StartEmbeddedProcess run this executable as the embedded etcd's
// process: the server's main calls it, having called ServeEmbeddedProcess when IsEmbeddedProcess.
// Without it (tests, tools built without that main) the registry runs etcd in its own process.
func EnableEmbeddedProcess() {
	exe := "/proc/self/exe"
	processBinary.Store(&exe)
}

// EmbeddedProcessEnabled reports whether EnableEmbeddedProcess was called.
func EmbeddedProcessEnabled() bool { return processBinary.Load() != nil }

// IsEmbeddedProcess reports whether this process was started to be an embedded etcd's process.
func IsEmbeddedProcess() bool { return os.Getenv(processEnv) != "" }

// processEvent is one line a child writes.
type processEvent struct {
	Ready     bool            `json:"ready,omitempty"`
	Endpoints []string        `json:"endpoints,omitempty"`
	Error     string          `json:"error,omitempty"`
	Level     string          `json:"level,omitempty"`
	Message   string          `json:"msg,omitempty"`
	Metrics   *processMetrics `json:"metrics,omitempty"`
}

// processMetrics are the figures of the upkeep (upkeep.go) that the metrics of this package
// publish for the embedded etcd, as a child counts them since it started.
type processMetrics struct {
	DBSize, InUse, Quota             int64
	Alarms                           map[string]int
	Compactions, Defrags, Recoveries float64
}

// Timeouts of a child: to serve after its start (a large database takes a while to open), and to
// stop once asked before it is killed.
const (
	processStartTimeout = 2 * time.Minute
	processStopTimeout  = 30 * time.Second
	processMaxBackoff   = 30 * time.Second
)

// EmbeddedProcess is an embedded etcd running in a child process, restarted when it exits
// until Close.
type EmbeddedProcess struct {
	cfg       EmbeddedConfig // as given, Log aside: the child logs through its events
	exe       string
	log       Logger
	endpoints []string

	mu        sync.Mutex
	current   *child
	closing   chan struct{} // closed by Close
	closeOnce sync.Once
	done      chan struct{} // closed when the supervisor has stopped the last child
}

// child is one run of the embedded etcd's process.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	read  chan struct{}     // closed when its output is read to the end
	last  processMetrics    // the counters last published, to add what grew
	p     *EmbeddedProcess  // whose log and metrics it feeds
	ready chan processEvent // its ready or error event, once
}

// StartEmbeddedProcess starts the embedded etcd c describes in a child process and waits until it
// serves. Its Endpoints are for Open; Close stops it.
func StartEmbeddedProcess(c EmbeddedConfig) (*EmbeddedProcess, error) {
	exe := processBinary.Load()
	if exe == nil {
		return nil, errors.New("embedded etcd process: not enabled in this binary")
	}
	p := &EmbeddedProcess{
		cfg: c,
		exe: *exe, log: loggerOrDiscard(c.Log), closing: make(chan struct{}), done: make(chan struct{}),
	}
	ch, ready, err := p.spawn()
	if err != nil {
		return nil, err
	}
	p.endpoints, p.current = ready.Endpoints, ch
	go p.supervise(ch)
	return p, nil
}

// Endpoints are the client URLs of the child, as Embedded.Endpoints.
func (p *EmbeddedProcess) Endpoints() []string { return p.endpoints }

// PID is the process id of the running child.
func (p *EmbeddedProcess) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.current.cmd.Process.Pid
}

// Close stops the child (closing its input lets it close etcd cleanly) and its supervision.
// Calls after the first return at once.
func (p *EmbeddedProcess) Close() {
	p.closeOnce.Do(p.close)
}

func (p *EmbeddedProcess) close() {
	close(p.closing)
	p.mu.Lock()
	ch := p.current
	p.mu.Unlock()
	ch.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(processStopTimeout):
		p.mu.Lock()
		p.current.cmd.Process.Kill()
		p.mu.Unlock()
		<-p.done
	}
}

// spawn starts a child and waits for its ready event.
func (p *EmbeddedProcess) spawn() (*child, processEvent, error) {
	cfg, err := json.Marshal(p.cfg)
	if err != nil {
		return nil, processEvent{}, err
	}
	cmd := exec.Command(p.exe, "-embedded-etcd", p.cfg.Dir)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), processEnv+"="+string(cfg))
	cmd.Stderr = os.Stderr // etcd's own error log
	ch := &child{cmd: cmd, read: make(chan struct{}), p: p, ready: make(chan processEvent, 1)}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, processEvent{}, err
	}
	if ch.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, processEvent{}, err
	}
	if err := cmd.Start(); err != nil {
		return nil, processEvent{}, fmt.Errorf("embedded etcd process: %w", err)
	}
	go ch.readEvents(out)
	select {
	case ev := <-ch.ready:
		if ev.Ready {
			return ch, ev, nil
		}
		err = errors.New(ev.Error)
	case <-time.After(processStartTimeout):
		err = fmt.Errorf("embedded etcd in %s did not serve within %s", p.cfg.Dir, processStartTimeout)
	case <-p.closing:
		err = errors.New("embedded etcd process: closed while starting")
	}
	ch.stdin.Close()
	cmd.Process.Kill()
	ch.wait()
	return nil, processEvent{}, err
}

// wait returns once the child has exited and its output is read.
func (ch *child) wait() error {
	<-ch.read
	return ch.cmd.Wait()
}

// readEvents reads the child's events until its output ends.
func (ch *child) readEvents(out io.Reader) {
	defer close(ch.read)
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	answered := false
	for sc.Scan() {
		var ev processEvent
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		switch {
		case ev.Ready || ev.Error != "":
			if !answered {
				answered = true
				ch.ready <- ev
			}
		case ev.Metrics != nil:
			ch.publish(*ev.Metrics)
		case ev.Message != "":
			ch.p.logLine(ev.Level, ev.Message)
		}
	}
	if !answered {
		ch.ready <- processEvent{Error: fmt.Sprintf("embedded etcd process in %s exited before it served (its error is logged above)", ch.p.cfg.Dir)}
	}
}

// publish sets this process's metrics of the embedded etcd from a child's figures.
func (ch *child) publish(m processMetrics) {
	setDBGauges(embeddedEndpoint, m.DBSize, m.InUse, m.Quota)
	count := map[pb.AlarmType]int{}
	for name, n := range m.Alarms {
		count[pb.AlarmType(pb.AlarmType_value[name])] = n
	}
	setAlarmCounts(count)
	etcdCompactions.Add(max(m.Compactions-ch.last.Compactions, 0))
	etcdDefrags.Add(max(m.Defrags-ch.last.Defrags, 0))
	etcdNoSpaceRecoveries.Add(max(m.Recoveries-ch.last.Recoveries, 0))
	ch.last = m
}

func (p *EmbeddedProcess) logLine(level, msg string) {
	switch level {
	case "E":
		p.log.Errorf("%s", msg)
	case "W":
		p.log.Warningf("%s", msg)
	default:
		p.log.Infof("%s", msg)
	}
}

// supervise restarts the child whenever it exits, until Close, with a growing pause while it
// fails to start. Meanwhile DNS answers from the view and API writes fail.
func (p *EmbeddedProcess) supervise(ch *child) {
	defer close(p.done)
	for {
		err := ch.wait()
		select {
		case <-p.closing:
			return
		default:
		}
		p.log.Errorf("embedded etcd process exited (%v): starting it again", err)
		if ch = p.respawn(); ch == nil {
			return
		}
	}
}

// respawn starts a child again, retrying with backoff; nil once Close was called.
func (p *EmbeddedProcess) respawn() *child {
	backoff := time.Second
	for {
		select {
		case <-p.closing:
			return nil
		case <-time.After(backoff):
		}
		ch, _, err := p.spawn()
		if err == nil {
			p.mu.Lock()
			p.current = ch
			p.mu.Unlock()
			select {
			case <-p.closing: // Close took the child before this one: stop this one too
				ch.stdin.Close()
				ch.wait()
				return nil
			default:
			}
			p.log.Infof("embedded etcd process serving again (pid %d)", ch.cmd.Process.Pid)
			return ch
		}
		p.log.Errorf("starting the embedded etcd process again: %v", err)
		backoff = min(2*backoff, processMaxBackoff)
	}
}

// ServeEmbeddedProcess is the child's side: it runs the embedded etcd its environment describes
// until its standard input closes, and returns the exit status.
func ServeEmbeddedProcess() int {
	out := &eventWriter{w: os.Stdout}
	var pc EmbeddedConfig
	if err := json.Unmarshal([]byte(os.Getenv(processEnv)), &pc); err != nil {
		out.write(processEvent{Error: fmt.Sprintf("embedded etcd process: bad %s: %v", processEnv, err)})
		return 2
	}
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
	pc.Log = eventLogger{out}
	e, err := StartEmbedded(pc)
	if err != nil {
		out.write(processEvent{Error: err.Error()})
		return 1
	}
	tuneCollector()
	out.write(processEvent{Ready: true, Endpoints: e.Endpoints()})
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(closed)
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			m := e.metrics()
			out.write(processEvent{Metrics: &m})
		case <-closed:
			e.Close()
			return 0
		}
	}
}

// tuneCollector sets the child's garbage collector for what its heap is once etcd has started:
// mostly etcd's key index and raft log, which grow with the data rather than with the load. The
// start itself (replaying the write-ahead log, rebuilding the index) leaves garbage as large as
// what it built, which is collected and returned to the system here; and rather than letting the
// heap grow to twice the live data (GOGC=100) before the next collection, the heap goal is the
// live data plus a quarter of it (at least 64 MiB), so that the process stays near its live size
// at the price of collections 4 times as frequent, in a process that allocates only for writes.
// An operator's GOGC is kept.
func tuneCollector() {
	debug.FreeOSMemory()
	if os.Getenv("GOGC") != "" {
		return
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	live := max(ms.HeapAlloc, 1)
	headroom := max(childMinHeadroom, live/childHeadroomShare)
	debug.SetGCPercent(int(100 * headroom / live))
}

// The child's heap goal: live data plus 1/childHeadroomShare of it, at least childMinHeadroom.
const (
	childHeadroomShare = 4
	childMinHeadroom   = 64 << 20
)

// metrics are the embedded member's figures as the upkeep publishes them.
func (e *Embedded) metrics() processMetrics {
	srv := e.etcd.Server
	be := srv.Backend()
	m := processMetrics{DBSize: be.Size(), InUse: be.SizeInUse(), Quota: e.upkeep.quota, Alarms: map[string]int{}}
	for _, a := range srv.Alarms() {
		m.Alarms[a.Alarm.String()]++
	}
	m.Compactions, m.Defrags, m.Recoveries = counterValue(etcdCompactions), counterValue(etcdDefrags), counterValue(etcdNoSpaceRecoveries)
	return m
}

func counterValue(c interface{ Write(*dto.Metric) error }) float64 {
	var m dto.Metric
	if c.Write(&m) != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

// eventWriter writes events one line each, from any goroutine.
type eventWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (o *eventWriter) write(ev processEvent) {
	b, err := json.Marshal(ev)
	if err != nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.w.Write(append(b, '\n'))
}

// eventLogger sends the upkeep's log to the server's log.
type eventLogger struct{ out *eventWriter }

func (l eventLogger) Infof(f string, a ...any) {
	l.out.write(processEvent{Level: "I", Message: fmt.Sprintf(f, a...)})
}
func (l eventLogger) Warningf(f string, a ...any) {
	l.out.write(processEvent{Level: "W", Message: fmt.Sprintf(f, a...)})
}
func (l eventLogger) Errorf(f string, a ...any) {
	l.out.write(processEvent{Level: "E", Message: fmt.Sprintf(f, a...)})
}
