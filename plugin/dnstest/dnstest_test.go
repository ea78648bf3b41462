package dnstest

import (
	"net"
	"testing"

	"github.com/miekg/dns"
)

// TestFreeAddressesBind checks that every free address can be bound and that FreeAddrs gives
// different ones.
func TestFreeAddressesBind(t *testing.T) {
	addrs := FreeAddrs(t, 3)
	if addrs[0] == addrs[1] || addrs[1] == addrs[2] || addrs[0] == addrs[2] {
		t.Errorf("FreeAddrs repeats itself: %v", addrs)
	}
	for _, a := range append(addrs, FreeHostAddr(t, "127.0.0.2"), "127.0.0.1:"+FreePort(t)) {
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Errorf("free address %s: %v", a, err)
			continue
		}
		l.Close()
	}
	c, err := net.ListenPacket("udp", FreeUDPAddr(t))
	if err != nil {
		t.Fatalf("free UDP address: %v", err)
	}
	c.Close()
}

// TestExchange asks a miekg/dns server over UDP and TCP, and checks that a silent address is
// an error.
func TestExchange(t *testing.T) {
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 1)})
		w.WriteMsg(m)
	})
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp", udp.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*dns.Server{{PacketConn: udp, Handler: h}, {Listener: tcp, Handler: h}} {
		go s.ActivateAndServe()
		defer s.Shutdown()
	}
	for _, network := range []string{"udp", "tcp"} {
		r := Ask(t, network, udp.LocalAddr().String(), "gw.example.org.", dns.TypeA)
		if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.1" {
			t.Errorf("%s answer %v", network, r.Answer)
		}
	}
	if _, err := Exchange("udp", FreeUDPAddr(t), "gw.example.org.", dns.TypeA); err == nil {
		t.Error("an answer from an address nothing listens on")
	}
}
