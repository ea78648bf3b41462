package registry

import (
	"net/netip"
	"testing"
)

func TestAPIConnLimits(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}
	for _, tt := range []struct {
		name       string
		configured int
		nofile     uint64
		total      int
		lowered    bool
	}{
		{"derived from the limit", 0, 20000, (20000 - fdReserve - 256) / 2, false},
		{"configured within the budget", 1000, 20000, 1000, false},
		{"configured above the budget", 50000, 20000, (20000 - fdReserve - 256) / 2, true},
		{"a limit too low for any budget", 0, 256, minAPIConns, false},
		{"an unlimited hard limit", 0, 1 << 63, (1<<30 - fdReserve - 256) / 2, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := defaultConfig()
			c.APIMaxConns = tt.configured
			c.API.TrustedProxies = proxies
			limits, lowered := c.apiConnLimits(tt.nofile)
			if limits.Total != tt.total || lowered != tt.lowered || limits.PerClient != 64 || len(limits.Exempt) != 1 {
				t.Errorf("got %+v lowered %v, want total %d per client 64 lowered %v, trusted proxies exempt", limits, lowered, tt.total, tt.lowered)
			}
		})
	}
}
