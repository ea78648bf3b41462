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

// query is one question being answered: where it was asked, the name being looked up (which
// moves along in-zone CNAMEs), and the reply being built.
type query struct {
	view  *etcdstore.View
	zone  string // the zone, lower case
	qname string // the name looked up, lower case
	owner string // qname in the question's case: owner names echo it (0x20 randomisation relies on it)
	qtype uint16
	state request.Request
	rep   *reply
}

// answer fills q's reply and says which kind of answer it is. CNAMEs are followed inside the
// zone; the rcode and authority section then describe the last name.
func (r *Registry) answer(q *query) string {
	m := &q.rep.Msg
	for range maxChain {
		rrs, cname, exists := r.lookupName(q)
		if !exists {
			return r.negative(q, dns.RcodeNameError)
		}
		if cname == nil {
			if len(rrs) == 0 && q.qtype == dns.TypeANY {
				rrs = []dns.RR{&dns.HINFO{Hdr: hdr(q.owner, dns.TypeHINFO, r.cfg.TTL), Cpu: "RFC8482"}}
			}
			if len(rrs) == 0 {
				return r.negative(q, dns.RcodeSuccess)
			}
			if m.Answer == nil {
				// Answers may live in the reply or be shared, and are clipped: whoever appends copies.
				m.Answer = rrs
			} else {
				m.Answer = append(m.Answer, rrs...)
			}
			if q.qtype == dns.TypeNS && q.qname == q.zone {
				r.glue(m)
			}
			return resultAnswer
		}
		m.Answer = append(m.Answer, cname)
		q.owner = cname.(*dns.CNAME).Target
		q.qname = strings.ToLower(q.owner)
		if !inZone(q.qname, q.zone) {
			break
		}
	}
	return resultAnswer
}

// lookupName returns the records of q's type at its name, or the CNAME there when the name has one
// and the type is not CNAME, and whether the name exists at all. The answer of a registered
// name may be built into q's reply (once per reply: it ends a chain).
func (r *Registry) lookupName(q *query) (rrs []dns.RR, cname dns.RR, exists bool) {
	if s, ok := r.zone.Static[q.qname]; ok {
		return r.lookupStatic(q, s)
	}
	if r.zone.ENTs[q.qname] {
		return nil, nil, true
	}
	rel := belowZone(q.qname, q.zone)
	if rel == apiLabel && len(r.cfg.APIHosts) > 0 {
		return addressRRs(q.owner, q.qtype, r.apiAddresses(q.state), r.cfg.AddressTTL), nil, true
	}
	label, parent, deeper := strings.Cut(rel, ".")
	if !deeper {
		rrs, exists = r.lookupRegistered(q, label)
		return rrs, nil, exists
	}
	if label == challengeLabel && strings.IndexByte(parent, '.') < 0 {
		rrs, exists = r.lookupChallenge(q, parent)
		return rrs, nil, exists
	}
	if k, ok := parseKite(rel, strings.TrimSuffix(q.zone, ".")); ok {
		// Every query of this shape is answered, so that a frontend never fails open.
		if q.qtype == dns.TypeA || q.qtype == dns.TypeANY {
			verdict := netip.MustParseAddr(kiteVerdict(q.view, k, time.Now()))
			rrs = addressRRs(q.owner, dns.TypeA, []netip.Addr{verdict}, 0)
		}
		return rrs, nil, true
	}
	return nil, nil, false
}

// lookupStatic answers from the node s of the zone's own records (`record`, `ns`, the apex).
func (r *Registry) lookupStatic(q *query, s map[uint16][]dns.RR) (rrs []dns.RR, cname dns.RR, exists bool) {
	if c := s[dns.TypeCNAME]; len(c) > 0 && q.qtype != dns.TypeCNAME && q.qtype != dns.TypeANY {
		return nil, withOwner(c[0], q.owner), true
	}
	if q.qname == q.zone {
		rrs = r.apex(q.view, q.zone, q.owner, q.qtype)
	}
	if len(rrs) == 0 {
		rrs = rrsetOf(s, q.owner, q.qtype)
	}
	return rrs, nil, true
}

// lookupRegistered answers for label, a registered name if the view has it (and it is not
// hidden): its addresses, and the `name_record` records every name carries.
func (r *Registry) lookupRegistered(q *query, label string) (rrs []dns.RR, exists bool) {
	d, ok := q.view.Lookup(label)
	if !ok || r.hidden(&d) {
		return nil, false
	}
	var buf [2]netip.Addr
	addrs := r.addresses(&d, buf[:0])
	if q.qtype == dns.TypeA || q.qtype == dns.TypeAAAA {
		return q.rep.address(q.owner, q.qtype, addrs, r.cfg.AddressTTL), true
	}
	rrs = addressRRs(q.qname, q.qtype, addrs, r.cfg.AddressTTL)
	if len(rrs) == 0 && len(r.zone.NameRecords) > 0 {
		rrs = rrsetOf(r.zone.NameRecords, q.qname, q.qtype)
	}
	return inQuestionCase(rrs, q.qname, q.owner), true
}

// lookupChallenge answers for the challenge name of the registered name parent. It exists as
// long as its name does, with or without values: an NXDOMAIN would be cached for every type,
// and ACME clients look up a CNAME there before they set the value.
func (r *Registry) lookupChallenge(q *query, parent string) (rrs []dns.RR, exists bool) {
	d, ok := q.view.Lookup(parent)
	if !ok || r.hidden(&d) {
		return nil, false
	}
	if q.qtype != dns.TypeTXT && q.qtype != dns.TypeANY {
		return nil, true
	}
	return q.rep.challenges(q.owner, &d, time.Now(), r.cfg.ChallengeExpiry, r.cfg.ChallengeTTL), true
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
func (r *Registry) negative(q *query, rcode int) string {
	m := &q.rep.Msg
	m.Rcode = rcode
	m.Ns = r.negativeSOA(q.view, q.zone)
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

// addresses are what a registered name resolves to: its tunnel's in tunnel mode, the
// gateway's own in dynamic-DNS mode (appended to buf, which has room for both families).
func (r *Registry) addresses(d *etcdstore.Record, buf []netip.Addr) []netip.Addr {
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
