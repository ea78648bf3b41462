package registry

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// parseZoneProperty reads the properties of what the zone answers: its SOA and NS, TTLs,
// the addresses names resolve to, static records, expiry, GeoIP and fallthrough.
func parseZoneProperty(cfg *Config, prop string, args []string) error {
	switch prop {
	case "soa":
		return parseSOA(&cfg.SOA, args)
	case "ns":
		if err := argCount(args, 1, -1); err != nil {
			return err
		}
		ns := NameServer{Name: dns.Fqdn(strings.ToLower(args[0]))}
		var err error
		if ns.Addrs, err = parseAddrs(args[1:]); err == nil {
			cfg.NS = append(cfg.NS, ns)
		}
		return err
	case "ttl", "address_ttl", "challenge_ttl":
		ttl := map[string]*uint32{"ttl": &cfg.TTL, "address_ttl": &cfg.AddressTTL, "challenge_ttl": &cfg.ChallengeTTL}[prop]
		return parseOne(args, func(s string) (err error) { *ttl, err = parseSeconds(s); return err })
	case "challenge_expiry":
		return parseOne(args, func(s string) (err error) { cfg.ChallengeExpiry, err = parseDuration(s); return err })
	case "tunnel", "api_address":
		if err := argCount(args, 1, -1); err != nil {
			return err
		}
		return addByContinent(map[string]map[string][]netip.Addr{"tunnel": cfg.Tunnels, "api_address": cfg.APIHosts}[prop], args)
	case "record":
		if err := argCount(args, 3, -1); err != nil {
			return err
		}
		cfg.Records = append(cfg.Records, zoneLine(args))
	case "name_record":
		if err := argCount(args, 2, -1); err != nil {
			return err
		}
		cfg.NameRecordLines = append(cfg.NameRecordLines, zoneLine(args))
	case "expire":
		if err := argCount(args, 2, 2); err != nil {
			return err
		}
		var err error
		if cfg.Expire, err = parseDuration(args[0]); err == nil {
			cfg.ExpireGrace, err = parseDuration(args[1])
		}
		return err
	case "geoip":
		return parseOne(args, func(s string) error { cfg.GeoIP = s; return nil })
	case "fallthrough":
		cfg.Fall.SetZonesFromArgs(args)
	default:
		return errOtherProperty
	}
	return nil
}

// parseSOA reads `soa MNAME RNAME [REFRESH RETRY EXPIRE MINIMUM]`.
func parseSOA(soa *SOA, args []string) error {
	if err := argCount(args, 2, 6); err != nil {
		return err
	}
	if len(args) != 2 && len(args) != 6 {
		return fmt.Errorf("soa takes MNAME RNAME or MNAME RNAME REFRESH RETRY EXPIRE MINIMUM")
	}
	soa.Mname, soa.Rname = dns.Fqdn(args[0]), dns.Fqdn(args[1])
	if len(args) == 6 {
		for i, p := range []*uint32{&soa.Refresh, &soa.Retry, &soa.Expire, &soa.Minimum} {
			var err error
			if *p, err = parseSeconds(args[2+i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// continents are the codes GeoIP databases give for continent.code.
var continents = map[string]bool{"AF": true, "AN": true, "AS": true, "EU": true, "NA": true, "OC": true, "SA": true}

// addByContinent adds the addresses of a `tunnel` or `api_address` line, [CONTINENT] ADDRESS...,
// to m under the continent code ("" without one).
func addByContinent(m map[string][]netip.Addr, args []string) error {
	continent := ""
	if continents[strings.ToUpper(args[0])] {
		continent, args = strings.ToUpper(args[0]), args[1:]
		if len(args) == 0 {
			return fmt.Errorf("%s without an address", continent)
		}
	}
	addrs, err := parseAddrs(args)
	if err == nil {
		m[continent] = append(m[continent], addrs...)
	}
	return err
}
