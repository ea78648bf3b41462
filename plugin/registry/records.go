package registry

import (
	"net/netip"
	"time"

	"github.com/miekg/dns"

	"github.com/regdns/regdns/etcdstore"
)

// The records of answers, built per query from the configuration and the records of the view.

// soa is the zone's SOA record with serial (the view's: etcdstore's serial.go).
func (r *Registry) soa(serial uint32, zone string, ttl uint32) dns.RR {
	s := r.cfg.SOA
	return &dns.SOA{
		Hdr: hdr(zone, dns.TypeSOA, ttl), Ns: s.Mname, Mbox: s.Rname,
		Serial: serial, Refresh: s.Refresh, Retry: s.Retry, Expire: s.Expire, Minttl: s.Minimum,
	}
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
func (rep *reply) challenges(owner string, d *etcdstore.Record, now time.Time, maxAge time.Duration, ttl uint32) []dns.RR {
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

// addressRRs makes the A or AAAA records of addrs that fit qtype; ANY gets the A records,
// or the AAAA records when there are none (a minimal RFC 8482 answer).
func addressRRs(owner string, qtype uint16, addrs []netip.Addr, ttl uint32) []dns.RR {
	var rrs []dns.RR
	for _, a := range addrs {
		switch {
		case a.Is4() && (qtype == dns.TypeA || qtype == dns.TypeANY):
			rrs = append(rrs, &dns.A{Hdr: hdr(owner, dns.TypeA, ttl), A: a.AsSlice()})
		case a.Is6() && qtype == dns.TypeAAAA:
			rrs = append(rrs, &dns.AAAA{Hdr: hdr(owner, dns.TypeAAAA, ttl), AAAA: a.AsSlice()})
		}
	}
	if len(rrs) == 0 && qtype == dns.TypeANY {
		return addressRRs(owner, dns.TypeAAAA, addrs, ttl)
	}
	return rrs
}

// rrsetOf copies the records of qtype in s, named owner. For ANY it takes one RRset, the first
// present in a fixed order: RFC 8482's minimal answer, never the whole node.
func rrsetOf(s map[uint16][]dns.RR, owner string, qtype uint16) []dns.RR {
	if qtype == dns.TypeANY {
		for _, t := range []uint16{dns.TypeCNAME, dns.TypeA, dns.TypeAAAA, dns.TypeMX, dns.TypeTXT, dns.TypeCAA} {
			if len(s[t]) > 0 {
				qtype = t
				break
			}
		}
	}
	var rrs []dns.RR
	for _, rr := range s[qtype] {
		rrs = append(rrs, withOwner(rr, owner))
	}
	return rrs
}

func txtRRs(owner string, values []string, ttl uint32) []dns.RR {
	rrs := make([]dns.RR, len(values))
	for i, v := range values {
		rrs[i] = &dns.TXT{Hdr: hdr(owner, dns.TypeTXT, ttl), Txt: []string{v}}
	}
	return rrs
}

// inQuestionCase returns rrs, owned by the lower-case qname, named owner instead when the question
// used another case: copies then, the shared records otherwise.
func inQuestionCase(rrs []dns.RR, qname, owner string) []dns.RR {
	if owner == qname || len(rrs) == 0 {
		return rrs
	}
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		out[i] = withOwner(rr, owner)
	}
	return out
}

// withOwner is a copy of rr named owner, so that answers echo the question's case.
func withOwner(rr dns.RR, owner string) dns.RR {
	c := dns.Copy(rr)
	c.Header().Name = owner
	return c
}

func hdr(owner string, rrtype uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: owner, Rrtype: rrtype, Class: dns.ClassINET, Ttl: ttl}
}
