package registry

import (
	"slices"
	"time"

	"github.com/miekg/dns"

	"github.com/regdns/regdns/etcdstore"
)

// compiled are the answers of one registered name in one zone, built once per change of the
// record (and per configuration) instead of once per query. Owner names are lower case; a
// question in another case gets copies named as asked.
type compiled struct {
	a, aaaa []dns.RR
	txt     []dns.RR
	// txtUntil is when the oldest challenge value in txt expires; after it, txt is rebuilt per query.
	txtUntil time.Time
}

// answers returns the compiled answers of d in zone number zi, building them on first use.
func (r *Registry) answers(d *etcdstore.Domain, zi int) *compiled {
	if all, ok := d.Memo(r).([]compiled); ok {
		return &all[zi]
	}
	all := make([]compiled, len(r.cfg.Zones))
	addrs := r.addresses(d)
	for i, zone := range r.cfg.Zones {
		owner := d.Name + "." + zone
		c := &all[i]
		c.a = slices.Clip(addressRRs(owner, dns.TypeA, addrs, r.cfg.AddressTTL))
		c.aaaa = slices.Clip(addressRRs(owner, dns.TypeAAAA, addrs, r.cfg.AddressTTL))
		if len(d.Challenges) > 0 {
			c.txt = slices.Clip(txtRRs(challengeLabel+"."+owner, values(d.Challenges), r.cfg.ChallengeTTL))
			c.txtUntil = d.Challenges[len(d.Challenges)-1].Set.Add(r.cfg.ChallengeExpiry)
		}
	}
	d.Remember(r, all)
	return &all[zi]
}

func values(cs []etcdstore.Challenge) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Value
	}
	return out
}
