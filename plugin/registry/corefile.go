package registry

import (
	"fmt"
	"os"

	"github.com/coredns/caddy"
	"github.com/coredns/caddy/caddyfile"
)

// ReadCorefile parses the registry blocks of the Corefile at path with the plugin's own
// parser, in the order of their server blocks, for tools (regdnsctl) that must reach the same
// etcd and zone as the server reading that file. Relative paths in it are relative to the
// working directory, as for the server.
func ReadCorefile(path string) ([]Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	blocks, err := caddyfile.Parse(path, f, nil)
	if err != nil {
		return nil, err
	}
	var out []Config
	for _, b := range blocks {
		tokens, ok := b.Tokens[name]
		if !ok {
			continue
		}
		// caddy builds Controllers only while starting servers, and for tests; this one reads
		// the block's tokens and keys, which is all parse uses of it.
		c := caddy.NewTestController("dns", "")
		c.Dispenser = caddyfile.NewDispenserTokens(path, tokens)
		c.ServerBlockKeys = b.Keys
		cfg, err := parse(c)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, cfg)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has no %s block", path, name)
	}
	return out, nil
}

// IsContinent reports whether code is a continent code as GeoIP databases give it and the
// `tunnel` and `api_address` properties take it (AF AN AS EU NA OC SA).
func IsContinent(code string) bool { return continents[code] }
