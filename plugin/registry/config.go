package registry

import (
	"net/netip"
	"time"

	"github.com/coredns/coredns/plugin/pkg/fall"
	"github.com/miekg/dns"

	"github.com/regdns/regdns/api"
	"github.com/regdns/regdns/etcdstore"
)

// Config is everything the Corefile says about one registry block.
type Config struct {
	Zones   []string
	APIAddr string
	// DataDir holds the embedded etcd (DataDir/etcd) and, without SMTP, the unsent mail (DataDir/mail).
	DataDir string

	// Etcd reaches an external cluster when Endpoints is set; otherwise an embedded etcd
	// configured by Embedded (its Dir and Log filled in at start) is started.
	Etcd     etcdstore.Config
	Embedded etcdstore.EmbeddedConfig

	SOA SOA
	NS  []NameServer
	// TTL is for the apex records; AddressTTL for a name's A/AAAA; ChallengeTTL for ACME TXT.
	TTL, AddressTTL, ChallengeTTL uint32
	// ChallengeExpiry is how long a challenge value is served after it was set.
	ChallengeExpiry time.Duration
	// Tunnels are the addresses tunnel-mode names resolve to, by continent ("" is the default).
	Tunnels map[string][]netip.Addr
	// APIHosts are the addresses of api.ZONE, by the querying client's continent.
	APIHosts map[string][]netip.Addr

	// Records are the `record` lines, in zone-file syntax relative to each zone; NameRecordLines
	// the `name_record` lines, RDATA served at every registered name.
	Records, NameRecordLines []string
	// Static holds the zone's own records by owner (lower case, fully qualified) and type: the
	// apex, the NS hosts' addresses and the `record` lines. ENTs are the empty non-terminals above them.
	Static map[string]map[uint16][]dns.RR
	ENTs   map[string]bool
	// NameRecords are the `name_record` records by type, owner to be filled in.
	NameRecords map[uint16][]dns.RR

	// Expire makes names not pinged for that long stop resolving, and ExpireGrace later
	// deletes them, freeing the name; zero keeps names forever.
	Expire, ExpireGrace time.Duration

	// APICert and APIKey serve the API over TLS; APIMaxConcurrent bounds requests in progress.
	APICert, APIKey  string
	APIMaxConcurrent int
	// APIMaxConns caps the API's open connections (0: derived from the open-file limit) and
	// APIMaxConnsPerClient those of one client address (IPv6: one /64).
	APIMaxConns, APIMaxConnsPerClient int
	// DNSTCPGuard caps the server block's DNS-over-TCP connections to their descriptor budget.
	DNSTCPGuard bool

	// RRL limits the responses over UDP per source prefix.
	RRL RRL

	GeoIP string
	SMTP  api.SMTPMailer
	API   api.Config
	Fall  fall.F
}

// SOA holds the zone's SOA fields; the serial is the etcd revision of the view.
type SOA struct {
	Mname, Rname                    string
	Refresh, Retry, Expire, Minimum uint32
}

// NameServer is one NS of the zone, with its addresses for glue.
type NameServer struct {
	Name  string
	Addrs []netip.Addr
}

func defaultConfig() Config {
	return Config{
		APIAddr:              "127.0.0.1:8081",
		APIMaxConcurrent:     256,
		APIMaxConnsPerClient: 64,
		DataDir:              "data",
		SOA:                  SOA{Refresh: 3600, Retry: 600, Expire: 604800, Minimum: 60},
		TTL:                  3600,
		AddressTTL:           60,
		ChallengeTTL:         30,
		ChallengeExpiry:      24 * time.Hour,
		Tunnels:              map[string][]netip.Addr{},
		APIHosts:             map[string][]netip.Addr{},
		RRL:                  defaultRRL(),
	}
}
