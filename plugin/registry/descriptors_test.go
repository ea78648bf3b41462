package registry

import (
	"net/netip"
	"testing"

	"github.com/regdns/regdns/api"
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
		{"derived from the limit", 0, 20000, (20000 - fdReserve - 256 - api.MaxRefusalsAnswering) / 3, false},
		{"configured within the budget", 1000, 20000, 1000, false},
		{"configured above the budget", 50000, 20000, (20000 - fdReserve - 256 - api.MaxRefusalsAnswering) / 3, true},
		{"a limit too low for any budget", 0, 256, minAPIConns, false},
		{"an unlimited hard limit", 0, 1 << 63, (1<<30 - fdReserve - 256 - api.MaxRefusalsAnswering) / 3, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := defaultConfig()
			c.APIMaxConns = tt.configured
			c.API.TrustedProxies = proxies
			limits, lowered := c.apiConnLimits(tt.nofile)
			if limits.Total != tt.total || lowered != tt.lowered || limits.PerClient != 64 || len(limits.Exempt) != 1 {
				t.Errorf("got %+v lowered %v, want total %d per client 64 lowered %v, trusted proxies exempt", limits, lowered, tt.total, tt.lowered)
			}
			if tt.nofile < 1024 {
				return
			}
			// DNS filling everything below its threshold and the API holding its total above
			// it still leave the reserve and a descriptor per request in progress.
			threshold := c.dnsTCPThreshold(tt.nofile)
			if used := threshold + limits.Total + fdReserve + c.APIMaxConcurrent + api.MaxRefusalsAnswering; uint64(used) > min(tt.nofile, 1<<30) {
				t.Errorf("DNS threshold %d with API total %d uses %d descriptors of %d", threshold, limits.Total, used, tt.nofile)
			}
			if threshold-limits.Total < limits.Total {
				t.Errorf("DNS threshold %d leaves DNS less than the API's %d when the API is full", threshold, limits.Total)
			}
		})
	}
}
