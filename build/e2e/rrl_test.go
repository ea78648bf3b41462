package e2e

import (
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/regdns/regdns/plugin/dnstest"
)

// TestHostileDNSClients runs ./coredns with response rate limiting at 2 responses/s per
// prefix after a window of 10 s (a burst of 20) and no transfer block, and plays the reflection attacker over real UDP: it measures
// the largest answer an unauthenticated query gets, floods the server with that query from
// 127.0.0.1 (the victim whose address an attacker forges), and checks that the flood is cut
// down to the limit while another prefix is answered in full, that TCP is never limited, and
// that a zone transfer is REFUSED.
func TestHostileDNSClients(t *testing.T) {
	t.Parallel()
	metricsAddr := dnstest.FreeAddrs(t, 1)[0]
	p := startServer(t, "    prometheus "+metricsAddr, `        ns ns1.example.org 127.0.0.1
        ns ns2.example.org 127.0.0.2
        tunnel 192.0.2.80 2001:db8::80
        rrl 2 slip 2 window 10s
        rrl_exempt 127.2.0.0/16`)
	tok := subscribe(t, p, "victim", "0", "")
	for _, v := range []string{strings.Repeat("a", 255), strings.Repeat("b", 255)} {
		p.in(t).ok("/dnsconfig", url.Values{"token": {tok}, "challenge": {v}})
	}

	// The largest answer among the queries anyone may send, as query and reply sizes over UDP
	// with the largest EDNS buffer (the attacker's choice). Measured from an exempt address.
	exempt := udpFrom(t, "127.2.0.1", p.dns)
	var worst *dns.Msg
	var worstRatio float64
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"example.org.", dns.TypeNS}, {"example.org.", dns.TypeSOA}, {"example.org.", dns.TypeANY},
		{"victim.example.org.", dns.TypeA}, {"victim.example.org.", dns.TypeAAAA}, {"victim.example.org.", dns.TypeANY},
		{"_acme-challenge.victim.example.org.", dns.TypeTXT}, {"nothing.example.org.", dns.TypeA},
	} {
		m := newQuery(q.name, q.qtype, false, 4096)
		qb, _ := m.Pack()
		rb := exempt.exchange(t, m)
		ratio := float64(len(rb)) / float64(len(qb))
		t.Logf("%s %s: %d-byte query, %d-byte answer: %.1f×", q.name, dns.TypeToString[q.qtype], len(qb), len(rb), ratio)
		if ratio > worstRatio {
			worst, worstRatio = m, ratio
		}
	}
	if worstRatio < 5 {
		t.Fatalf("largest amplification %.1f×: the zone holds two 255-byte challenge values, expected more", worstRatio)
	}

	// The flood: 2,000 copies of the worst query from the victim's address, as fast as the
	// socket sends them.
	flood := udpFrom(t, "127.0.0.1", p.dns)
	const sent = 2000
	qb, _ := worst.Pack()
	got := flood.blast(t, qb, sent)
	amplification := float64(got.bytes) / float64(sent*len(qb))
	t.Logf("flood of %d × %d bytes from 127.0.0.1: %d full answers, %d truncated, %d dropped; %d bytes back: amplification %.2f× (%.1f× without RRL)",
		sent, len(qb), got.full, got.truncated, sent-got.full-got.truncated, got.bytes, amplification, worstRatio)
	// The window's 20 (less the queries startServer made from 127.0.0.1 to see the server
	// up), and at most 2 more per second the flood lasted.
	if maxFull := 20 + 2*int(got.took.Seconds()+2); got.full < 15 || got.full > maxFull {
		t.Errorf("%d full answers to the flood over %s, want 15 to %d", got.full, got.took, maxFull)
	}
	if amplification >= 1 {
		t.Errorf("amplification under the flood %.2f×, want below 1", amplification)
	}
	// Every second limited response slips as a truncated answer, the others are dropped,
	// and each is counted by action (the socket may lose some of the flood, never adds).
	slipped := int(metric(t, metricsAddr, `coredns_registry_rrl_limited_total{action="slip"}`))
	dropped := int(metric(t, metricsAddr, `coredns_registry_rrl_limited_total{action="drop"}`))
	if slipped < dropped-1 || slipped > dropped+1 || slipped+dropped+got.full > sent || slipped+dropped < sent/2 {
		t.Errorf("%d slipped and %d dropped of %d sent with %d answered: want every second limited one slipped", slipped, dropped, sent, got.full)
	}
	if got.truncated > slipped || got.truncated < slipped*9/10 {
		t.Errorf("%d truncated answers received, %d slipped", got.truncated, slipped)
	}

	// The flooded /24 is limited as a whole, another /24 is not: each asks 10 times while
	// the flood goes on.
	stop := make(chan struct{})
	flooding := make(chan struct{})
	go func() {
		defer close(flooding)
		for {
			select {
			case <-stop:
				return
			default:
			}
			flood.c.Write(qb)
			time.Sleep(time.Millisecond)
		}
	}()
	sameFull := udpFrom(t, "127.0.0.2", p.dns).fullAnswers(worst, 10)
	otherFull := udpFrom(t, "127.1.0.2", p.dns).fullAnswers(worst, 10)
	close(stop)
	<-flooding
	t.Logf("during the flood: 127.0.0.2 got %d full answers of 10, 127.1.0.2 %d of 10", sameFull, otherFull)
	if sameFull > 2 {
		t.Errorf("127.0.0.2, in the flooded /24: %d full answers of 10, want at most 2", sameFull)
	}
	if otherFull != 10 {
		t.Errorf("127.1.0.2, another /24: %d full answers of 10, want all", otherFull)
	}
	// Neither TCP nor exempt prefixes are limited.
	if r := ask(t, "tcp", p.dns, worst); r.Truncated || len(r.Answer) == 0 {
		t.Errorf("TCP from the flooded /24 got %v, want a full answer", r)
	}
	if got := exempt.blast(t, qb, 200); got.full != 200 {
		t.Errorf("exempt prefix: %d full answers of 200", got.full)
	}

	// Without a transfer block, a zone transfer is REFUSED.
	if rc := axfrRcode(t, "127.0.0.1", p.dns); rc != dns.RcodeRefused {
		t.Errorf("AXFR without a transfer block: %s, want REFUSED", dns.RcodeToString[rc])
	}
	p.alive(t)
}

