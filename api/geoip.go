package api

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/oschwald/geoip2-golang/v2"
)

// Locator maps an address to a continent code (AF AN AS EU NA OC SA) or "".
type Locator interface {
	Continent(addr netip.Addr) string
}

// GeoIP is a Locator reading a MaxMind GeoLite2-Country or GeoLite2-City database.
type GeoIP struct {
	db *geoip2.Reader
}

// OpenGeoIP reads the database at path into memory: DNS lookups may still be using a reader
// while a reload replaces it, which a memory-mapped file closed under them would not survive.
func OpenGeoIP(path string) (*GeoIP, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	db, err := geoip2.OpenBytes(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// An ASN or ISP database opens fine but could never answer; refuse it now.
	var wrong geoip2.InvalidMethodError
	if _, err := db.Country(netip.IPv4Unspecified()); errors.As(err, &wrong) {
		db.Close()
		return nil, fmt.Errorf("%s: not a country or city database: %w", path, err)
	}
	return &GeoIP{db: db}, nil
}

// Continent returns the continent code of addr, or "" if the database does not know it.
func (g *GeoIP) Continent(addr netip.Addr) string {
	c, err := g.db.Country(addr.Unmap())
	if err != nil {
		return ""
	}
	return c.Continent.Code
}

// Close releases the database.
func (g *GeoIP) Close() error { return g.db.Close() }
