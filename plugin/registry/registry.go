// Package registry is a CoreDNS plugin authoritative for a gateway zone: it answers the names
// gateways register through its HTTP API, and their ACME challenges, from an etcd-fed view.
package registry

import (
	"context"
	"strings"
	"sync/atomic"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/transfer"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/regdns/regdns/api/geoip"
	"github.com/regdns/regdns/etcdstore"
)

// Registry is the plugin's handler.
type Registry struct {
	Next plugin.Handler
	cfg  Config
	zone *Zone

	// results are the response counters by zone index and result, resolved once.
	results []map[string]prometheus.Counter

	view   atomic.Pointer[etcdstore.View]
	negSOA atomic.Pointer[soaCache]
	geo    atomic.Pointer[geoip.DB]
	xfer   *transfer.Transfer // set when the server block has the transfer plugin
	rrl    *responseLimiter   // nil without response rate limiting
	run    *running
}

// New builds the handler for cfg (as parse made it) and its zone; it serves once started.
func New(cfg Config, zone *Zone) *Registry {
	r := &Registry{cfg: cfg, zone: zone, results: make([]map[string]prometheus.Counter, len(cfg.Zones)), rrl: newResponseLimiter(cfg.RRL)}
	for i, z := range cfg.Zones {
		r.results[i] = map[string]prometheus.Counter{}
		for _, res := range []string{resultAnswer, resultNoData, resultNXDomain} {
			r.results[i][res] = responses.WithLabelValues(z, res)
		}
	}
	return r
}

// responseCounter is the response counter of zone number zi and result, looked up without allocating.
func (r *Registry) responseCounter(zi int, result string) prometheus.Counter {
	return r.results[zi][result]
}

// Name implements plugin.Handler.
func (r *Registry) Name() string { return name }

// Ready implements ready.Readiness: ready once the view holds the whole zone.
func (r *Registry) Ready() bool {
	v := r.view.Load()
	return v != nil && v.Loaded()
}

// ServeDNS implements plugin.Handler.
func (r *Registry) ServeDNS(ctx context.Context, w dns.ResponseWriter, req *dns.Msg) (int, error) {
	// The reply is taken first: the question's name is lowered into it.
	recycle := packsAtOnce(w)
	rep := newReply(recycle)
	defer rep.release(recycle)
	state := request.Request{W: w, Req: req}
	qname := rep.lower(req.Question[0].Name)
	zi := r.zoneIndex(qname)
	if zi < 0 && r.Next != nil {
		return plugin.NextOrFailure(r.Name(), r.Next, ctx, w, req)
	}
	if act := r.rrl.check(w); act != rrlPass {
		return r.answerLimited(w, req, rep, act)
	}
	if zi < 0 {
		return r.refuse(w, req, "", dns.RcodeRefused)
	}
	zone := r.cfg.Zones[zi]
	if req.Opcode != dns.OpcodeQuery {
		// NOTIFY and the rest are never answered as if they were queries. (CoreDNS's server
		// already rejects UPDATE with NOTIMP before any plugin sees it.)
		return r.refuse(w, req, zone, dns.RcodeNotImplemented)
	}
	if optCount(req) > 1 {
		// RFC 6891 6.1.1: more than one OPT record is a format error.
		return r.refuse(w, req, zone, dns.RcodeFormatError)
	}
	view := r.view.Load()
	if view == nil || !view.Loaded() {
		responses.WithLabelValues(zone, "servfail").Inc()
		return dns.RcodeServerFailure, nil
	}
	if qt := state.QType(); qt == dns.TypeAXFR || qt == dns.TypeIXFR {
		// The transfer plugin, in front of this one, serves the transfers it allows and passes
		// on the rest: those of a zone it has no block for (or no transfer block at all). A
		// transfer type is not a record type to answer NODATA for.
		return r.refuse(w, req, zone, dns.RcodeRefused)
	}

	// The reply shares the request's question instead of copying it (SetReply would).
	m := &rep.Msg
	m.Question = req.Question
	m.Id, m.Response, m.Opcode, m.Authoritative = req.Id, true, req.Opcode, true
	m.RecursionDesired, m.CheckingDisabled = req.RecursionDesired, req.CheckingDisabled
	q := query{view: view, zone: zone, qname: qname, owner: state.QName(), qtype: state.QType(), state: state, rep: rep}
	result := r.answer(&q)
	if result == resultNXDomain && r.cfg.Fall.Through(qname) {
		return plugin.NextOrFailure(r.Name(), r.Next, ctx, w, req)
	}
	r.responseCounter(zi, result).Inc()
	w.WriteMsg(m)
	return dns.RcodeSuccess, nil
}

// zoneIndex is the index in r.cfg.Zones of the most specific zone qname is in, or -1.
func (r *Registry) zoneIndex(qname string) int {
	best := -1
	for i, z := range r.cfg.Zones {
		if inZone(qname, z) && (best < 0 || len(z) > len(r.cfg.Zones[best])) {
			best = i
		}
	}
	return best
}

// inZone reports whether qname is zone or below it; both lower case and fully qualified.
// (dns.IsSubDomain does the same, allocating.)
func inZone(qname, zone string) bool {
	if zone == "." || qname == zone {
		return true
	}
	n := len(qname) - len(zone)
	return n > 0 && qname[n-1] == '.' && qname[n:] == zone
}

// belowZone is qname without "."+zone, as strings.TrimSuffix(qname, "."+zone), without
// building that suffix: Go builds a concatenation of over 32 bytes on the heap, so a long zone
// would cost an allocation per query.
func belowZone(qname, zone string) string {
	if n := len(qname) - len(zone) - 1; n >= 0 && qname[n] == '.' && qname[n+1:] == zone {
		return qname[:n]
	}
	return qname
}

// refuse answers with rcode and no records, counting it.
func (r *Registry) refuse(w dns.ResponseWriter, req *dns.Msg, zone string, rcode int) (int, error) {
	m := new(dns.Msg)
	m.SetRcode(req, rcode)
	responses.WithLabelValues(zone, strings.ToLower(dns.RcodeToString[rcode])).Inc()
	w.WriteMsg(m)
	return dns.RcodeSuccess, nil
}

func optCount(req *dns.Msg) int {
	n := 0
	for _, rr := range req.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			n++
		}
	}
	return n
}
