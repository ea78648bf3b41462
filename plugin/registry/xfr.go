package registry

import (
	"context"
	"slices"
	"time"

	"github.com/coredns/coredns/plugin/transfer"
	"github.com/miekg/dns"

	"github.com/regdns/regdns/etcdstore"
)

// Transfer implements transfer.Transferer: AXFR of the whole zone, static records and every
// registered name as one consistent cut of the view. PageKite authentication answers are
// computed per query and are not part of the zone. An IXFR from the current serial gets the
// SOA alone (the fallback of RFC 1995).
func (r *Registry) Transfer(zone string, serial uint32) (<-chan []dns.RR, error) {
	if !slices.Contains(r.cfg.Zones, zone) {
		return nil, transfer.ErrNotAuthoritative
	}
	view := r.view.Load()
	if view == nil || !view.Loaded() {
		return nil, transfer.ErrNotAuthoritative
	}
	current, domains := view.Snapshot()
	soa := r.soa(current, zone, r.cfg.TTL)

	ch := make(chan []dns.RR)
	go func() {
		defer close(ch)
		if serial != 0 && serial == current {
			ch <- []dns.RR{soa}
			return
		}
		apex := []dns.RR{soa}
		apex = append(apex, r.apex(view, zone, zone, dns.TypeNS)...)
		ch <- apex
		for name, types := range r.zone.Static {
			if !dns.IsSubDomain(zone, name) {
				continue
			}
			for _, rrs := range types {
				ch <- rrs
			}
		}
		if len(r.cfg.APIHosts) > 0 {
			api := apiLabel + "." + zone
			ch <- addressRRs(api, dns.TypeA, r.cfg.APIHosts[""], r.cfg.AddressTTL)
			ch <- addressRRs(api, dns.TypeAAAA, r.cfg.APIHosts[""], r.cfg.AddressTTL)
		}
		now := time.Now()
		for _, d := range domains {
			if r.hidden(d) {
				continue
			}
			owner := d.Name + "." + zone
			var rrs []dns.RR
			addrs := r.addresses(d, nil)
			for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
				rrs = append(rrs, addressRRs(owner, t, addrs, r.cfg.AddressTTL)...)
			}
			for _, set := range r.zone.NameRecords {
				for _, rr := range set {
					rrs = append(rrs, withOwner(rr, owner))
				}
			}
			if values := d.LiveChallenges(now, r.cfg.ChallengeExpiry); len(values) > 0 {
				rrs = append(rrs, txtRRs(challengeLabel+"."+owner, values, r.cfg.ChallengeTTL)...)
			}
			if len(rrs) > 0 {
				ch <- rrs
			}
		}
		ch <- []dns.RR{soa}
	}()
	return ch, nil
}

// notifyPause coalesces changes: secondaries get at most one NOTIFY per zone per pause.
const notifyPause = time.Second

// notifyChanges sends a NOTIFY for every zone to the transfer plugin's secondaries after each
// change of the view, until ctx ends.
func (r *Registry) notifyChanges(ctx context.Context, view *etcdstore.View) {
	rev := view.Revision()
	for {
		if err := view.WaitRevision(ctx, rev+1); err != nil {
			return
		}
		select {
		case <-time.After(notifyPause):
		case <-ctx.Done():
			return
		}
		rev = view.Revision()
		for _, zone := range r.cfg.Zones {
			if err := r.xfer.Notify(zone); err != nil {
				log.Warningf("notify for %s: %v", zone, err)
			}
		}
	}
}
