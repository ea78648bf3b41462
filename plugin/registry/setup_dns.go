package registry

import (
	"fmt"
	"net/netip"
	"strconv"
)

// parseDNSProperty reads the limits of the DNS side: response rate limiting and the cap on
// DNS-over-TCP connections.
func parseDNSProperty(cfg *Config, prop string, args []string) error {
	switch prop {
	case "rrl":
		if err := argCount(args, 1, 5); err != nil {
			return err
		}
		return parseRRL(&cfg.RRL, args)
	case "rrl_exempt":
		if err := argCount(args, 1, -1); err != nil {
			return err
		}
		return parseRRLExempt(&cfg.RRL, args)
	case "dns_tcp_guard":
		if err := argCount(args, 0, 0); err != nil {
			return err
		}
		cfg.DNSTCPGuard = true
	default:
		return errOtherProperty
	}
	return nil
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
