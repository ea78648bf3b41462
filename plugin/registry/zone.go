package registry

import (
	"fmt"
	"slices"
	"strings"

	"github.com/coredns/coredns/plugin"
	"github.com/miekg/dns"

	"github.com/regdns/regdns/api"
)

// Zone is what the zone holds besides its registered names, built from a Config's `soa`, `ns`,
// `record` and `name_record` lines.
type Zone struct {
	// Static holds the zone's own records by owner (lower case, fully qualified) and type: the
	// apex, the NS hosts' addresses and the `record` lines.
	Static map[string]map[uint16][]dns.RR
	// ENTs are the empty non-terminals between the static names and the apex.
	ENTs map[string]bool
	// NameRecords are the `name_record` records by type, owner to be filled in.
	NameRecords map[uint16][]dns.RR
	// Owned are the labels right under the apex that static names take: no gateway may
	// register a name over the zone's own.
	Owned []string
}

// NewZone builds the zone's own content from cfg, checking the records of its lines.
func NewZone(cfg Config) (*Zone, error) {
	z := &Zone{Static: map[string]map[uint16][]dns.RR{}, ENTs: map[string]bool{}, NameRecords: map[uint16][]dns.RR{}}
	for _, zone := range cfg.Zones {
		if err := z.addRecords(cfg, zone); err != nil {
			return nil, err
		}
		z.addNameServers(cfg, zone)
	}
	if err := z.index(cfg.Zones); err != nil {
		return nil, err
	}
	for _, line := range cfg.NameRecordLines {
		rr, err := parseRR("@ "+line, cfg.Zones[0], cfg.AddressTTL)
		if err != nil {
			return nil, fmt.Errorf("name_record %s: %v", line, err)
		}
		switch t := rr.Header().Rrtype; t {
		case dns.TypeCNAME, dns.TypeA, dns.TypeAAAA, dns.TypeSOA, dns.TypeNS:
			return nil, fmt.Errorf("name_record %s: a registered name's %s records are not static", line, dns.TypeToString[t])
		default:
			z.NameRecords[t] = append(z.NameRecords[t], rr)
		}
	}
	return z, nil
}

// APIConfig is the API's configuration: the Corefile's, with the labels z owns reserved.
func (cfg Config) APIConfig(z *Zone) api.Config {
	c := cfg.API
	c.MaxConcurrent = cfg.APIMaxConcurrent
	c.Reserved = append(slices.Clip(cfg.API.Reserved), z.Owned...)
	return c
}

// add files rr under its owner, lowered.
func (z *Zone) add(rr dns.RR) {
	name := strings.ToLower(rr.Header().Name)
	rr.Header().Name = name
	if z.Static[name] == nil {
		z.Static[name] = map[uint16][]dns.RR{}
	}
	t := rr.Header().Rrtype
	z.Static[name][t] = append(z.Static[name][t], rr)
}

// addRecords adds the `record` lines, relative to zone, and the apex itself.
func (z *Zone) addRecords(cfg Config, zone string) error {
	z.Static[zone] = map[uint16][]dns.RR{}
	for _, line := range cfg.Records {
		rr, err := parseRR(line, zone, cfg.TTL)
		if err != nil {
			return fmt.Errorf("record %s: %v", line, err)
		}
		if !dns.IsSubDomain(zone, strings.ToLower(rr.Header().Name)) {
			return fmt.Errorf("record %s: %s is outside the zone %s", line, rr.Header().Name, zone)
		}
		switch rr.Header().Rrtype {
		case dns.TypeSOA, dns.TypeNS:
			return fmt.Errorf("record %s: the SOA and NS records come from the soa and ns properties", line)
		}
		z.add(rr)
	}
	return nil
}

// addNameServers adds the addresses of the name servers inside zone; such a name exists
// even without an address.
func (z *Zone) addNameServers(cfg Config, zone string) {
	for _, ns := range cfg.NS {
		if !dns.IsSubDomain(zone, ns.Name) {
			continue
		}
		for _, rr := range addressRRs(ns.Name, dns.TypeA, ns.Addrs, cfg.TTL) {
			z.add(rr)
		}
		for _, rr := range addressRRs(ns.Name, dns.TypeAAAA, ns.Addrs, cfg.TTL) {
			z.add(rr)
		}
		if _, ok := z.Static[ns.Name]; !ok {
			z.Static[ns.Name] = map[uint16][]dns.RR{}
		}
	}
}

// index checks the CNAMEs of the static names and fills ENTs and Owned from them.
func (z *Zone) index(zones []string) error {
	for name, types := range z.Static {
		if c := types[dns.TypeCNAME]; len(c) > 0 && (len(types) > 1 || len(c) > 1) {
			return fmt.Errorf("%s has a CNAME and other records, or several CNAMEs", name)
		}
		zone := plugin.Zones(zones).Matches(name)
		if name == zone {
			if len(types[dns.TypeCNAME]) > 0 {
				return fmt.Errorf("the zone apex %s cannot be a CNAME", name)
			}
			continue
		}
		// Every name between a static name and the apex exists.
		rel := strings.TrimSuffix(name, "."+zone)
		z.Owned = append(z.Owned, rel[strings.LastIndexByte(rel, '.')+1:])
		for n := name; ; {
			n = n[strings.IndexByte(n, '.')+1:]
			if len(n) <= len(zone) {
				break
			}
			if _, ok := z.Static[n]; !ok {
				z.ENTs[n] = true
			}
		}
	}
	return nil
}

// zoneLine rebuilds a zone-file line from Corefile tokens, quoting the ones the Corefile
// lexer unquoted (a TXT value with spaces stays one string).
func zoneLine(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\";()") {
			a = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(a) + `"`
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// parseRR parses one zone-file line relative to origin, with ttl unless the line gives one.
func parseRR(line, origin string, ttl uint32) (dns.RR, error) {
	zp := dns.NewZoneParser(strings.NewReader(fmt.Sprintf("$TTL %d\n%s\n", ttl, line)), origin, "")
	rr, ok := zp.Next()
	if err := zp.Err(); err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("no record")
	}
	if _, more := zp.Next(); more {
		return nil, fmt.Errorf("more than one record")
	}
	return rr, nil
}
