package registry

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"

	"github.com/regdns/regdns/api"
	"github.com/regdns/regdns/etcdstore"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		wantErr string
		check   func(t *testing.T, c Config)
	}{
		{name: "defaults", input: `registry`, check: func(t *testing.T, c Config) {
			if c.APIAddr != "127.0.0.1:8081" || c.DataDir != "data" || len(c.Etcd.Endpoints) != 0 {
				t.Errorf("api %q data %q etcd %v", c.APIAddr, c.DataDir, c.Etcd.Endpoints)
			}
			if len(c.NS) != 1 || c.NS[0].Name != "ns1.example.org." || c.SOA.Mname != "ns1.example.org." || c.SOA.Rname != "hostmaster.example.org." {
				t.Errorf("NS %v SOA %v", c.NS, c.SOA)
			}
			if c.TTL != 3600 || c.AddressTTL != 60 || c.ChallengeTTL != 30 || c.SOA.Minimum != 60 || c.ChallengeExpiry != 24*time.Hour {
				t.Errorf("ttls %d %d %d min %d expiry %s", c.TTL, c.AddressTTL, c.ChallengeTTL, c.SOA.Minimum, c.ChallengeExpiry)
			}
			if c.API.Zone != "example.org" || c.API.VerifyURL != "https://api.example.org/verifyemail" {
				t.Errorf("api zone %q verify %q", c.API.Zone, c.API.VerifyURL)
			}
			// The embedded etcd listens on no TCP client port unless etcd_listen says so.
			if c.Embedded != (etcdstore.EmbeddedConfig{}) {
				t.Errorf("embedded etcd %+v, want the defaults", c.Embedded)
			}
		}},
		{name: "embedded etcd", input: "registry {\netcd_listen http://127.0.0.1:23790\netcd_quota 512MiB\n}", check: func(t *testing.T, c Config) {
			if c.Embedded.ClientURL != "http://127.0.0.1:23790" || c.Embedded.PeerURL != "" || c.Embedded.QuotaBytes != 512<<20 {
				t.Errorf("embedded etcd %+v", c.Embedded)
			}
		}},
		{name: "etcd inline", input: "registry {\netcd_process inline\n}", check: func(t *testing.T, c Config) {
			if !c.EtcdInline {
				t.Errorf("EtcdInline false")
			}
		}},
		{name: "etcd child", input: "registry {\netcd_process child\n}", check: func(t *testing.T, c Config) {
			if c.EtcdInline {
				t.Errorf("EtcdInline true")
			}
		}},
		{name: "embedded etcd peer", input: "registry {\netcd_listen http://127.0.0.1:1 https://127.0.0.1:2\netcd_quota 2GB\n}", check: func(t *testing.T, c Config) {
			if c.Embedded.PeerURL != "https://127.0.0.1:2" || c.Embedded.QuotaBytes != 2e9 {
				t.Errorf("embedded etcd %+v", c.Embedded)
			}
		}},
		{name: "everything", input: `registry {
			api 0.0.0.0:80
			data /var/lib/registry
			etcd https://10.0.0.1:2379 https://10.0.0.2:2379
			etcd_tls c.pem k.pem ca.pem
			etcd_auth user secret
			etcd_prefix /reg/
			etcd_timeout 3s
			soa a.example.org. h.example.org. 1 2 3 4
			ns a.example.org 192.0.2.1 2001:db8::1
			ttl 100
			address_ttl 10
			challenge_ttl 5
			challenge_keep 4
			challenge_expiry 2h
			tunnel 192.0.2.7
			tunnel eu 192.0.2.8 2001:db8::8
			reserved Admin mail
			trusted_proxy 10.0.0.0/8 192.0.2.9
			smtp smtp.example.net:465 tls
			smtp_auth u p
			mail_from reg@example.org
			verify_url https://reg.example.org/verifyemail
			verify_ttl 1h
			reclaim_ttl 30m
			fallthrough
		}`, check: func(t *testing.T, c Config) {
			if c.APIAddr != "0.0.0.0:80" || c.DataDir != "/var/lib/registry" || len(c.Etcd.Endpoints) != 2 ||
				c.Etcd.CAFile != "ca.pem" || c.Etcd.Password != "secret" || c.Etcd.Prefix != "/reg/" || c.Etcd.Timeout != 3*time.Second {
				t.Errorf("connection settings %+v", c)
			}
			if c.SOA != (SOA{"a.example.org.", "h.example.org.", 1, 2, 3, 4}) {
				t.Errorf("SOA %+v", c.SOA)
			}
			if len(c.NS) != 1 || len(c.NS[0].Addrs) != 2 || c.TTL != 100 || c.AddressTTL != 10 || c.ChallengeTTL != 5 {
				t.Errorf("NS %v ttls %d %d %d", c.NS, c.TTL, c.AddressTTL, c.ChallengeTTL)
			}
			if c.API.ChallengeKeep != 4 || c.ChallengeExpiry != 2*time.Hour || c.API.VerifyTTL != time.Hour || c.API.ReclaimTTL != 30*time.Minute {
				t.Errorf("keep %d expiry %s", c.API.ChallengeKeep, c.ChallengeExpiry)
			}
			if len(c.Tunnels[""]) != 1 || len(c.Tunnels["EU"]) != 2 {
				t.Errorf("tunnels %v", c.Tunnels)
			}
			zone, err := NewZone(c)
			if err != nil {
				t.Fatal(err)
			}
			if reserved := c.APIConfig(zone).Reserved; !slices.Contains(reserved, "admin") || !slices.Contains(reserved, "a") {
				t.Errorf("reserved %v: want admin, mail and the NS host label a", reserved)
			}
			if !slices.Equal(c.API.TrustedProxies, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.9/32")}) {
				t.Errorf("proxies %v", c.API.TrustedProxies)
			}
			if c.SMTP.Addr != "smtp.example.net:465" || c.SMTP.Security != "tls" || c.SMTP.Username != "u" || c.SMTP.From != "reg@example.org" {
				t.Errorf("smtp %+v", c.SMTP)
			}
			if !c.Fall.Through("x.example.org.") {
				t.Error("fallthrough not set")
			}
		}},
		{name: "smtp defaults to starttls and a From in the zone", input: "registry {\nsmtp mx.example.net:587\n}", check: func(t *testing.T, c Config) {
			if c.SMTP.Security != "starttls" || c.SMTP.From != "noreply@example.org" {
				t.Errorf("smtp %+v", c.SMTP)
			}
		}},
		{name: "limits and addresses", input: "registry {\nclient_limit 30/m 10\nmail_limit off\nallow_private_addresses\nexpire 720h 168h\napi_max_concurrent 64\n}", check: func(t *testing.T, c Config) {
			if c.API.ClientLimit.Rate != 0.5 || c.API.ClientLimit.Burst != 10 || c.API.MailLimit.Rate >= 0 || !c.API.AllowPrivateAddrs {
				t.Errorf("client %+v mail %+v private %v", c.API.ClientLimit, c.API.MailLimit, c.API.AllowPrivateAddrs)
			}
			if c.Expire != 720*time.Hour || c.ExpireGrace != 168*time.Hour || c.APIMaxConcurrent != 64 {
				t.Errorf("expire %s grace %s concurrent %d", c.Expire, c.ExpireGrace, c.APIMaxConcurrent)
			}
		}},
		{name: "response rate limiting by default", input: "registry", check: func(t *testing.T, c Config) {
			want := RRL{Rate: 200, Window: time.Second, Slip: 2, Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
			if !rrlEqual(c.RRL, want) {
				t.Errorf("rrl %+v, want %+v", c.RRL, want)
			}
		}},
		{name: "response rate limiting", input: "registry {\nrrl 50 window 5s slip 3\nrrl_exempt 192.0.2.0/24 2001:db8::1\nrrl_exempt 10.1.2.3\n}", check: func(t *testing.T, c Config) {
			want := RRL{Rate: 50, Window: 5 * time.Second, Slip: 3, Exempt: []netip.Prefix{
				netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::1/128"), netip.MustParsePrefix("10.1.2.3/32")}}
			if !rrlEqual(c.RRL, want) {
				t.Errorf("rrl %+v, want %+v", c.RRL, want)
			}
		}},
		{name: "response rate limiting off, no exemption", input: "registry {\nrrl off\nrrl_exempt none\n}", check: func(t *testing.T, c Config) {
			if c.RRL.Rate != 0 || c.RRL.Exempt == nil || len(c.RRL.Exempt) != 0 || newResponseLimiter(c.RRL) != nil {
				t.Errorf("rrl %+v, want off with no exemption", c.RRL)
			}
		}},
		{name: "rrl rate not a number", input: "registry {\nrrl fast\n}", wantErr: "rate"},
		{name: "rrl rate zero", input: "registry {\nrrl 0\n}", wantErr: "rate"},
		{name: "rrl option without value", input: "registry {\nrrl 10 slip\n}", wantErr: "slip without a value"},
		{name: "rrl unknown option", input: "registry {\nrrl 10 burst 5\n}", wantErr: "unknown option"},
		{name: "rrl negative slip", input: "registry {\nrrl 10 slip -1\n}", wantErr: "slip"},
		{name: "rrl bad window", input: "registry {\nrrl 10 window 0s\n}", wantErr: "duration"},
		{name: "rrl_exempt not a prefix", input: "registry {\nrrl_exempt frontend.example\n}", wantErr: "rrl_exempt"},
		{name: "connection caps default", input: "registry", check: func(t *testing.T, c Config) {
			if c.APIMaxConns != 0 || c.APIMaxConnsPerClient != 64 {
				t.Errorf("api_max_connections %d %d, want auto 64", c.APIMaxConns, c.APIMaxConnsPerClient)
			}
		}},
		{name: "connection caps", input: "registry {\napi_max_connections 5000 16\n}", check: func(t *testing.T, c Config) {
			if c.APIMaxConns != 5000 || c.APIMaxConnsPerClient != 16 {
				t.Errorf("api_max_connections %d %d, want 5000 16", c.APIMaxConns, c.APIMaxConnsPerClient)
			}
		}},
		{name: "connection caps auto", input: "registry {\napi_max_connections auto 8\n}", check: func(t *testing.T, c Config) {
			if c.APIMaxConns != 0 || c.APIMaxConnsPerClient != 8 {
				t.Errorf("api_max_connections %d %d, want auto 8", c.APIMaxConns, c.APIMaxConnsPerClient)
			}
		}},
		{name: "dns tcp guard", input: "registry {\ndns_tcp_guard\n}", check: func(t *testing.T, c Config) {
			if !c.DNSTCPGuard {
				t.Error("dns_tcp_guard not set")
			}
		}},
		{name: "dns tcp guard with an argument", input: "registry {\ndns_tcp_guard on\n}", wantErr: "Wrong argument count"},
		{name: "connection cap of 0", input: "registry {\napi_max_connections 100 0\n}", wantErr: "not a count of at least 1"},
		{name: "connection cap not a number", input: "registry {\napi_max_connections many\n}", wantErr: "not a count of at least 1"},
		{name: "audit on by default", input: "registry", check: func(t *testing.T, c Config) {
			if c.API.AuditOff {
				t.Error("audit off by default")
			}
		}},
		{name: "audit off", input: "registry {\naudit off\n}", check: func(t *testing.T, c Config) {
			if !c.API.AuditOff {
				t.Error("audit still on")
			}
		}},
		{name: "audit neither on nor off", input: "registry {\naudit maybe\n}", wantErr: "audit: want on or off"},
		{name: "bad rate", input: "registry {\nclient_limit 3/d 1\n}", wantErr: "rate"},
		{name: "bad burst", input: "registry {\nmail_limit 1/h 0\n}", wantErr: "burst"},
		{name: "expire without grace", input: "registry {\nexpire 24h\n}", wantErr: "Wrong argument count"},
		{name: "argument count error gives the line once", input: "registry {\nexpire 24h\n}", wantErr: "Testfile:2 - Error during parsing: expire: Wrong argument count or unexpected line ending after '24h'"},
		{name: "ping granularity", input: "registry {\nping_granularity 10m\n}", check: func(t *testing.T, c Config) {
			if c.API.PingGranularity != 10*time.Minute {
				t.Errorf("ping_granularity %s", c.API.PingGranularity)
			}
		}},
		{name: "ping granularity within expire", input: "registry {\nexpire 720h 24h\nping_granularity 1h\n}", check: func(t *testing.T, c Config) {
			if c.API.PingGranularity != time.Hour {
				t.Errorf("ping_granularity %s", c.API.PingGranularity)
			}
		}},
		{name: "ping granularity default under a short expire", input: "registry {\nexpire 1h 1h\n}", check: func(t *testing.T, c Config) {
			if c.API.PingGranularity != 6*time.Minute {
				t.Errorf("ping_granularity %s, want a tenth of expire", c.API.PingGranularity)
			}
		}},
		{name: "ping granularity default under a long expire", input: "registry {\nexpire 2160h 720h\n}", check: func(t *testing.T, c Config) {
			if c.API.PingGranularity != api.DefaultPingGranularity {
				t.Errorf("ping_granularity %s, want the default %s", c.API.PingGranularity, api.DefaultPingGranularity)
			}
		}},
		{name: "write limit", input: "registry {\nwrite_limit 2/h 5\n}", check: func(t *testing.T, c Config) {
			if c.API.WriteLimit.Rate != 2.0/3600 || c.API.WriteLimit.Burst != 5 {
				t.Errorf("write_limit %+v", c.API.WriteLimit)
			}
		}},
		{name: "write limit off", input: "registry {\nwrite_limit off\n}", check: func(t *testing.T, c Config) {
			if c.API.WriteLimit.Rate >= 0 {
				t.Errorf("write_limit %+v, want off", c.API.WriteLimit)
			}
		}},
		{name: "write limit without burst", input: "registry {\nwrite_limit 1/m\n}", wantErr: "write_limit"},
		{name: "ping granularity too coarse for expire", input: "registry {\nexpire 1h 1h\nping_granularity 10m\n}", wantErr: "at most a tenth of expire"},
		{name: "ping granularity not a duration", input: "registry {\nping_granularity often\n}", wantErr: "not a positive duration"},
		{name: "api_tls with missing files", input: "registry {\napi_tls /nonexistent/c.pem /nonexistent/k.pem\n}", wantErr: "api_tls"},
		{name: "unknown property", input: "registry {\nfoo bar\n}", wantErr: "unknown property 'foo'"},
		{name: "two blocks", input: "registry\nregistry", wantErr: "only be used once"},
		{name: "bad api address", input: "registry {\napi nowhere\n}", wantErr: "api"},
		{name: "bad ns address", input: "registry {\nns ns1.example.org 300.1.1.1\n}", wantErr: "not an IP address"},
		{name: "soa with 3 fields", input: "registry {\nsoa a b 1\n}", wantErr: "soa takes"},
		{name: "bad ttl", input: "registry {\nttl -1\n}", wantErr: "seconds"},
		{name: "challenge_keep 1", input: "registry {\nchallenge_keep 1\n}", wantErr: "at least 2"},
		{name: "bad duration", input: "registry {\netcd_timeout soon\n}", wantErr: "duration"},
		{name: "etcd not a URL", input: "registry {\netcd 10.0.0.1:2379\n}", wantErr: "not a URL"},
		{name: "etcd_auth without etcd", input: "registry {\netcd_auth u p\n}", wantErr: "external etcd"},
		{name: "etcd_listen with etcd", input: "registry {\netcd http://127.0.0.1:2379\netcd_listen http://127.0.0.1:1 http://127.0.0.1:2\n}", wantErr: "embedded"},
		{name: "etcd_quota with etcd", input: "registry {\netcd http://127.0.0.1:2379\netcd_quota 1GiB\n}", wantErr: "embedded"},
		{name: "etcd_process with etcd", input: "registry {\netcd http://127.0.0.1:2379\netcd_process inline\n}", wantErr: "embedded"},
		{name: "etcd_process unknown", input: "registry {\netcd_process thread\n}", wantErr: "want child or inline"},
		{name: "etcd_quota too small", input: "registry {\netcd_quota 100KiB\n}", wantErr: "at least 1MiB"},
		{name: "etcd_quota not a size", input: "registry {\netcd_quota lots\n}", wantErr: "at least 1MiB"},
		{name: "etcd_listen not a URL", input: "registry {\netcd_listen 127.0.0.1:23790\n}", wantErr: "not a URL"},
		{name: "smtp_auth without smtp", input: "registry {\nsmtp_auth u p\n}", wantErr: "smtp server"},
		{name: "bad smtp security", input: "registry {\nsmtp mx:25 ssl\n}", wantErr: "security"},
		{name: "bad trusted proxy", input: "registry {\ntrusted_proxy proxy.example\n}", wantErr: "trusted_proxy"},
		{name: "bad verify_url", input: "registry {\nverify_url ftp://x/y\n}", wantErr: "verify_url"},
		{name: "unknown template", input: "registry {\ntemplate nope x\n}", wantErr: "unknown template"},
		{name: "missing template file", input: "registry {\ntemplate success_page /nonexistent/page.html\n}", wantErr: "template"},
		{name: "tunnel continent without address", input: "registry {\ntunnel EU\n}", wantErr: "EU without an address"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := caddy.NewTestController("dns", tc.input)
			c.ServerBlockKeys = []string{"example.org."}
			cfg, err := parse(c)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			tc.check(t, cfg)
		})
	}
}

// A credentials line with a wrong count of arguments is reported without them: the error
// goes to the log, and caddy's argument error would quote the password (or a piece of one).
func TestParseCredentialsErrorsKeepPasswordsOut(t *testing.T) {
	for _, line := range []string{
		"etcd_auth s3cretpw",
		"etcd_auth registry s3cret pw",
		"smtp_auth s3cretpw",
		"smtp_auth registry@example.org s3cret pw",
	} {
		c := caddy.NewTestController("dns", "registry {\netcd http://127.0.0.1:2379\nsmtp mx:25\n"+line+"\n}")
		c.ServerBlockKeys = []string{"example.org."}
		_, err := parse(c)
		prop, _, _ := strings.Cut(line, " ")
		if err == nil || !strings.Contains(err.Error(), prop+": want USERNAME PASSWORD") {
			t.Errorf("%s: error %v, want one saying what %s takes", line, err, prop)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "pw") {
			t.Errorf("%s: error %q quotes the password", line, err)
		}
	}
}

func rrlEqual(a, b RRL) bool {
	return a.Rate == b.Rate && a.Window == b.Window && a.Slip == b.Slip && slices.Equal(a.Exempt, b.Exempt)
}
