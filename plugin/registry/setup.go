package registry

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	clog "github.com/coredns/coredns/plugin/pkg/log"
	"github.com/coredns/coredns/plugin/transfer"
	"github.com/dustin/go-humanize"
	"github.com/miekg/dns"

	"github.com/regdns/regdns/api"
	"github.com/regdns/regdns/etcdstore"
)

const name = "registry"

var log = clog.NewWithPlugin(name)

func init() { plugin.Register(name, setup) }

func setup(c *caddy.Controller) error {
	cfg, err := parse(c)
	if err != nil {
		return plugin.Error(name, err)
	}
	if cfg.DNSTCPGuard {
		nofile, err := openFileLimit()
		if err == nil {
			err = guardDNSTCP(dnsserver.GetConfig(c), cfg.dnsTCPThreshold(nofile))
		}
		if err != nil {
			return plugin.Error(name, err)
		}
	}
	r := New(cfg)
	c.OnStartup(func() error {
		// Secondaries configured in the transfer plugin get a NOTIFY when the zone changes.
		if t, ok := dnsserver.GetConfig(c).Handler("transfer").(*transfer.Transfer); ok {
			r.xfer = t
		}
		return nil
	})
	c.OnStartup(r.start)
	c.OnRestartFailed(r.restartFailed)
	c.OnShutdown(r.stop)
	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler {
		r.Next = next
		return r
	})
	return nil
}

// continents are the codes GeoIP databases give for continent.code.
var continents = map[string]bool{"AF": true, "AN": true, "AS": true, "EU": true, "NA": true, "OC": true, "SA": true}

// templateFields maps the `template` property's kinds to the API's template fields.
var templateFields = map[string]func(*api.Templates) *string{
	"verify_subject":  func(t *api.Templates) *string { return &t.VerifySubject },
	"verify_body":     func(t *api.Templates) *string { return &t.VerifyBody },
	"reclaim_subject": func(t *api.Templates) *string { return &t.ReclaimSubject },
	"reclaim_body":    func(t *api.Templates) *string { return &t.ReclaimBody },
	"success_page":    func(t *api.Templates) *string { return &t.SuccessPage },
	"error_page":      func(t *api.Templates) *string { return &t.ErrorPage },
}

func parse(c *caddy.Controller) (Config, error) {
	cfg := defaultConfig()
	seen := false
	for c.Next() {
		if seen {
			return cfg, plugin.ErrOnce
		}
		seen = true
		cfg.Zones = plugin.OriginsFromArgsOrServerBlock(c.RemainingArgs(), c.ServerBlockKeys)
		for c.NextBlock() {
			if err := parseProperty(c, &cfg); err != nil {
				return cfg, err
			}
		}
	}
	return cfg, cfg.finish()
}

