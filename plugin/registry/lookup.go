package registry

import (
	"net/netip"
	"strings"
	"time"

	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"

	"github.com/regdns/regdns/etcdstore"
)

// Results of a lookup, also the metric's label values.
const (
	resultAnswer   = "answer"
	resultNoData   = "nodata"
	resultNXDomain = "nxdomain"
)

// challengeLabel is the label ACME DNS-01 puts in front of the validated name.
const challengeLabel = "_acme-challenge"

// answer fills m for a query inside zone and says which kind of answer it is.
func (r *Registry) answer(view *etcdstore.View, zone string, state request.Request, m *dns.Msg) string {
	qname, qtype := state.Name(), state.QType()
	// Owner names echo the question's case (0x20 randomisation relies on it).
	owner := state.QName()
	rel := strings.TrimSuffix(strings.TrimSuffix(qname, zone), ".")

	_, static := r.static[qname]
	var rrs []dns.RR
	switch {
	case rel == "":
		rrs = r.apex(view, zone, qtype, m)
	case static || r.ents[qname]:
		rrs = addressRRs(owner, qtype, r.static[qname], r.cfg.TTL)
	default:
		d, label, ok := r.lookupName(view, rel)
		if !ok {
			return r.negative(view, zone, m, dns.RcodeNameError)
		}
		switch label {
		case "":
			rrs = addressRRs(owner, qtype, r.addresses(d), r.cfg.AddressTTL)
		case challengeLabel:
			values := d.LiveChallenges(time.Now(), r.cfg.ChallengeExpiry)
			if len(values) == 0 {
				return r.negative(view, zone, m, dns.RcodeNameError)
			}
			if qtype == dns.TypeTXT || qtype == dns.TypeANY {
				rrs = txtRRs(owner, values, r.cfg.ChallengeTTL)
			}
		}
	}
	if len(rrs) == 0 {
		return r.negative(view, zone, m, dns.RcodeSuccess)
	}
	m.Answer = rrs
	return resultAnswer
}

// lookupName finds the registered name that rel (the query relative to the zone) belongs to:
// the name itself (label "") or its ACME challenge name (label challengeLabel).
func (r *Registry) lookupName(view *etcdstore.View, rel string) (*etcdstore.Domain, string, bool) {
	label, name, deeper := strings.Cut(rel, ".")
	if !deeper {
		d, ok := view.Lookup(label)
		return d, "", ok
	}
	if label != challengeLabel || strings.IndexByte(name, '.') >= 0 {
		return nil, "", false
	}
	d, ok := view.Lookup(name)
	return d, label, ok
}

// apex answers at the zone's own name.
func (r *Registry) apex(view *etcdstore.View, zone string, qtype uint16, m *dns.Msg) []dns.RR {
	switch qtype {
	case dns.TypeSOA, dns.TypeANY:
		return []dns.RR{r.soa(view, zone, r.cfg.TTL)}
	case dns.TypeNS:
		var rrs []dns.RR
		for _, ns := range r.cfg.NS {
			rrs = append(rrs, &dns.NS{Hdr: hdr(zone, dns.TypeNS, r.cfg.TTL), Ns: ns.Name})
			m.Extra = append(m.Extra, addressRRs(ns.Name, dns.TypeA, ns.Addrs, r.cfg.TTL)...)
			m.Extra = append(m.Extra, addressRRs(ns.Name, dns.TypeAAAA, ns.Addrs, r.cfg.TTL)...)
		}
		return rrs
	}
	return nil
}

// negative fills the authority section with the SOA, its TTL the negative caching time of
// RFC 2308: min(SOA TTL, SOA minimum).
func (r *Registry) negative(view *etcdstore.View, zone string, m *dns.Msg, rcode int) string {
	m.Rcode = rcode
	m.Ns = []dns.RR{r.soa(view, zone, min(r.cfg.TTL, r.cfg.SOA.Minimum))}
	if rcode == dns.RcodeNameError {
		return resultNXDomain
	}
	return resultNoData
}

func (r *Registry) soa(view *etcdstore.View, zone string, ttl uint32) dns.RR {
	s := r.cfg.SOA
	return &dns.SOA{
		Hdr: hdr(zone, dns.TypeSOA, ttl), Ns: s.Mname, Mbox: s.Rname,
		Serial: uint32(view.Revision()), Refresh: s.Refresh, Retry: s.Retry, Expire: s.Expire, Minttl: s.Minimum,
	}
}

// addresses are what a registered name resolves to: its tunnel's in tunnel mode, the
// gateway's own in dynamic-DNS mode.
func (r *Registry) addresses(d *etcdstore.Domain) []netip.Addr {
	if d.Mode == etcdstore.ModeDynamic {
		var out []netip.Addr
		for _, a := range []netip.Addr{d.IPv4, d.IPv6} {
			if a.IsValid() {
				out = append(out, a)
			}
		}
		return out
	}
	if t, ok := r.cfg.Tunnels[d.Continent]; ok && d.Continent != "" {
		return t
	}
	return r.cfg.Tunnels[""]
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

func txtRRs(owner string, values []string, ttl uint32) []dns.RR {
	rrs := make([]dns.RR, len(values))
	for i, v := range values {
		rrs[i] = &dns.TXT{Hdr: hdr(owner, dns.TypeTXT, ttl), Txt: []string{v}}
	}
	return rrs
}

func hdr(owner string, rrtype uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: owner, Rrtype: rrtype, Class: dns.ClassINET, Ttl: ttl}
}
