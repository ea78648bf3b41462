package etcdstore

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// lines is a Logger that keeps what it is told.
type lines struct {
	mu  sync.Mutex
	all []string
}

func (l *lines) add(level, format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, level+" "+fmt.Sprintf(format, args...))
}

func (l *lines) Infof(format string, args ...any)    { l.add("INFO", format, args...) }
func (l *lines) Warningf(format string, args ...any) { l.add("WARNING", format, args...) }
func (l *lines) Errorf(format string, args ...any)   { l.add("ERROR", format, args...) }

// count is how many lines contain s.
func (l *lines) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.all {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// TestReachabilityLoggedOnce stops and restarts the etcd a store reaches over the network:
// "etcd unreachable" is logged once however many calls fail meanwhile, "etcd reachable
// again" once when it is back, and the reachability gauge follows. While it runs, the
// cluster's database figures are published under the endpoint's name.
// Not parallel: the reachability gauge is the process's, which other tests' stores set.
func TestReachabilityLoggedOnce(t *testing.T) {
	dir := t.TempDir()
	const quota = 64 << 20
	e, err := StartEmbedded(EmbeddedConfig{Dir: dir, ClientURL: "http://127.0.0.1:0", QuotaBytes: quota, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	clientURL := e.Endpoints()[0]
	log := &lines{}
	s := openConfig(t, Config{Endpoints: []string{clientURL}, Timeout: 300 * time.Millisecond, Log: log})
	if err := s.Create(t.Context(), newRecord("alpha")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "no database size metric", func() bool { return counted(t, etcdDBSize.WithLabelValues(clientURL)) > 0 })
	if got := counted(t, etcdQuota.WithLabelValues(clientURL)); got != quota {
		t.Errorf("quota metric %v, want %d", got, quota)
	}
	if got := counted(t, etcdAlarms.WithLabelValues("NOSPACE")); got != 0 {
		t.Errorf("NOSPACE alarms %v, want 0", got)
	}

	e.Close()
	for range 5 {
		s.Create(t.Context(), newRecord("beta"))
	}
	eventually(t, 20*time.Second, `no "etcd unreachable"`, func() bool { return log.count("etcd unreachable") > 0 })
	if counted(t, etcdReachable) != 0 {
		t.Error("reachable gauge is not 0 while etcd is down")
	}
	time.Sleep(3 * probeEvery) // more failed probes must not log again

	restarted, err := StartEmbedded(EmbeddedConfig{Dir: dir, ClientURL: clientURL, QuotaBytes: quota, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(restarted.Close)
	eventually(t, 20*time.Second, `no "etcd reachable again"`, func() bool { return log.count("etcd reachable again") > 0 })
	time.Sleep(3 * probeEvery)
	if n := log.count("etcd unreachable"); n != 1 {
		t.Errorf(`"etcd unreachable" logged %d times, want once`, n)
	}
	if n := log.count("etcd reachable again"); n != 1 {
		t.Errorf(`"etcd reachable again" logged %d times, want once`, n)
	}
	if counted(t, etcdReachable) != 1 {
		t.Error("reachable gauge is not 1 once etcd is back")
	}
}

// A store opened without a timeout (the Corefile sets none by default) probes with the
// default one: a zero timeout would fail every probe and report a healthy etcd as lost.
func TestReachableWithDefaultTimeout(t *testing.T) {
	e, err := StartEmbedded(EmbeddedConfig{Dir: t.TempDir(), Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	log := &lines{}
	openConfig(t, Config{Endpoints: e.Endpoints(), Local: e, Log: log})
	time.Sleep(3 * probeEvery)
	if n := log.count("etcd unreachable"); n != 0 {
		t.Errorf(`"etcd unreachable" logged %d times for a healthy etcd`, n)
	}
}
