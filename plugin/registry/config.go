package registry

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/coredns/coredns/plugin/pkg/fall"

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
	// EtcdInline runs the embedded etcd inside this process (`etcd_process inline`) rather
	// than in a child process, where the binary allows one.
	EtcdInline bool

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
	// the `name_record` lines, RDATA served at every registered name. NewZone builds their records.
	Records, NameRecordLines []string

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

// fillDefaults sets what defaults to other properties' values: the NS and SOA names, the
// API's zone, links and sender, the ping granularity under expiry, the RRL exemptions.
func (cfg *Config) fillDefaults() {
	zone := cfg.Zones[0]
	if len(cfg.NS) == 0 {
		cfg.NS = []NameServer{{Name: "ns1." + zone}}
	}
	if cfg.SOA.Mname == "" {
		cfg.SOA.Mname = cfg.NS[0].Name
		cfg.SOA.Rname = "hostmaster." + zone
	}
	cfg.API.Zone = strings.TrimSuffix(zone, ".")
	if cfg.Expire > 0 && cfg.API.PingGranularity == 0 {
		cfg.API.PingGranularity = min(api.DefaultPingGranularity, cfg.Expire/10)
	}
	if cfg.API.VerifyURL == "" {
		cfg.API.VerifyURL = "https://api." + cfg.API.Zone + "/verifyemail"
	}
	if cfg.SMTP.Addr != "" && cfg.SMTP.From == "" {
		cfg.SMTP.From = "noreply@" + cfg.API.Zone
	}
	if cfg.RRL.Exempt == nil {
		cfg.RRL.Exempt = defaultRRLExempt()
	}
	cfg.DataDir = filepath.Clean(cfg.DataDir)
}

// validate checks the properties against each other, and the zone's own records: a Config
// it accepts starts.
func (cfg *Config) validate() error {
	// A ping must be recorded well before its name could expire.
	if g := cfg.API.PingGranularity; cfg.Expire > 0 && g > cfg.Expire/10 {
		return fmt.Errorf("ping_granularity %s: must be at most a tenth of expire (%s)", g, cfg.Expire)
	}
	if _, err := NewZone(*cfg); err != nil {
		return err
	}
	if cfg.SMTP.Addr == "" && (cfg.SMTP.Username != "" || cfg.SMTP.From != "") {
		return fmt.Errorf("smtp_auth and mail_from need an smtp server")
	}
	if len(cfg.Etcd.Endpoints) == 0 && (cfg.Etcd.Username != "" || cfg.Etcd.CAFile != "") {
		return fmt.Errorf("etcd_auth and etcd_tls are for an external etcd: add etcd ENDPOINT")
	}
	if len(cfg.Etcd.Endpoints) > 0 && (cfg.Embedded != (etcdstore.EmbeddedConfig{}) || cfg.EtcdInline) {
		return fmt.Errorf("etcd_listen, etcd_quota and etcd_process configure the embedded etcd and cannot be combined with etcd ENDPOINT")
	}
	return nil
}
