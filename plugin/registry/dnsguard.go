package registry

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/pires/go-proxyproto"
)

// dnsTCPGuard caps CoreDNS's DNS-over-TCP connections, which nothing else caps: CoreDNS has no
// such setting and accepts as fast as clients connect, until the process is out of descriptors
// and etcd dies on its next file. An accepted connection takes the lowest free descriptor, so
// while one below threshold is free, DNS connections hold fewer than threshold; when none is,
// the new connection is closed at once and the descriptors above threshold stay for etcd, the
// API and the runtime.
//
// CoreDNS's only hook at accept is the PROXY protocol connection policy, which the guard
// borrows, answering "no PROXY header" (SKIP) for every connection it admits. That has two
// costs, hence `dns_tcp_guard` is opt-in: CoreDNS then reads UDP through a generic packet
// connection that does not choose the source address of replies (harmless only on sockets
// bound to one address, so the guard needs `bind` with specific addresses), and a reload
// opens new DNS sockets instead of handing the old ones over, so the few UDP queries queued
// on the old socket at that moment are lost.
type dnsTCPGuard struct {
	threshold int
	probe     *os.File
}

// probeFile is a descriptor to duplicate, which yields the lowest free one; one per process,
// since every reload installs a new guard.
var probeFile = sync.OnceValues(func() (*os.File, error) { return os.Open(os.DevNull) })

// guardDNSTCP installs the guard on the server block of server.
func guardDNSTCP(server *dnsserver.Config, threshold int) error {
	for _, h := range server.ListenHosts {
		if a, err := netip.ParseAddr(h); err != nil || a.IsUnspecified() {
			return fmt.Errorf("dns_tcp_guard needs `bind` with this host's addresses in the server block, not every address")
		}
	}
	if server.ProxyProtoConnPolicy != nil {
		return fmt.Errorf("dns_tcp_guard cannot be combined with the PROXY protocol")
	}
	if server.NumSockets > 1 {
		// Each socket accepts in its own goroutine: a connection one socket refuses frees its
		// descriptor after the check, and another socket's check that runs at that moment
		// sees a free one below the threshold and admits a connection above it (measured:
		// 319 to 356 connections held at a threshold of 299 with multisocket 2).
		return fmt.Errorf("dns_tcp_guard cannot be combined with multisocket: its descriptor check holds for one socket only")
	}
	probe, err := probeFile()
	if err != nil {
		return fmt.Errorf("dns_tcp_guard: %w", err)
	}
	g := &dnsTCPGuard{threshold: threshold, probe: probe}
	server.ProxyProtoConnPolicy = g.policy
	log.Infof("DNS over TCP on port %s capped: its connections fit below descriptor %d", server.Port, threshold)
	return nil
}

func (g *dnsTCPGuard) policy(opts proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
	if _, ok := opts.Upstream.(*net.TCPAddr); ok && g.full() {
		dnsTCPRefused.Inc()
		return proxyproto.REJECT, proxyproto.ErrInvalidUpstream
	}
	return proxyproto.SKIP, nil
}

// full reports whether every descriptor below the threshold is taken.
func (g *dnsTCPGuard) full() bool {
	fd, err := syscall.Dup(int(g.probe.Fd()))
	if err != nil {
		return true
	}
	syscall.Close(fd)
	return fd >= g.threshold
}
