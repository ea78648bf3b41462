package api

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/regdns/regdns/api/geoip"
	"github.com/regdns/regdns/api/geoip/geoiptest"
)

// The continent of a name is where the gateway registers from, or the address it states.
func TestGeoIP(t *testing.T) {
	g, err := geoip.Open(geoiptest.Write(t, "GeoLite2-Country", map[string]geoiptest.Place{
		"81.2.69.0/24": {Continent: "EU"},
		"1.0.16.0/20":  {Continent: "AS"},
		"2003::/19":    {Continent: "EU"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	e := newEnv(t, func(c *Config) {
		c.Locator = g
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	for name, addr := range map[string]string{"europe": "81.2.69.142", "asia": "1.0.16.1", "nowhere": "8.8.8.8"} {
		e.do(t, http.MethodGet, http.Header{"X-Real-Ip": {addr}}, "/subscribe", "name", name)
	}
	for name, want := range map[string]string{"europe": "EU", "asia": "AS", "nowhere": ""} {
		if got := e.stored(t, name).Continent; got != want {
			t.Errorf("%s: continent %q, want %q", name, got, want)
		}
	}

	// An address the gateway states locates it, not the connection it called from.
	e.subscribe(t, "stated", "ip", "81.2.69.142")
	e.subscribe(t, "stated6", "ipv6", "2003::1")
	e.do(t, http.MethodGet, http.Header{"X-Real-Ip": {"81.2.69.142"}}, "/subscribe", "name", "statedasia", "ip", "1.0.16.1")
	for name, want := range map[string]string{"stated": "EU", "stated6": "EU", "statedasia": "AS"} {
		if got := e.stored(t, name).Continent; got != want {
			t.Errorf("%s: continent %q, want %q", name, got, want)
		}
	}

	// Reclaiming from elsewhere moves the name's continent along.
	token := e.subscribe(t, "mover")
	e.verify(t, token, "owner@example.org")
	rt := e.reclamationToken(t, "mover")
	e.do(t, http.MethodGet, http.Header{"X-Real-Ip": {"2003::1"}}, "/subscribe", "name", "mover", "reclamationToken", rt)
	if d := e.stored(t, "mover"); d.Continent != "EU" || d.IPv6.String() != "2003::1" {
		t.Errorf("after reclaim: continent %q address %v", d.Continent, d.IPv6)
	}
}
