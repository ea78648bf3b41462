package registry

import (
	"testing"

	"github.com/miekg/dns"
)

// A transfer the transfer plugin does not serve is REFUSED, never answered as an empty
// NOERROR: with no transfer block, to a client not in `to`, and over UDP.
func TestTransferRefused(t *testing.T) {
	transferMsg := func(qtype uint16) *dns.Msg {
		m := new(dns.Msg)
		if qtype == dns.TypeAXFR {
			return m.SetAxfr("example.org.")
		}
		return m.SetIxfr("example.org.", 1, "ns1.example.org.", "hostmaster.example.org.")
	}
	noBlock := startServer(t, "")
	notListed := startServerWith(t, "transfer {\n to 192.0.2.99\n }", "")
	allowed := startServerWith(t, "transfer {\n to *\n }", "")
	for _, tc := range []struct {
		name  string
		s     *server
		net   string
		qtype uint16
		rcode int
	}{
		{"no transfer block, AXFR over TCP", noBlock, "tcp", dns.TypeAXFR, dns.RcodeRefused},
		{"no transfer block, IXFR over TCP", noBlock, "tcp", dns.TypeIXFR, dns.RcodeRefused},
		{"no transfer block, AXFR over UDP", noBlock, "udp", dns.TypeAXFR, dns.RcodeRefused},
		{"no transfer block, IXFR over UDP", noBlock, "udp", dns.TypeIXFR, dns.RcodeRefused},
		{"client not in to, AXFR", notListed, "tcp", dns.TypeAXFR, dns.RcodeRefused},
		{"client not in to, IXFR", notListed, "tcp", dns.TypeIXFR, dns.RcodeRefused},
		{"allowed client, AXFR over UDP", allowed, "udp", dns.TypeAXFR, dns.RcodeRefused},
		{"allowed client, AXFR", allowed, "tcp", dns.TypeAXFR, dns.RcodeSuccess},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.s.exchange(tc.net, transferMsg(tc.qtype))
			if r.Rcode != tc.rcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
			}
			if tc.rcode == dns.RcodeRefused && len(r.Answer)+len(r.Ns) > 0 {
				t.Errorf("REFUSED with records: answer %v, authority %v", r.Answer, r.Ns)
			}
			if tc.rcode == dns.RcodeSuccess {
				if len(r.Answer) < 2 || r.Answer[0].Header().Rrtype != dns.TypeSOA {
					t.Errorf("allowed AXFR: %v, want the zone starting with its SOA", r.Answer)
				}
			}
		})
	}
}
