package registry

import (
	"crypto/tls"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"

	"github.com/regdns/regdns/api"
)

// parseAPIProperty reads the properties of the HTTP API: where it listens, the limits on
// its connections and requests, and the rules of registration.
func parseAPIProperty(cfg *Config, prop string, args []string) error {
	switch prop {
	case "api":
		return parseOne(args, func(s string) error { cfg.APIAddr = s; _, _, err := net.SplitHostPort(s); return err })
	case "api_tls":
		if err := argCount(args, 2, 2); err != nil {
			return err
		}
		cfg.APICert, cfg.APIKey = args[0], args[1]
		_, err := tls.LoadX509KeyPair(args[0], args[1])
		return err
	case "api_max_concurrent":
		return parseOne(args, func(s string) (err error) {
			cfg.APIMaxConcurrent, err = strconv.Atoi(s)
			if err == nil && cfg.APIMaxConcurrent < 1 {
				err = fmt.Errorf("must be at least 1")
			}
			return err
		})
	case "api_max_connections":
		if err := argCount(args, 1, 2); err != nil {
			return err
		}
		return parseMaxConns(args, cfg)
	case "audit":
		return parseOne(args, func(s string) error {
			if s != "on" && s != "off" {
				return fmt.Errorf("want on or off")
			}
			cfg.API.AuditOff = s == "off"
			return nil
		})
	case "client_limit", "mail_limit", "write_limit":
		if err := argCount(args, 1, 2); err != nil {
			return err
		}
		rate := map[string]*api.RateLimit{"client_limit": &cfg.API.ClientLimit, "mail_limit": &cfg.API.MailLimit, "write_limit": &cfg.API.WriteLimit}[prop]
		var err error
		*rate, err = parseRateLimit(args)
		return err
	default:
		return parseRegistrationProperty(cfg, prop, args)
	}
}

// parseRegistrationProperty reads the API's rules for names and their clients.
func parseRegistrationProperty(cfg *Config, prop string, args []string) error {
	switch prop {
	case "reserved":
		if err := argCount(args, 1, -1); err != nil {
			return err
		}
		for _, r := range args {
			cfg.API.Reserved = append(cfg.API.Reserved, strings.ToLower(r))
		}
	case "trusted_proxy":
		if err := argCount(args, 1, -1); err != nil {
			return err
		}
		ps, err := parsePrefixes(args)
		cfg.API.TrustedProxies = append(cfg.API.TrustedProxies, ps...)
		return err
	case "challenge_keep":
		return parseOne(args, func(s string) (err error) {
			cfg.API.ChallengeKeep, err = strconv.Atoi(s)
			if err == nil && cfg.API.ChallengeKeep < 2 {
				err = fmt.Errorf("challenge_keep must be at least 2 (a name and its wildcard validate together)")
			}
			return err
		})
	case "allow_private_addresses":
		if err := argCount(args, 0, 0); err != nil {
			return err
		}
		cfg.API.AllowPrivateAddrs = true
	case "ping_granularity":
		return parseOne(args, func(s string) (err error) { cfg.API.PingGranularity, err = parseDuration(s); return err })
	default:
		return errOtherProperty
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

// parseRateLimit reads `off` or RATE [BURST], RATE being N/s, N/m, N/h or N (per second).
func parseRateLimit(args []string) (api.RateLimit, error) {
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