func parseProperty(c *caddy.Controller, cfg *Config) error {
	prop := c.Val()
	args := c.RemainingArgs()
	need := func(min, max int) error {
		if len(args) < min || (max >= 0 && len(args) > max) {
			return c.ArgErr()
		}
		return nil
	}
	var err error
	switch prop {
	case "api":
		if err = need(1, 1); err == nil {
			_, _, err = net.SplitHostPort(args[0])
			cfg.APIAddr = args[0]
		}
	case "data":
		if err = need(1, 1); err == nil {
			cfg.DataDir = args[0]
		}
	case "etcd":
		if err = need(1, -1); err == nil {
			for _, e := range args {
				if _, perr := url.Parse(e); perr != nil || !strings.Contains(e, "://") {
					return c.Errf("etcd endpoint %q is not a URL like http://host:2379", e)
				}
			}
			cfg.Etcd.Endpoints = args
		}
	case "etcd_listen", "etcd_quota":
		err = parseEmbedded(c, prop, args, &cfg.Embedded)
	case "etcd_tls":
		if err = need(3, 3); err == nil {
			cfg.Etcd.CertFile, cfg.Etcd.KeyFile, cfg.Etcd.CAFile = args[0], args[1], args[2]
		}
	case "etcd_auth":
		if err = need(2, 2); err == nil {
			cfg.Etcd.Username, cfg.Etcd.Password = args[0], args[1]
		}
	case "etcd_prefix":
		if err = need(1, 1); err == nil {
			cfg.Etcd.Prefix = args[0]
		}
	case "etcd_timeout":
		if err = need(1, 1); err == nil {
			cfg.Etcd.Timeout, err = parseDuration(args[0])
		}
	case "soa":
		if err = need(2, 6); err == nil && len(args) != 2 && len(args) != 6 {
			err = c.Errf("soa takes MNAME RNAME or MNAME RNAME REFRESH RETRY EXPIRE MINIMUM")
		}
		if err == nil {
			cfg.SOA.Mname, cfg.SOA.Rname = dns.Fqdn(args[0]), dns.Fqdn(args[1])
			if len(args) == 6 {
				for i, p := range []*uint32{&cfg.SOA.Refresh, &cfg.SOA.Retry, &cfg.SOA.Expire, &cfg.SOA.Minimum} {
					if *p, err = parseSeconds(args[2+i]); err != nil {
						break
					}
				}
			}
		}
	case "ns":
		if err = need(1, -1); err == nil {
			ns := NameServer{Name: dns.Fqdn(strings.ToLower(args[0]))}
			if ns.Addrs, err = parseAddrs(args[1:]); err == nil {
				cfg.NS = append(cfg.NS, ns)
			}
		}
	case "ttl":
		if err = need(1, 1); err == nil {
			cfg.TTL, err = parseSeconds(args[0])
		}
	case "address_ttl":
		if err = need(1, 1); err == nil {
			cfg.AddressTTL, err = parseSeconds(args[0])
		}
	case "challenge_ttl":
		if err = need(1, 1); err == nil {
			cfg.ChallengeTTL, err = parseSeconds(args[0])
		}
	case "challenge_keep":
		if err = need(1, 1); err == nil {
			cfg.API.ChallengeKeep, err = strconv.Atoi(args[0])
			if err == nil && cfg.API.ChallengeKeep < 2 {
				err = fmt.Errorf("challenge_keep must be at least 2 (a name and its wildcard validate together)")
			}
		}
	case "challenge_expiry":
		if err = need(1, 1); err == nil {
			cfg.ChallengeExpiry, err = parseDuration(args[0])
		}
	case "tunnel":
		if err = need(1, -1); err == nil {
			err = addByContinent(cfg.Tunnels, args)
		}
	case "api_address":
		if err = need(1, -1); err == nil {
			err = addByContinent(cfg.APIHosts, args)
		}
	case "record":
		if err = need(3, -1); err == nil {
			cfg.Records = append(cfg.Records, zoneLine(args))
		}
	case "name_record":
		if err = need(2, -1); err == nil {
			cfg.NameRecordLines = append(cfg.NameRecordLines, zoneLine(args))
		}
	case "reserved":
		if err = need(1, -1); err == nil {
			for _, r := range args {
				cfg.API.Reserved = append(cfg.API.Reserved, strings.ToLower(r))
			}
		}
	case "trusted_proxy":
		if err = need(1, -1); err == nil {
			var ps []netip.Prefix
			ps, err = parsePrefixes(args)
			cfg.API.TrustedProxies = append(cfg.API.TrustedProxies, ps...)
		}
	case "rrl":
		if err = need(1, 5); err == nil {
			err = parseRRL(&cfg.RRL, args)
		}
	case "rrl_exempt":
		if err = need(1, -1); err == nil {
			err = parseRRLExempt(&cfg.RRL, args)
		}
	case "geoip":
		if err = need(1, 1); err == nil {
			cfg.GeoIP = args[0]
		}
	case "smtp":
		if err = need(1, 2); err == nil {
			if _, _, err = net.SplitHostPort(args[0]); err != nil {
				break
			}
			cfg.SMTP.Addr, cfg.SMTP.Security = args[0], "starttls"
			if len(args) == 2 {
				switch args[1] {
				case "starttls", "tls", "none":
					cfg.SMTP.Security = args[1]
				default:
					err = c.Errf("smtp security %q: want starttls, tls or none", args[1])
				}
			}
		}
	case "smtp_auth":
		if err = need(2, 2); err == nil {
			cfg.SMTP.Username, cfg.SMTP.Password = args[0], args[1]
		}
	case "mail_from":
		if err = need(1, 1); err == nil {
			cfg.SMTP.From = args[0]
		}
	case "verify_url":
		if err = need(1, 1); err == nil {
			u, perr := url.Parse(args[0])
			if perr != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return c.Errf("verify_url %q is not an http(s) URL", args[0])
			}
			cfg.API.VerifyURL = args[0]
		}
	case "verify_ttl":
		if err = need(1, 1); err == nil {
			cfg.API.VerifyTTL, err = parseDuration(args[0])
		}
	case "reclaim_ttl":
		if err = need(1, 1); err == nil {
			cfg.API.ReclaimTTL, err = parseDuration(args[0])
		}
	case "template":
		if err = need(2, 2); err == nil {
			field, ok := templateFields[args[0]]
			if !ok {
				return c.Errf("unknown template %q", args[0])
			}
			var b []byte
			if b, err = os.ReadFile(args[1]); err == nil {
				*field(&cfg.API.Templates) = string(b)
			}
		}
	case "allow_private_addresses":
		if err = need(0, 0); err == nil {
			cfg.API.AllowPrivateAddrs = true
		}
	case "client_limit", "mail_limit", "write_limit":
		if err = need(1, 2); err == nil {
			limit := map[string]*api.RateLimit{"client_limit": &cfg.API.ClientLimit, "mail_limit": &cfg.API.MailLimit, "write_limit": &cfg.API.WriteLimit}[prop]
			*limit, err = parseLimit(args)
		}
	case "expire":
		if err = need(2, 2); err == nil {
			if cfg.Expire, err = parseDuration(args[0]); err == nil {
				cfg.ExpireGrace, err = parseDuration(args[1])
			}
		}
	case "ping_granularity":
		if err = need(1, 1); err == nil {
			cfg.API.PingGranularity, err = parseDuration(args[0])
		}
	case "api_tls":
		if err = need(2, 2); err == nil {
			cfg.APICert, cfg.APIKey = args[0], args[1]
			_, err = tls.LoadX509KeyPair(args[0], args[1])
		}
	case "api_max_concurrent":
		if err = need(1, 1); err == nil {
			cfg.APIMaxConcurrent, err = strconv.Atoi(args[0])
			if err == nil && cfg.APIMaxConcurrent < 1 {
				err = fmt.Errorf("must be at least 1")
			}
		}
	case "dns_tcp_guard":
		if err = need(0, 0); err == nil {
			cfg.DNSTCPGuard = true
		}
	case "api_max_connections":
		if err = need(1, 2); err == nil {
			err = parseMaxConns(args, cfg)
		}
	case "audit":
		err = parseAudit(args, &cfg.API)
	case "fallthrough":
		cfg.Fall.SetZonesFromArgs(args)
	default:
		return c.Errf("unknown property '%s'", prop)
	}
	if err != nil {
		return c.Errf("%s: %v", prop, err)
	}
	return nil
}

