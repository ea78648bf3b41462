package registry

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	clog "github.com/coredns/coredns/plugin/pkg/log"
	"github.com/coredns/coredns/plugin/transfer"
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
	zone, err := NewZone(cfg)
	if err != nil {
		return plugin.Error(name, err)
	}
	r := New(cfg, zone)
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

// parse reads the registry block: each property by the parser of its concern, then the
// defaults that depend on other properties, then the checks of the whole.
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
	if len(cfg.Zones) == 0 {
		return cfg, fmt.Errorf("no zone")
	}
	cfg.fillDefaults()
	return cfg, cfg.validate()
}

// propertyParsers read the properties of one concern each: the zone's content, etcd, the
// API and its limits, mail, the DNS side's limits. Each returns errOtherProperty for a
// property that is not its own.
var propertyParsers = []func(cfg *Config, prop string, args []string) error{
	parseZoneProperty, parseEtcdProperty, parseAPIProperty, parseMailProperty, parseDNSProperty,
}

var (
	errOtherProperty = errors.New("not a property of this concern")
	errArgCount      = errors.New("wrong argument count")
)

func parseProperty(c *caddy.Controller, cfg *Config) error {
	prop, args := c.Val(), c.RemainingArgs()
	for _, parseConcern := range propertyParsers {
		err := parseConcern(cfg, prop, args)
		switch {
		case err == errOtherProperty:
			continue
		case err == errArgCount:
			// c.ArgErr's own message, without the file and line it would repeat after Errf's.
			return c.Errf("%s: Wrong argument count or unexpected line ending after '%s'", prop, c.Val())
		case err != nil:
			return c.Errf("%s: %v", prop, err)
		}
		return nil
	}
	return c.Errf("unknown property '%s'", prop)
}

// argCount checks that there are min to max arguments (max -1: no upper bound).
func argCount(args []string, min, max int) error {
	if len(args) < min || (max >= 0 && len(args) > max) {
		return errArgCount
	}
	return nil
}

// parseOne checks that there is one argument and hands it to set.
func parseOne(args []string, set func(string) error) error {
	if err := argCount(args, 1, 1); err != nil {
		return err
	}
	return set(args[0])
}

// parseCredentials reads `USERNAME PASSWORD`. A wrong count is said without caddy's argument
// error, which quotes the last token: the password, or a piece of one that has a space.
func parseCredentials(args []string) (username, password string, err error) {
	if len(args) != 2 {
		return "", "", fmt.Errorf("want USERNAME PASSWORD, got %d arguments", len(args))
	}
	return args[0], args[1], nil
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
