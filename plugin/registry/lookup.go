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

const (
	// challengeLabel is the label ACME DNS-01 puts in front of the validated name.
	challengeLabel = "_acme-challenge"
	// apiLabel is the API host's name in the zone, answered by GeoIP when `api_address` is set.
	apiLabel = "api"
	// maxChain bounds how many in-zone CNAMEs one answer follows.
	maxChain = 8
)

// answer fills m for a query for qname (the question's name in lower case) inside zone and
// says which kind of answer it is. CNAMEs are followed inside the zone; the rcode and
// authority section then describe the last name.
func (r *Registry) answer(view *etcdstore.View, zi int, qname string, state request.Request, rep *reply) string {
	m := &rep.Msg
	zone := r.cfg.Zones[zi]
	qtype := state.QType()
	// Owner names echo the question's case (0x20 randomisation relies on it).
	owner := state.QName()
	for range maxChain {
		rrs, cname, exists := r.node(view, zi, qname, owner, qtype, state, rep)
		if !exists {
			return r.negative(view, zone, m, dns.RcodeNameError)
		}
		if cname == nil {
			if len(rrs) == 0 && qtype == dns.TypeANY {
				rrs = []dns.RR{&dns.HINFO{Hdr: hdr(owner, dns.TypeHINFO, r.cfg.TTL), Cpu: "RFC8482"}}
			}
			if len(rrs) == 0 {
				return r.negative(view, zone, m, dns.RcodeSuccess)
			}
			if m.Answer == nil {
				// Answers may live in the reply or be shared, and are clipped: whoever appends copies.
				m.Answer = rrs
			} else {
				m.Answer = append(m.Answer, rrs...)
			}
			if qtype == dns.TypeNS && qname == zone {
				r.glue(m)
			}
			return resultAnswer
		}
		m.Answer = append(m.Answer, cname)
		owner = cname.(*dns.CNAME).Target
		qname = strings.ToLower(owner)
		if !inZone(qname, zone) {
			break
		}
	}
	return resultAnswer
}

// node returns the records of qtype at qname (owner is qname in the question's case), or the
// CNAME there when qname has one and qtype is not CNAME, and whether qname exists at all.
// The answer of a registered name may be built into rep (once per reply: it ends a chain).
func (r *Registry) node(view *etcdstore.View, zi int, qname, owner string, qtype uint16, state request.Request, rep *reply) (rrs []dns.RR, cname dns.RR, exists bool) {
	zone := r.cfg.Zones[zi]
	if s, ok := r.cfg.Static[qname]; ok {
		if c := s[dns.TypeCNAME]; len(c) > 0 && qtype != dns.TypeCNAME && qtype != dns.TypeANY {
			return nil, withOwner(c[0], owner), true
		}
		if qname == zone {
			rrs = r.apex(view, zone, owner, qtype)
		}
		if len(rrs) == 0 {
			rrs = rrsetOf(s, owner, qtype)
		}
		return rrs, nil, true
	}
	if r.cfg.ENTs[qname] {
		return nil, nil, true
	}
	rel := strings.TrimSuffix(qname, "."+zone)
	if rel == apiLabel && len(r.cfg.APIHosts) > 0 {
		return addressRRs(owner, qtype, r.apiAddresses(state), r.cfg.AddressTTL), nil, true
	}
	label, parent, deeper := strings.Cut(rel, ".")
	if !deeper {
		d, ok := view.Lookup(label)
		if !ok || r.hidden(d) {
			return nil, nil, false
		}
		var buf [2]netip.Addr
		addrs := r.addresses(d, buf[:0])
		if qtype == dns.TypeA || qtype == dns.TypeAAAA {
			return rep.address(owner, qtype, addrs, r.cfg.AddressTTL), nil, true
		}
		rrs = addressRRs(qname, qtype, addrs, r.cfg.AddressTTL)
		if len(rrs) == 0 && len(r.cfg.NameRecords) > 0 {
			rrs = rrsetOf(r.cfg.NameRecords, qname, qtype)
		}
		return named(rrs, qname, owner), nil, true
	}
	if label == challengeLabel && strings.IndexByte(parent, '.') < 0 {
		d, ok := view.Lookup(parent)
		if !ok || r.hidden(d) {
			return nil, nil, false
		}
		// The challenge name exists as long as its name does, with or without values: an
		// NXDOMAIN would be cached for every type, and ACME clients look up a CNAME there
		// before they set the value.
		if qtype != dns.TypeTXT && qtype != dns.TypeANY {
			return nil, nil, true
		}
		return rep.challenges(owner, d, time.Now(), r.cfg.ChallengeExpiry, r.cfg.ChallengeTTL), nil, true
	}
	if q, ok := parseKite(rel, strings.TrimSuffix(zone, ".")); ok {
		// Every query of this shape is answered, so that a frontend never fails open.
		if qtype == dns.TypeA || qtype == dns.TypeANY {
			verdict := netip.MustParseAddr(kiteVerdict(view, q, time.Now()))
			rrs = addressRRs(owner, dns.TypeA, []netip.Addr{verdict}, 0)
		}
		return rrs, nil, true
	}
	return nil, nil, false
}

