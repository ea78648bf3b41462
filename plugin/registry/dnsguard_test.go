package registry

import (
	"errors"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/pires/go-proxyproto"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var pb dto.Metric
	if err := c.Write(&pb); err != nil {
		t.Fatal(err)
	}
	return pb.GetCounter().GetValue()
}

// lowestFree is the lowest free descriptor number now.
func lowestFree(t *testing.T) int {
	t.Helper()
	fd, err := syscall.Dup(0)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd)
	return fd
}

// The guard admits DNS-over-TCP connections while a descriptor below its threshold is free,
// and passes every UDP datagram; real descriptors are taken to reach the threshold.
func TestDNSTCPGuard(t *testing.T) {
	server := &dnsserver.Config{ListenHosts: []string{"127.0.0.1", "::1"}, Port: "53"}
	threshold := lowestFree(t) + 8
	if err := guardDNSTCP(server, threshold); err != nil || server.ProxyProtoConnPolicy == nil {
		t.Fatalf("guard not installed on a server block bound to specific addresses: %v", err)
	}
	tcp := proxyproto.ConnPolicyOptions{Upstream: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4000}}
	udp := proxyproto.ConnPolicyOptions{Upstream: &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4000}}
	if p, err := server.ProxyProtoConnPolicy(tcp); p != proxyproto.SKIP || err != nil {
		t.Errorf("TCP with descriptors free: %v %v, want SKIP", p, err)
	}
	var held []*os.File
	defer func() {
		for _, f := range held {
			f.Close()
		}
	}()
	for lowestFree(t) < threshold {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, f)
	}
	refused := counterValue(t, dnsTCPRefused)
	if p, err := server.ProxyProtoConnPolicy(tcp); !errors.Is(err, proxyproto.ErrInvalidUpstream) {
		t.Errorf("TCP with every descriptor below the threshold taken: %v %v, want it closed", p, err)
	}
	if got := counterValue(t, dnsTCPRefused) - refused; got != 1 {
		t.Errorf("dns_tcp_connections_refused_total rose by %v, want 1", got)
	}
	if p, err := server.ProxyProtoConnPolicy(udp); p != proxyproto.SKIP || err != nil {
		t.Errorf("UDP with every descriptor below the threshold taken: %v %v, want SKIP", p, err)
	}
	held[0].Close()
	held = held[1:]
	if p, err := server.ProxyProtoConnPolicy(tcp); p != proxyproto.SKIP || err != nil {
		t.Errorf("TCP after one descriptor was freed: %v %v, want SKIP", p, err)
	}
}

// On a socket bound to every address the guard would change how UDP replies pick their
// source address, so it refuses.
func TestDNSTCPGuardNeedsBind(t *testing.T) {
	for _, hosts := range [][]string{{""}, {"0.0.0.0"}, {"127.0.0.1", "::"}} {
		server := &dnsserver.Config{ListenHosts: hosts, Port: "53"}
		if err := guardDNSTCP(server, 1000); err == nil || server.ProxyProtoConnPolicy != nil {
			t.Errorf("guard installed on a server block listening on %q (error %v)", hosts, err)
		}
	}
}

// Several sockets accept at once, which the guard's descriptor check does not survive, so it
// refuses multisocket with more than one socket (multisocket's setup runs before the
// registry's: it comes first in plugin.cfg).
func TestDNSTCPGuardRefusesMultisocket(t *testing.T) {
	for sockets, wantErr := range map[int]bool{0: false, 1: false, 2: true} {
		server := &dnsserver.Config{ListenHosts: []string{"127.0.0.1"}, Port: "53", NumSockets: sockets}
		err := guardDNSTCP(server, 1000)
		if gotErr := err != nil; gotErr != wantErr || gotErr == (server.ProxyProtoConnPolicy != nil) {
			t.Errorf("multisocket %d: error %v, guard installed %v", sockets, err, server.ProxyProtoConnPolicy != nil)
		}
	}
}