// udpClient is a UDP socket bound to one local address and connected to the server.
type udpClient struct{ c *net.UDPConn }

func udpFrom(t *testing.T, local, server string) *udpClient {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(local)}, raddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &udpClient{c}
}

// exchange sends m and returns the reply's bytes.
func (u *udpClient) exchange(t *testing.T, m *dns.Msg) []byte {
	t.Helper()
	b, _ := m.Pack()
	u.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := u.c.Write(b); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	n, err := u.c.Read(buf)
	if err != nil {
		t.Fatalf("%s from %s: %v", m.Question[0].String(), u.c.LocalAddr(), err)
	}
	return buf[:n]
}

// fullAnswers asks m n times, one after the other, and counts the full (not truncated)
// answers; a query without a reply within 500 ms counts as dropped.
func (u *udpClient) fullAnswers(m *dns.Msg, n int) int {
	b, _ := m.Pack()
	buf := make([]byte, 65535)
	full := 0
	for range n {
		u.c.SetDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := u.c.Write(b); err != nil {
			continue
		}
		k, err := u.c.Read(buf)
		r := new(dns.Msg)
		if err == nil && r.Unpack(buf[:k]) == nil && !r.Truncated && len(r.Answer) > 0 {
			full++
		}
	}
	return full
}

// send sends query n times without reading the replies.
func (u *udpClient) send(t *testing.T, query []byte, n int) {
	t.Helper()
	for range n {
		if _, err := u.c.Write(query); err != nil {
			t.Fatal(err)
		}
	}
}

// blastResult counts the replies to a flood.
type blastResult struct {
	full, truncated, bytes int
	took                   time.Duration
}

// blast sends query n times, pacing only to spare the socket buffers, and counts the replies
// that come back until none has for a second.
func (u *udpClient) blast(t *testing.T, query []byte, n int) blastResult {
	t.Helper()
	var res blastResult
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 65535)
		for {
			u.c.SetReadDeadline(time.Now().Add(time.Second))
			k, err := u.c.Read(buf)
			if err != nil {
				return
			}
			res.bytes += k
			r := new(dns.Msg)
			if r.Unpack(buf[:k]) == nil && r.Truncated && len(r.Answer) == 0 {
				res.truncated++
			} else {
				res.full++
			}
		}
	}()
	start := time.Now()
	for i := range n {
		if _, err := u.c.Write(query); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			time.Sleep(time.Millisecond)
		}
	}
	res.took = time.Since(start)
	wg.Wait()
	return res
}
