package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/regdns/regdns/etcdstore"
	"github.com/regdns/regdns/plugin/registry"
)

// registryConfig is the registry block of the Corefile at conf: the only one, or the one
// serving zone.
func registryConfig(conf, zone string) (registry.Config, error) {
	cfgs, err := registry.ReadCorefile(conf)
	if err != nil {
		return registry.Config{}, err
	}
	if zone == "" {
		if len(cfgs) > 1 {
			return registry.Config{}, fmt.Errorf("%s has %d registry blocks: choose one with -zone", conf, len(cfgs))
		}
		return cfgs[0], nil
	}
	want := strings.ToLower(strings.TrimSuffix(zone, ".")) + "."
	for _, c := range cfgs {
		if c.Zones[0] == want {
			return c, nil
		}
	}
	return registry.Config{}, fmt.Errorf("%s has no registry block for %s", conf, want)
}

// probeTimeout bounds the check whether the server's embedded etcd is listening.
const probeTimeout = time.Second

// openKeyspace reaches the etcd of a registry block, as the server does, for one command:
// the configured cluster; or, with the embedded etcd, the running server's (through its
// owner-only socket in the data directory), or when no server runs, that etcd started here on
// the server's data directory. Progress notes go to log. The returned function releases it all.
func openKeyspace(cfg registry.Config, log io.Writer) (*etcdstore.Keyspace, func(), error) {
	ecfg := cfg.Etcd
	if len(ecfg.Endpoints) > 0 {
		ks, err := etcdstore.Connect(ecfg)
		if err != nil {
			return nil, nil, err
		}
		return ks, func() { ks.Close() }, nil
	}
	if ep, ok := serverRunning(cfg); ok {
		fmt.Fprintf(log, "using the running server's embedded etcd at %s\n", ep)
		ecfg.Endpoints = []string{ep}
		ks, err := etcdstore.Connect(ecfg)
		if err != nil {
			return nil, nil, err
		}
		return ks, func() { ks.Close() }, nil
	}
	return startEmbedded(cfg, log)
}

// startEmbedded starts the embedded etcd of a registry block on its data directory, as the
// server would, for one command, and connects to it.
func startEmbedded(cfg registry.Config, log io.Writer) (*etcdstore.Keyspace, func(), error) {
	ecfg := cfg.Etcd
	dir, err := filepath.Abs(etcdstore.EmbeddedDir(cfg.DataDir))
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(log, "no server is running: starting its embedded etcd on %s\n", dir)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, nil, err
	}
	ec := cfg.Embedded
	ec.Dir = dir
	e, err := etcdstore.StartEmbedded(ec)
	if err != nil {
		return nil, nil, err
	}
	ecfg.Endpoints, ecfg.Local = e.Endpoints(), e
	ks, err := etcdstore.Connect(ecfg)
	if err != nil {
		e.Close()
		return nil, nil, err
	}
	return ks, func() { ks.Close(); e.Close() }, nil
}

// serverRunning reports whether a server runs the embedded etcd of cfg, and its endpoint.
func serverRunning(cfg registry.Config) (string, bool) {
	ep, err := etcdstore.LocalEndpoint(cfg.DataDir)
	return ep, err == nil && listening(ep)
}

// listening reports whether something accepts connections at a unix:// socket URL: a socket
// file left by a server that crashed accepts nothing.
func listening(endpoint string) bool {
	path, ok := strings.CutPrefix(endpoint, "unix://")
	if !ok {
		return false
	}
	c, err := net.DialTimeout("unix", path, probeTimeout)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
