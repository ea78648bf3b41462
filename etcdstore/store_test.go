package etcdstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// loopbackConfig is an embedded etcd in dir on free loopback ports, without fsync. It is
// etcdtest.Config, which these tests cannot import: etcdtest imports this package.
func loopbackConfig(dir string) EmbeddedConfig {
	return EmbeddedConfig{Dir: dir, ClientURL: "http://127.0.0.1:0", PeerURL: "http://127.0.0.1:0", Fast: true}
}

// startEtcd starts an embedded etcd on free loopback ports that lives as long as the test
// (etcdtest.Start for this package's own tests).
func startEtcd(t *testing.T) *Embedded {
	t.Helper()
	e, err := StartEmbedded(loopbackConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// openStore opens a Store on e under prefix; it is closed before e, so etcd stops at once.
func openStore(t *testing.T, e *Embedded, prefix string) *Store {
	t.Helper()
	return openConfig(t, Config{Endpoints: e.Endpoints(), Prefix: prefix})
}

func openConfig(t *testing.T, cfg Config) *Store {
	t.Helper()
	s, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newRecord is a record of name with a fresh token, as the API would create it.
func newRecord(name string) Record {
	return Record{
		Name:        name,
		Token:       rand.Text(),
		Description: "gateway " + name,
		Created:     time.Now().UTC().Truncate(time.Second),
	}
}

// assertConsistent fails the test if Check finds any problem.
func assertConsistent(t *testing.T, s *Store) {
	t.Helper()
	problems, err := s.Check(t.Context())
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if len(problems) > 0 {
		t.Errorf("Check found %d problems:\n%s", len(problems), strings.Join(problems, "\n"))
	}
}

// keyCount is the number of keys under the store's prefix.
func keyCount(t *testing.T, s *Store) int64 {
	t.Helper()
	resp, err := s.Client().Get(t.Context(), s.keys.prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

// isSentinel reports whether err is one of the errors a caller acts on, as opposed to
// an etcd failure.
func isSentinel(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrNameTaken) || errors.Is(err, ErrSecretInUse) || errors.Is(err, ErrConflict)
}

// eventually polls cond every 20ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOpenThenWaitLoaded(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	s := openStore(t, e, "")
	for _, name := range []string{"alpha", "beta", "gamma"} {
		if err := s.Create(t.Context(), newRecord(name)); err != nil {
			t.Fatal(err)
		}
	}

	s2 := openStore(t, e, "")
	if err := s2.View().WaitLoaded(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !s2.View().Loaded() || s2.View().Len() != 3 {
		t.Errorf("after WaitLoaded: loaded %v with %d names, want the whole zone of 3",
			s2.View().Loaded(), s2.View().Len())
	}
}

// TestOpenBeforeEtcd pins what a server started while etcd is down relies on: Open returns
// at once with an unloaded View, and the View loads on its own once etcd answers.
func TestOpenBeforeEtcd(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	clientURL := "http://" + l.Addr().String()
	l.Close()

	start := time.Now()
	s := openConfig(t, Config{Endpoints: []string{clientURL}, Timeout: 300 * time.Millisecond})
	if took := time.Since(start); took > time.Second {
		t.Errorf("Open took %v with etcd down", took)
	}
	if s.View().Loaded() {
		t.Error("view claims to be loaded with etcd down")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := s.View().WaitLoaded(ctx); err == nil {
		t.Error("WaitLoaded succeeded with etcd down")
	}
	if _, err := s.Get(t.Context(), ByName("alpha")); err == nil || isSentinel(err) {
		t.Errorf("Get with etcd down = %v, want an etcd error", err)
	}

	e, err := StartEmbedded(EmbeddedConfig{Dir: t.TempDir(), ClientURL: clientURL, PeerURL: "http://127.0.0.1:0", Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	defer s.Close()
	ctx, cancel = context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	if err := s.View().WaitLoaded(ctx); err != nil {
		t.Fatalf("view did not load once etcd started: %v", err)
	}
	eventually(t, 15*time.Second, "calls did not start working once etcd started", func() bool {
		return s.Create(t.Context(), newRecord("alpha")) == nil
	})
	if _, ok := s.View().Lookup("alpha"); !ok {
		t.Error("view lacks alpha")
	}
}

func TestStoresKeepToTheirPrefix(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	a := openStore(t, e, "/a")
	b := openStore(t, e, "/a-b/")
	d := newRecord("alpha")
	if err := a.Create(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	if err := b.Create(t.Context(), d); err != nil {
		t.Fatalf("same name under another prefix: %v", err)
	}
	if _, err := a.Delete(t.Context(), ByToken(d.Token), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(t.Context(), ByToken(d.Token)); err != nil {
		t.Errorf("record under the other prefix: %v", err)
	}
	if _, ok := b.View().Lookup("alpha"); !ok {
		t.Error("the other prefix's view lost alpha")
	}
	assertConsistent(t, a)
	assertConsistent(t, b)
}

// The embedded member snapshots its raft log every embeddedSnapshotCount entries (etcd's
// default is 10,000), so that the entries it keeps in memory and replays at start stay few.
func TestEmbeddedSnapshotsItsRaftLog(t *testing.T) {
	dir := t.TempDir()
	e, err := StartEmbedded(loopbackConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cli, err := clientv3.New(clientv3.Config{Endpoints: e.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	snaps := func() []string {
		m, _ := filepath.Glob(filepath.Join(dir, "member", "snap", "*.snap"))
		return m
	}
	if s := snaps(); len(s) != 0 {
		t.Fatalf("snapshots before any write: %v", s)
	}
	for i := range embeddedSnapshotCount + 100 {
		if _, err := cli.Put(t.Context(), fmt.Sprintf("/snap-test/%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(snaps()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no raft snapshot after %d entries", embeddedSnapshotCount+100)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
