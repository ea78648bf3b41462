package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/template"

	"github.com/miekg/dns"

	"github.com/regdns/regdns/plugin/registry"
)

func TestCorefileFromConfig(t *testing.T) {
	for _, withTemplates := range []bool{false, true} {
		dir := t.TempDir()
		args := []string{"corefile", "--from", "testdata/config.toml"}
		if withTemplates {
			args = append(args, "-templates", filepath.Join(dir, "templates"))
		}
		code, out, stderr := regdnsctl(args...)
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		for _, w := range []string{
			"# NOT TRANSLATED: pdns.socket_path (no equivalent)",
			"# NOT TRANSLATED: pdns.api_ttl = 1",
			"# NOT TRANSLATED: txt_records [outside.example.net. not ours]",
			"# NOT TRANSLATED: pdns.geoip.continent.XX = 9.9.9.9",
			"# CHECK: the original's SOA serial was 1476196782",
			"# data: import the names with `regdnsctl -conf THIS_COREFILE import sqlite:./domains.sqlite`",
			"smtp_auth accounts@mydomain.org {$REGDNS_SMTP_PASSWORD}",
		} {
			if !strings.Contains(out, w) {
				t.Errorf("templates %v: no %q in:\n%s", withTemplates, w, out)
			}
		}
		if strings.Contains(out, "hunter2") {
			t.Error("the SMTP password is copied into the Corefile")
		}
		if got := strings.Contains(out, "NOT TRANSLATED: the reclaim_body text"); got == withTemplates {
			t.Errorf("templates %v: reclaim_body flagged as not translated: %v", withTemplates, got)
		}

		// The output must parse with the plugin's own parser, and say what config.toml said.
		conf := filepath.Join(dir, "Corefile")
		if err := os.WriteFile(conf, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("REGDNS_SMTP_PASSWORD", "from-the-environment")
		cfg, err := registryConfig(conf, "")
		if err != nil {
			t.Fatalf("the converted Corefile does not parse: %v\n%s", err, out)
		}
		checkConverted(t, cfg)
		if withTemplates {
			checkTemplates(t, cfg)
		}
	}
}

func checkConverted(t *testing.T, cfg registry.Config) {
	t.Helper()
	if cfg.Zones[0] != "mydomain.org." || cfg.TTL != 86400 || cfg.AddressTTL != 60 || cfg.APIAddr != "127.0.0.1:81" {
		t.Errorf("zone %v ttl %d address_ttl %d api %s", cfg.Zones, cfg.TTL, cfg.AddressTTL, cfg.APIAddr)
	}
	if len(cfg.NS) != 2 || cfg.NS[1].Name != "ns2.mydomain.org." || len(cfg.NS[1].Addrs) != 2 {
		t.Errorf("ns %+v", cfg.NS)
	}
	if s := cfg.SOA; s.Mname != "ns1.mydomain.org." || s.Refresh != 10800 || s.Retry != 3600 || s.Expire != 604800 || s.Minimum != 3600 {
		t.Errorf("soa %+v", s)
	}
	zone, err := registry.NewZone(cfg)
	if err != nil {
		t.Fatal(err)
	}
	static := func(owner string, qtype uint16) []string {
		var out []string
		for _, rr := range zone.Static[owner][qtype] {
			out = append(out, strings.TrimPrefix(rr.String(), rr.Header().String()))
		}
		return out
	}
	for _, tt := range []struct {
		owner string
		qtype uint16
		want  []string
	}{
		{"mydomain.org.", dns.TypeCAA, []string{`0 issue "letsencrypt.org"`}},
		{"mydomain.org.", dns.TypeMX, []string{"10 mail.mydomain.org."}},
		{"mydomain.org.", dns.TypeTXT, []string{`"v=spf1 include:_spf.example.net -all"`}},
		{"_psl.mydomain.org.", dns.TypeTXT, []string{`"https://github.com/publicsuffix/list/pull/1234"`}},
		{"docs.mydomain.org.", dns.TypeCNAME, []string{"mydomain.github.io."}},
		{"www.mydomain.org.", dns.TypeA, []string{"1.2.3.4"}},
		{"www.mydomain.org.", dns.TypeAAAA, []string{"2001:db8::80"}},
	} {
		if got := static(tt.owner, tt.qtype); !slices.Equal(got, tt.want) {
			t.Errorf("%s %s: %q, want %q", tt.owner, dns.TypeToString[tt.qtype], got, tt.want)
		}
	}
	tunnels := map[string][]netip.Addr{"": {netip.MustParseAddr("5.6.7.8")}, "AF": {netip.MustParseAddr("1.2.3.4")}, "EU": {netip.MustParseAddr("5.6.7.8")}}
	if len(cfg.Tunnels) != len(tunnels) {
		t.Errorf("tunnels %v, want %v", cfg.Tunnels, tunnels)
	}
	for k, v := range tunnels {
		if !slices.Equal(cfg.Tunnels[k], v) {
			t.Errorf("tunnel %q: %v, want %v", k, cfg.Tunnels[k], v)
		}
	}
	if cfg.GeoIP != "GEOIP_DATABASE" || cfg.SMTP.Addr != "mail.example.net:465" || cfg.SMTP.Security != "tls" ||
		cfg.SMTP.Username != "accounts@mydomain.org" || cfg.SMTP.Password != "from-the-environment" || cfg.SMTP.From != "accounts@mydomain.org" {
		t.Errorf("geoip %q smtp %+v", cfg.GeoIP, cfg.SMTP)
	}
}

// checkTemplates: the converted mail texts and pages are valid templates with our fields.
func checkTemplates(t *testing.T, cfg registry.Config) {
	t.Helper()
	tpl := cfg.API.Templates
	want := map[string]struct{ got, want string }{
		"reclaim_subject": {tpl.ReclaimSubject, "Reclaim your gateway's domain"},
		"reclaim_body":    {tpl.ReclaimBody, "Hello,\n\nYour reclamation token for {{.Domain}} is: {{.Token}}\n\nIf you did not ask for it, ignore this mail."},
		"verify_subject":  {tpl.VerifySubject, "Welcome to your gateway"},
		"verify_body":     {tpl.VerifyBody, "Hello,\nPlease confirm your email for {{.Domain}} by opening {{.Link}}.\n"},
		"success_page":    {tpl.SuccessPage, "<!DOCTYPE html><html><body><p>Thank you for verifying your email.</p></body></html>"},
		"error_page":      {tpl.ErrorPage, "<!DOCTYPE html><html><body><p>An error happened while verifying your email.</p></body></html>"},
	}
	for kind, c := range want {
		if c.got != c.want {
			t.Errorf("%s: %q, want %q", kind, c.got, c.want)
		}
		var b strings.Builder
		data := struct{ Domain, Token, Link string }{"demo.mydomain.org", "the-token", "the-link"}
		if err := template.Must(template.New(kind).Parse(c.got)).Execute(&b, data); err != nil {
			t.Errorf("%s: %v", kind, err)
		}
	}
}
