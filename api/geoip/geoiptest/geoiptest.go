// Package geoiptest writes small GeoIP databases for tests.
package geoiptest

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// WriteDB writes a database of type dbType (such as GeoLite2-Country) placing each network
// (CIDR) on a continent code, in a directory removed after the test, and returns its path.
func WriteDB(tb testing.TB, dbType string, continents map[string]string) string {
	tb.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: dbType, RecordSize: 24, IncludeReservedNetworks: true})
	if err != nil {
		tb.Fatal(err)
	}
	for network, code := range continents {
		_, n, err := net.ParseCIDR(network)
		if err != nil {
			tb.Fatal(err)
		}
		if err := tree.Insert(n, mmdbtype.Map{"continent": mmdbtype.Map{"code": mmdbtype.String(code)}}); err != nil {
			tb.Fatal(err)
		}
	}
	path := filepath.Join(tb.TempDir(), dbType+".mmdb")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if _, err := tree.WriteTo(f); err != nil {
		tb.Fatal(err)
	}
	return path
}