// parseMaxConns reads `api_max_connections TOTAL|auto [PER_CLIENT]`.
func parseMaxConns(args []string, cfg *Config) error {
	counts := []*int{&cfg.APIMaxConns, &cfg.APIMaxConnsPerClient}
	for i, a := range args {
		if i == 0 && a == "auto" {
			cfg.APIMaxConns = 0
			continue
		}
		n, err := strconv.Atoi(a)
		if err != nil || n < 1 {
			return fmt.Errorf("%q is not a count of at least 1", a)
		}
		*counts[i] = n
	}
	return nil
}

// parseAudit reads `audit on|off`: the INFO line per API call that changes a name.
func parseAudit(args []string, cfg *api.Config) error {
	if len(args) != 1 || (args[0] != "on" && args[0] != "off") {
		return errors.New("want on or off")
	}
	cfg.AuditOff = args[0] == "off"
	return nil
}

// finish fills what depends on other properties and checks the whole.
func (cfg *Config) finish() error {
	if len(cfg.Zones) == 0 {
		return fmt.Errorf("no zone")
	}
	zone := cfg.Zones[0]
	if len(cfg.NS) == 0 {
		cfg.NS = []NameServer{{Name: "ns1." + zone}}
	}
	if cfg.SOA.Mname == "" {
		cfg.SOA.Mname = cfg.NS[0].Name
		cfg.SOA.Rname = "hostmaster." + zone
	}
	cfg.API.Zone = strings.TrimSuffix(zone, ".")
	if cfg.Expire > 0 {
		// A ping must be recorded well before its name could expire.
		if g := cfg.API.PingGranularity; g > cfg.Expire/10 {
			return fmt.Errorf("ping_granularity %s: must be at most a tenth of expire (%s)", g, cfg.Expire)
		} else if g == 0 {
			cfg.API.PingGranularity = min(api.DefaultPingGranularity, cfg.Expire/10)
		}
	}
	if err := cfg.buildStatic(); err != nil {
		return err
	}
	if cfg.API.VerifyURL == "" {
		cfg.API.VerifyURL = "https://api." + cfg.API.Zone + "/verifyemail"
	}
	if cfg.SMTP.Addr != "" && cfg.SMTP.From == "" {
		cfg.SMTP.From = "noreply@" + cfg.API.Zone
	}
	if cfg.SMTP.Addr == "" && (cfg.SMTP.Username != "" || cfg.SMTP.From != "") {
		return fmt.Errorf("smtp_auth and mail_from need an smtp server")
	}
	if len(cfg.Etcd.Endpoints) == 0 && (cfg.Etcd.Username != "" || cfg.Etcd.CAFile != "") {
		return fmt.Errorf("etcd_auth and etcd_tls are for an external etcd: add etcd ENDPOINT")
	}
	if len(cfg.Etcd.Endpoints) > 0 && cfg.Embedded != (etcdstore.EmbeddedConfig{}) {
		return fmt.Errorf("etcd_listen and etcd_quota configure the embedded etcd and cannot be combined with etcd ENDPOINT")
	}
	if cfg.RRL.Exempt == nil {
		cfg.RRL.Exempt = defaultRRLExempt()
	}
	cfg.DataDir = filepath.Clean(cfg.DataDir)
	return nil
}

