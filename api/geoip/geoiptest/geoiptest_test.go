package geoiptest

import (
	"net/netip"
	"testing"

	"github.com/oschwald/geoip2-golang/v2"
)

// TestWriteReadsBack opens a written database with the reader the API uses and looks up a
// placed address, one in a documentation range, and one placed nowhere.
func TestWriteReadsBack(t *testing.T) {
	db, err := geoip2.Open(Write(t, "GeoLite2-Country", map[string]Place{
		"81.2.69.0/24":    {Continent: "EU", Country: "GB"},
		"198.51.100.0/24": {Continent: "NA"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.Metadata().DatabaseType != "GeoLite2-Country" {
		t.Errorf("database type %q", db.Metadata().DatabaseType)
	}
	for addr, want := range map[string][2]string{
		"81.2.69.142":  {"EU", "GB"},
		"198.51.100.7": {"NA", ""},
		"8.8.8.8":      {"", ""},
	} {
		c, err := db.Country(netip.MustParseAddr(addr))
		if err != nil {
			t.Fatal(err)
		}
		if got := [2]string{c.Continent.Code, c.Country.ISOCode}; got != want {
			t.Errorf("%s: %v, want %v", addr, got, want)
		}
	}
}
