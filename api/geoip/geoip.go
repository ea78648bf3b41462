// Package geoip locates addresses on continents with a MaxMind database, for the API (the
// continent a gateway registers from) and the DNS side (the API host's address by client).
package geoip

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/oschwald/geoip2-golang/v2"
)

// DB is a MaxMind GeoLite2-Country or GeoLite2-City database.
type DB struct {
	db *geoip2.Reader
}

// Open reads the database at path into memory: DNS lookups may still be using a reader
// while a reload replaces it, which a memory-mapped file closed under them would not survive.
func Open(path string) (*DB, error) {
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
	return &DB{db: db}, nil
}

// Continent returns the continent code of addr (AF AN AS EU NA OC SA), or "" if the database does not know it.
func (g *DB) Continent(addr netip.Addr) string {
	c, err := g.db.Country(addr.Unmap())
	if err != nil {
		return ""
	}
	return c.Continent.Code
}

// Close releases the database.
func (g *DB) Close() error { return g.db.Close() }