// buildStatic parses the `record` and `name_record` lines and indexes the zone's own names.
func (cfg *Config) buildStatic() error {
	cfg.Static, cfg.ENTs, cfg.NameRecords = map[string]map[uint16][]dns.RR{}, map[string]bool{}, map[uint16][]dns.RR{}
	add := func(rr dns.RR) {
		name := strings.ToLower(rr.Header().Name)
		rr.Header().Name = name
		if cfg.Static[name] == nil {
			cfg.Static[name] = map[uint16][]dns.RR{}
		}
		t := rr.Header().Rrtype
		cfg.Static[name][t] = append(cfg.Static[name][t], rr)
	}
	for _, zone := range cfg.Zones {
		cfg.Static[zone] = map[uint16][]dns.RR{}
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
			add(rr)
		}
		for _, ns := range cfg.NS {
			if !dns.IsSubDomain(zone, ns.Name) {
				continue
			}
			for _, rr := range addressRRs(ns.Name, dns.TypeA, ns.Addrs, cfg.TTL) {
				add(rr)
			}
			for _, rr := range addressRRs(ns.Name, dns.TypeAAAA, ns.Addrs, cfg.TTL) {
				add(rr)
			}
			if _, ok := cfg.Static[ns.Name]; !ok {
				cfg.Static[ns.Name] = map[uint16][]dns.RR{}
			}
		}
	}
	for name, types := range cfg.Static {
		if c := types[dns.TypeCNAME]; len(c) > 0 && (len(types) > 1 || len(c) > 1) {
			return fmt.Errorf("%s has a CNAME and other records, or several CNAMEs", name)
		}
		zone := plugin.Zones(cfg.Zones).Matches(name)
		if name == zone {
			if len(types[dns.TypeCNAME]) > 0 {
				return fmt.Errorf("the zone apex %s cannot be a CNAME", name)
			}
			continue
		}
		// Every name between a static name and the apex exists; the label right under the apex
		// is reserved, so that no gateway registers a name over the zone's own.
		rel := strings.TrimSuffix(name, "."+zone)
		cfg.API.Reserved = append(cfg.API.Reserved, rel[strings.LastIndexByte(rel, '.')+1:])
		for n := name; ; {
			n = n[strings.IndexByte(n, '.')+1:]
			if len(n) <= len(zone) {
				break
			}
			if _, ok := cfg.Static[n]; !ok {
				cfg.ENTs[n] = true
			}
		}
	}
	for _, line := range cfg.NameRecordLines {
		rr, err := parseRR("@ "+line, cfg.Zones[0], cfg.AddressTTL)
		if err != nil {
			return fmt.Errorf("name_record %s: %v", line, err)
		}
		switch t := rr.Header().Rrtype; t {
		case dns.TypeCNAME, dns.TypeA, dns.TypeAAAA, dns.TypeSOA, dns.TypeNS:
			return fmt.Errorf("name_record %s: a registered name's %s records are not static", line, dns.TypeToString[t])
		default:
			cfg.NameRecords[t] = append(cfg.NameRecords[t], rr)
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

// parseLimit reads `off` or RATE [BURST], RATE being N/s, N/m, N/h or N (per second).
func parseLimit(args []string) (api.RateLimit, error) {
	if len(args) == 1 && args[0] == "off" {
		return api.RateLimit{Rate: -1}, nil
	}
	if len(args) != 2 {
		return api.RateLimit{}, fmt.Errorf("want RATE BURST (like 30/m 10) or off")
	}
	n, unit, _ := strings.Cut(args[0], "/")
	per := map[string]float64{"": 1, "s": 1, "m": 60, "h": 3600}[unit]
	rate, err := strconv.ParseFloat(n, 64)
	if err != nil || per == 0 || rate <= 0 || math.IsInf(rate, 0) {
		return api.RateLimit{}, fmt.Errorf("rate %q: want a positive number per s, m or h, like 30/m", args[0])
	}
	burst, err := strconv.Atoi(args[1])
	if err != nil || burst < 1 {
		return api.RateLimit{}, fmt.Errorf("burst %q: want a whole number of at least 1", args[1])
	}
	return api.RateLimit{Rate: rate / per, Burst: burst}, nil
}

// parseRRL reads `rrl RATE|off [slip N] [window DURATION]` into l.
func parseRRL(l *RRL, args []string) error {
	if args[0] == "off" && len(args) == 1 {
		l.Rate = 0
		return nil
	}
	rate, err := strconv.Atoi(args[0])
	if err != nil || rate < 1 || rate > 1e9 {
		return fmt.Errorf("rate %q: want responses per second, at least 1, or off", args[0])
	}
	l.Rate = rate
	for opts := args[1:]; len(opts) > 0; opts = opts[2:] {
		if len(opts) < 2 {
			return fmt.Errorf("%s without a value", opts[0])
		}
		switch opts[0] {
		case "slip":
			if l.Slip, err = strconv.Atoi(opts[1]); err != nil || l.Slip < 0 || l.Slip > 100 {
				return fmt.Errorf("slip %q: want 0 (drop all) to 100", opts[1])
			}
		case "window":
			if l.Window, err = parseDuration(opts[1]); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown option %q: want slip or window", opts[0])
		}
	}
	return nil
}

// parseRRLExempt adds the prefixes of an `rrl_exempt` line to l, which then replace the
// default (loopback); `none` exempts nothing.
func parseRRLExempt(l *RRL, args []string) error {
	if l.Exempt == nil {
		l.Exempt = []netip.Prefix{}
	}
	if len(args) == 1 && args[0] == "none" {
		return nil
	}
	ps, err := parsePrefixes(args)
	l.Exempt = append(l.Exempt, ps...)
	return err
}

// parsePrefixes reads addresses and CIDR prefixes; an address is the prefix of itself alone.
func parsePrefixes(args []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, a := range args {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			addr, aerr := netip.ParseAddr(a)
			if aerr != nil || addr.Zone() != "" {
				return nil, fmt.Errorf("%q is neither an address nor a CIDR prefix", a)
			}
			p = netip.PrefixFrom(addr, addr.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// parseEmbedded reads the embedded etcd's properties: `etcd_listen CLIENT_URL [PEER_URL]`
// and `etcd_quota SIZE` (bytes, or with a unit such as 512MiB or 2GB).
func parseEmbedded(c *caddy.Controller, prop string, args []string, e *etcdstore.EmbeddedConfig) error {
	if prop == "etcd_quota" {
		if len(args) != 1 {
			return c.ArgErr()
		}
		n, err := humanize.ParseBytes(args[0])
		if err != nil || n < minEtcdQuota || n > math.MaxInt64 {
			return c.Errf("etcd_quota %q: want a size of at least 1MiB, like 2GiB", args[0])
		}
		e.QuotaBytes = int64(n)
		return nil
	}
	if len(args) < 1 || len(args) > 2 {
		return c.ArgErr()
	}
	for _, a := range args {
		if u, err := url.Parse(a); err != nil || u.Host == "" {
			return c.Errf("etcd_listen %q is not a URL like http://127.0.0.1:23790", a)
		}
	}
	e.ClientURL = args[0]
	if len(args) == 2 {
		e.PeerURL = args[1]
	}
	return nil
}

// minEtcdQuota is the smallest etcd_quota: below it etcd cannot hold even a small zone.
const minEtcdQuota = 1 << 20

func parseAddrs(args []string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, a := range args {
		addr, err := netip.ParseAddr(a)
		if err != nil || addr.Zone() != "" {
			return nil, fmt.Errorf("%q is not an IP address", a)
		}
		out = append(out, addr.Unmap())
	}
	return out, nil
}

func parseSeconds(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number of seconds", s)
	}
	return uint32(n), nil
}

func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration like 2s or 24h", s)
	}
	return d, nil
}
