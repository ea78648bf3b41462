package registry

import (
	"fmt"
	"math"
	"net/url"
	"strings"

	"github.com/dustin/go-humanize"

	"github.com/regdns/regdns/etcdstore"
)

// parseEtcdProperty reads the properties of where the names are stored: an external etcd,
// or the embedded one and its data directory.
func parseEtcdProperty(cfg *Config, prop string, args []string) error {
	switch prop {
	case "data":
		return parseOne(args, func(s string) error { cfg.DataDir = s; return nil })
	case "etcd":
		if err := argCount(args, 1, -1); err != nil {
			return err
		}
		for _, e := range args {
			if _, err := url.Parse(e); err != nil || !strings.Contains(e, "://") {
				return fmt.Errorf("endpoint %q is not a URL like http://host:2379", e)
			}
		}
		cfg.Etcd.Endpoints = args
	case "etcd_listen", "etcd_quota":
		return parseEmbedded(prop, args, &cfg.Embedded)
	case "etcd_process":
		return parseOne(args, func(s string) error {
			switch s {
			case "child", "inline":
				cfg.EtcdInline = s == "inline"
				return nil
			}
			return fmt.Errorf("%q: want child or inline", s)
		})
	case "etcd_tls":
		if err := argCount(args, 3, 3); err != nil {
			return err
		}
		cfg.Etcd.CertFile, cfg.Etcd.KeyFile, cfg.Etcd.CAFile = args[0], args[1], args[2]
	case "etcd_auth":
		var err error
		cfg.Etcd.Username, cfg.Etcd.Password, err = parseCredentials(args)
		return err
	case "etcd_prefix":
		return parseOne(args, func(s string) error { cfg.Etcd.Prefix = s; return nil })
	case "etcd_timeout":
		return parseOne(args, func(s string) (err error) { cfg.Etcd.Timeout, err = parseDuration(s); return err })
	default:
		return errOtherProperty
	}
	return nil
}

// parseEmbedded reads the embedded etcd's properties: `etcd_listen CLIENT_URL [PEER_URL]`
// and `etcd_quota SIZE` (bytes, or with a unit such as 512MiB or 2GB).
func parseEmbedded(prop string, args []string, e *etcdstore.EmbeddedConfig) error {
	if prop == "etcd_quota" {
		if err := argCount(args, 1, 1); err != nil {
			return err
		}
		n, err := humanize.ParseBytes(args[0])
		if err != nil || n < minEtcdQuota || n > math.MaxInt64 {
			return fmt.Errorf("%q: want a size of at least 1MiB, like 2GiB", args[0])
		}
		e.QuotaBytes = int64(n)
		return nil
	}
	if err := argCount(args, 1, 2); err != nil {
		return err
	}
	for _, a := range args {
		if u, err := url.Parse(a); err != nil || u.Host == "" {
			return fmt.Errorf("%q is not a URL like http://127.0.0.1:23790", a)
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