// apex answers the zone's own SOA and NS (glue is added by answer); other types come from
// `record`. Owner is the zone's name as asked.
func (r *Registry) apex(view *etcdstore.View, zone, owner string, qtype uint16) []dns.RR {
	switch qtype {
	case dns.TypeSOA, dns.TypeANY:
		return []dns.RR{r.soa(view.Serial(), owner, r.cfg.TTL)}
	case dns.TypeNS:
		rrs := make([]dns.RR, len(r.cfg.NS))
		for i, ns := range r.cfg.NS {
			rrs[i] = &dns.NS{Hdr: hdr(owner, dns.TypeNS, r.cfg.TTL), Ns: ns.Name}
		}
		return rrs
	}
	return nil
}

// glue adds the NS hosts' addresses to the additional section of an NS answer.
func (r *Registry) glue(m *dns.Msg) {
	for _, ns := range r.cfg.NS {
		m.Extra = append(m.Extra, addressRRs(ns.Name, dns.TypeA, ns.Addrs, r.cfg.TTL)...)
		m.Extra = append(m.Extra, addressRRs(ns.Name, dns.TypeAAAA, ns.Addrs, r.cfg.TTL)...)
	}
}

// negative fills the authority section with the SOA, its TTL the negative caching time of
// RFC 2308: min(SOA TTL, SOA minimum).
func (r *Registry) negative(view *etcdstore.View, zone string, m *dns.Msg, rcode int) string {
	m.Rcode = rcode
	m.Ns = r.negativeSOA(view, zone)
	if rcode == dns.RcodeNameError {
		return resultNXDomain
	}
	return resultNoData
}

// negativeSOA is the authority section of negative answers, built once per zone and serial.
func (r *Registry) negativeSOA(view *etcdstore.View, zone string) []dns.RR {
	serial := view.Serial()
	if c := r.negSOA.Load(); c != nil && c.serial == serial && c.zone == zone {
		return c.ns
	}
	c := &soaCache{serial: serial, zone: zone, ns: []dns.RR{r.soa(serial, zone, min(r.cfg.TTL, r.cfg.SOA.Minimum))}}
	r.negSOA.Store(c)
	return c.ns
}

// soaCache is the last negative authority section built, shared (read-only) by replies.
type soaCache struct {
	serial uint32
	zone   string
	ns     []dns.RR
}

// soa is the zone's SOA record with serial (the view's: etcdstore's serial.go).
func (r *Registry) soa(serial uint32, zone string, ttl uint32) dns.RR {
	s := r.cfg.SOA
	return &dns.SOA{
		Hdr: hdr(zone, dns.TypeSOA, ttl), Ns: s.Mname, Mbox: s.Rname,
		Serial: serial, Refresh: s.Refresh, Retry: s.Retry, Expire: s.Expire, Minttl: s.Minimum,
	}
}

// addresses are what a registered name resolves to: its tunnel's in tunnel mode, the
// gateway's own in dynamic-DNS mode (appended to buf, which has room for both families).
func (r *Registry) addresses(d *etcdstore.Domain, buf []netip.Addr) []netip.Addr {
	if d.Mode == etcdstore.ModeDynamic {
		for _, a := range [...]netip.Addr{d.IPv4, d.IPv6} {
			if a.IsValid() {
				buf = append(buf, a)
			}
		}
		return buf
	}
	return byContinent(r.cfg.Tunnels, d.Continent)
}

// apiAddresses picks the API host's addresses by the continent of the client: the EDNS Client
// Subnet address when the resolver sent one, else the resolver's own address.
func (r *Registry) apiAddresses(state request.Request) []netip.Addr {
	geo := r.geo.Load()
	if geo == nil {
		return r.cfg.APIHosts[""]
	}
	addr, _ := netip.ParseAddr(state.IP())
	if opt := state.Req.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if ecs, ok := o.(*dns.EDNS0_SUBNET); ok && ecs.SourceNetmask > 0 {
				if a, ok := netip.AddrFromSlice(ecs.Address); ok {
					addr = a.Unmap()
				}
			}
		}
	}
	return byContinent(r.cfg.APIHosts, geo.Continent(addr))
}

func byContinent(m map[string][]netip.Addr, continent string) []netip.Addr {
	if a, ok := m[continent]; ok && continent != "" {
		return a
	}
	return m[""]
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

// named returns rrs, owned by the lower-case qname, named owner instead when the question
// used another case: copies then, the shared records otherwise.
func named(rrs []dns.RR, qname, owner string) []dns.RR {
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
