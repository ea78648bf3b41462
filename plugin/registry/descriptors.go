package registry

import (
	"syscall"

	"github.com/regdns/regdns/api"
)

// fdReserve is the file descriptors no client can take: the embedded etcd's files, listeners
// and peer connections, the DNS sockets, the etcd client and the runtime's own. etcd exits when
// it cannot open a file, so this share must never be spent on clients.
const fdReserve = 256

// minAPIConns is the total API connection cap below which the API could hardly serve at all.
const minAPIConns = 16

// openFileLimit is RLIMIT_NOFILE's soft limit. Go's runtime raises it to (nearly) the hard
// limit at start (see syscall/rlimit.go), so this is all the process may open.
func openFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	return lim.Cur, err
}

// apiConnLimits are the connection caps of the API listener under an open-file limit of
// nofile: a third of the client descriptors (see dnsTCPThreshold for the rest); each request
// in progress may hold one more descriptor (an SMTP or etcd connection). A configured total above that budget is lowered to it; lowered says so.
func (c Config) apiConnLimits(nofile uint64) (limits api.ConnLimits, lowered bool) {
	budget := max(minAPIConns, c.clientDescriptors(nofile)/3)
	limits = api.ConnLimits{Total: budget, PerClient: c.APIMaxConnsPerClient, Exempt: c.API.TrustedProxies}
	if c.APIMaxConns > 0 {
		limits.Total = min(c.APIMaxConns, budget)
		lowered = c.APIMaxConns > budget
	}
	return limits, lowered
}

// dnsTCPThreshold is the descriptor number below which DNS-over-TCP connections are admitted:
// the client descriptors less the API's. Connections take the lowest free descriptor, so
// below it DNS shares with the API and keeps at least as much room as the API has; and if DNS
// fills all of it, the API's connections above it still leave fdReserve free.
func (c Config) dnsTCPThreshold(nofile uint64) int {
	limits, _ := c.apiConnLimits(nofile)
	return max(minAPIConns, c.clientDescriptors(nofile)-limits.Total)
}

// clientDescriptors is what nofile leaves for client connections, beyond the reserve, a
// descriptor per request in progress and the refused API connections being answered.
func (c Config) clientDescriptors(nofile uint64) int {
	return int(min(nofile, 1<<30)) - fdReserve - c.APIMaxConcurrent - api.MaxRefusalsAnswering
}
