package geoip

import (
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/regdns/regdns/api/geoip/geoiptest"
)

func TestContinent(t *testing.T) {
	g, err := Open(geoiptest.Write(t, "GeoLite2-Country", map[string]geoiptest.Place{
		"81.2.69.0/24": {Continent: "EU"},
		"1.0.16.0/20":  {Continent: "AS"},
		"2003::/19":    {Continent: "EU"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for addr, want := range map[string]string{
		"81.2.69.142":        "EU",
		"::ffff:81.2.69.142": "EU",
		"1.0.16.1":           "AS",
		"2003::1":            "EU",
		"8.8.8.8":            "",
		"127.0.0.1":          "",
	} {
		if got := g.Continent(netip.MustParseAddr(addr)); got != want {
			t.Errorf("%s: %q, want %q", addr, got, want)
		}
	}
}

func TestOpenRejects(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "missing.mmdb")); err == nil {
		t.Error("opened a missing file")
	}
	if _, err := Open(geoiptest.Write(t, "GeoLite2-ASN", nil)); err == nil {
		t.Error("opened an ASN database")
	}
}
