package registry

import (
	"net/netip"
	"time"

	"github.com/miekg/dns"

	"github.com/regdns/regdns/etcdstore"
)

// reply is one response in one allocation: the message, and room for the answer of a
// registered name in its common shapes (one address of the asked family, one live challenge
// value), built per query into the reply instead of kept per name. Nothing is kept per name
// but the record itself: at a million names every object the view holds is one more the
// garbage collector traces, and that tracing is paid for by the queries. Building the record
// costs a few nanoseconds, and it is named as asked, in the question's case.
type reply struct {
	dns.Msg
	a    dns.A
	quad dns.AAAA
	txt  dns.TXT
	ans  [1]dns.RR
	ip   [16]byte
	val  [1]string
}

// address returns the qtype (A or AAAA) records of addrs, named owner: built into rep when
// there is one, allocated when there are several.
func (rep *reply) address(owner string, qtype uint16, addrs []netip.Addr, ttl uint32) []dns.RR {
	var found netip.Addr
	n := 0
	for _, a := range addrs {
		if (qtype == dns.TypeA && a.Is4()) || (qtype == dns.TypeAAAA && a.Is6()) {
			found, n = a, n+1
		}
	}
	if n != 1 {
		return addressRRs(owner, qtype, addrs, ttl)
	}
	if qtype == dns.TypeA {
		ip := found.As4()
		copy(rep.ip[:], ip[:])
		rep.a = dns.A{Hdr: hdr(owner, dns.TypeA, ttl), A: rep.ip[:4:4]}
		rep.ans[0] = &rep.a
	} else {
		rep.ip = found.As16()
		rep.quad = dns.AAAA{Hdr: hdr(owner, dns.TypeAAAA, ttl), AAAA: rep.ip[:]}
		rep.ans[0] = &rep.quad
	}
	return rep.ans[:]
}

// challenges returns the TXT records of the live challenge values of d, named owner: built
// into rep when there is one, allocated when there are several.
func (rep *reply) challenges(owner string, d *etcdstore.Domain, now time.Time, maxAge time.Duration, ttl uint32) []dns.RR {
	live, value := 0, ""
	for _, c := range d.Challenges {
		if c.Live(now, maxAge) {
			live, value = live+1, c.Value
		}
	}
	switch live {
	case 0:
		return nil
	case 1:
		rep.val[0] = value
		rep.txt = dns.TXT{Hdr: hdr(owner, dns.TypeTXT, ttl), Txt: rep.val[:]}
		rep.ans[0] = &rep.txt
		return rep.ans[:]
	}
	return txtRRs(owner, d.LiveChallenges(now, maxAge), ttl)
}
