package etcdstore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets this test binary be the embedded etcd's child process, as the server's main does.
func TestMain(m *testing.M) {
	if IsEmbeddedProcess() {
		os.Exit(ServeEmbeddedProcess())
	}
	EnableEmbeddedProcess()
	os.Exit(m.Run())
}

func startProcess(t *testing.T, log Logger) *EmbeddedProcess {
	t.Helper()
	p, err := StartEmbeddedProcess(EmbeddedConfig{Dir: t.TempDir(), Fast: true, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// TestEmbeddedProcess runs the embedded etcd in a child process of this test binary: the store
// reaches it through its socket, its metrics and log reach this process, it is started again
// with its data when it dies, and Close ends it.
// Not parallel: it reads the process's etcd gauges, which other tests' embedded etcds set.
func TestEmbeddedProcess(t *testing.T) {
	log := &lines{}
	p := startProcess(t, log)
	first := p.PID()
	if first == os.Getpid() {
		t.Fatal("the embedded etcd runs in this process")
	}
	if eps := p.Endpoints(); len(eps) != 1 || !strings.HasPrefix(eps[0], "unix://") {
		t.Fatalf("endpoints %q, want only the socket", eps)
	}
	s := openConfig(t, Config{Endpoints: p.Endpoints(), EmbeddedProcess: true})
	if err := s.Create(t.Context(), newRecord("before")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the child's database size as a metric", func() bool {
		return counted(t, etcdDBSize.WithLabelValues(embeddedEndpoint)) > 0
	})
	// The store's reachability probe (every second) reads no status of its own: the figures are
	// the child's, under "embedded", not a second series under the socket's URL.
	time.Sleep(2 * probeEvery)
	if etcdDBSize.DeleteLabelValues(p.Endpoints()[0]) {
		t.Errorf("the database size was also published under %s", p.Endpoints()[0])
	}

	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a new child", func() bool { return p.PID() != first })
	waitFor(t, 30*time.Second, "a write through the new child", func() bool {
		return s.Create(t.Context(), newRecord("after")) == nil
	})
	if _, err := s.Get(t.Context(), ByName("before")); err != nil {
		t.Fatalf("the record written before the child died: %v", err)
	}
	if log.count("embedded etcd process exited") != 1 || log.count("serving again") != 1 {
		t.Errorf("log %q: want the exit and the restart once each", log.all)
	}

	second := p.PID()
	s.Close()
	p.Close()
	if err := syscall.Kill(second, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("child %d after Close: kill -0 gives %v, want no such process", second, err)
	}
	if log.count("exited") != 1 {
		t.Errorf("Close was logged as a crash: %q", log.all)
	}
}

// TestEmbeddedProcessStartError: a child that cannot start etcd makes StartEmbeddedProcess
// fail with the child's reason, and leaves no process behind.
func TestEmbeddedProcessStartError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-directory")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := StartEmbeddedProcess(EmbeddedConfig{Dir: filepath.Join(file, "etcd"), Fast: true})
	if err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("err = %v, want the child's reason (not a directory)", err)
	}
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
