// Package geoiptest writes small MaxMind databases (mmdbwriter) for tests of what is located
// by GeoIP: the API's continent of a caller and the DNS answers chosen by it.
package geoiptest

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Place is where a network is: a continent code and, when not empty, a country code.
type Place struct {
	Continent, Country string
}

// Write writes a database of dbType (such as "GeoLite2-Country") that places each network
// (CIDR, documentation ranges allowed) and returns its path.
func Write(t testing.TB, dbType string, places map[string]Place) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: dbType, RecordSize: 24, IncludeReservedNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	for network, place := range places {
		_, n, err := net.ParseCIDR(network)
		if err != nil {
			t.Fatal(err)
		}
		rec := mmdbtype.Map{"continent": mmdbtype.Map{"code": mmdbtype.String(place.Continent)}}
		if place.Country != "" {
			rec["country"] = mmdbtype.Map{"iso_code": mmdbtype.String(place.Country)}
		}
		if err := tree.Insert(n, rec); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), dbType+".mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	return path
}
