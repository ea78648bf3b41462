// Package etcdtest starts the embedded etcd of package etcdstore for tests of the packages
// that use it: on free loopback ports, in a temporary directory, without fsync.
package etcdtest

import (
	"os"
	"sync"
	"testing"

	"github.com/regdns/regdns/etcdstore"
)

// Config is an embedded etcd in dir on free loopback client and peer ports, with Fast set:
// tests lose nothing when a power cut loses the last writes.
func Config(dir string) etcdstore.EmbeddedConfig {
	return etcdstore.EmbeddedConfig{
		Dir:       dir,
		ClientURL: "http://127.0.0.1:0",
		PeerURL:   "http://127.0.0.1:0",
		Fast:      true,
	}
}

// Start starts an embedded etcd that lives as long as the test.
func Start(t testing.TB) *etcdstore.Embedded {
	t.Helper()
	e, err := etcdstore.StartEmbedded(Config(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// StartStoppable is Start for a test that stops etcd itself, to see what its clients do:
// stop closes it, and the test's cleanup closes it only if stop was not called.
func StartStoppable(t testing.TB) (e *etcdstore.Embedded, stop func()) {
	t.Helper()
	e, err := etcdstore.StartEmbedded(Config(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() { once.Do(e.Close) }
	t.Cleanup(stop)
	return e, stop
}

// StartShared starts an embedded etcd for a TestMain, shared by a package's tests (each under
// its own key prefix). stop stops it and removes its directory.
func StartShared() (e *etcdstore.Embedded, stop func(), err error) {
	dir, err := os.MkdirTemp("", "etcdtest")
	if err != nil {
		return nil, nil, err
	}
	e, err = etcdstore.StartEmbedded(Config(dir))
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return e, func() {
		e.Close()
		os.RemoveAll(dir)
	}, nil
}
