// Package registry is a CoreDNS plugin authoritative for a gateway zone: it answers the names
// gateways register through its HTTP API, and their ACME challenges, from an etcd-fed view.
package registry

import (
	"context"
	"strings"
	"sync/atomic"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"

	"github.com/regdns/regdns/api"
	"github.com/regdns/regdns/etcdstore"
)

// Registry is the plugin's handler.
type Registry struct {
	Next plugin.Handler
	cfg  Config

	view atomic.Pointer[etcdstore.View]
	geo  atomic.Pointer[api.GeoIP]
	run  *running
}

// New builds the handler for cfg (as parse made it); it serves once started.
func New(cfg Config) *Registry { return &Registry{cfg: cfg} }

// Name implements plugin.Handler.
func (r *Registry) Name() string { return name }

// Ready implements ready.Readiness: ready once the view holds the whole zone.
func (r *Registry) Ready() bool {
	v := r.view.Load()
	return v != nil && v.Loaded()
}

// ServeDNS implements plugin.Handler.
func (r *Registry) ServeDNS(ctx context.Context, w dns.ResponseWriter, req *dns.Msg) (int, error) {
	state := request.Request{W: w, Req: req}
	qname := state.Name()
	zone := plugin.Zones(r.cfg.Zones).Matches(qname)
	if zone == "" {
		if r.Next == nil {
			return r.refuse(w, req, "", dns.RcodeRefused)
		}
		return plugin.NextOrFailure(r.Name(), r.Next, ctx, w, req)
	}
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

	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	result := r.answer(view, zone, state, m)
	if result == resultNXDomain && r.cfg.Fall.Through(qname) {
		return plugin.NextOrFailure(r.Name(), r.Next, ctx, w, req)
	}
	responses.WithLabelValues(zone, result).Inc()
	w.WriteMsg(m)
	return dns.RcodeSuccess, nil
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
