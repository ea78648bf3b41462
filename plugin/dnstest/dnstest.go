// Package dnstest helps tests reach servers under test on loopback: free addresses to give
// them (DNS, HTTP API, etcd, databases) and DNS queries over UDP and TCP.
package dnstest

import (
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// FreeAddrs returns n different 127.0.0.1 addresses with TCP ports nothing listens on. They
// are held open together while chosen, so they differ; another process may still take one
// before the server under test binds it.
func FreeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		out = append(out, l.Addr().String())
	}
	return out
}

// FreeHostAddr returns an address on host, which may be any 127/8 address, with a TCP port
// nothing listens on.
func FreeHostAddr(t testing.TB, host string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on, for servers that take a
// port alone.
func FreePort(t testing.TB) string {
	t.Helper()
	_, port, _ := net.SplitHostPort(FreeAddrs(t, 1)[0])
	return port
}

// FreeUDPAddr returns a 127.0.0.1 address with a UDP port nothing listens on.
func FreeUDPAddr(t testing.TB) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// Timeout is how long Exchange waits for an answer: a stub resolver's.
const Timeout = 2 * time.Second

// Exchange sends one query for qname and qtype to addr over network ("udp" or "tcp").
func Exchange(network, addr, qname string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(qname, qtype)
	r, _, err := (&dns.Client{Net: network, Timeout: Timeout}).Exchange(m, addr)
	return r, err
}

// Ask is Exchange that fails the test when no answer comes.
func Ask(t testing.TB, network, addr, qname string, qtype uint16) *dns.Msg {
	t.Helper()
	r, err := Exchange(network, addr, qname, qtype)
	if err != nil {
		t.Fatalf("%s %s: %v", network, qname, err)
	}
	return r
}
