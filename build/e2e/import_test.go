package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/regdns/regdns/build/regdnsctl/origdbtest"
	"github.com/regdns/regdns/plugin/dnstest"
)

// ctlBinary returns the regdnsctl binary under test: $REGDNSCTL_BINARY (set by `make test`),
// or one built from build/regdnsctl.
func ctlBinary(t *testing.T) string {
	return binaryUnderTest(t, "REGDNSCTL_BINARY", "regdnsctl", "../regdnsctl")
}

// regdnsctl runs the tool with the Corefile conf and args, and returns its exit status and output.
func regdnsctl(t *testing.T, conf string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(ctlBinary(t), append([]string{"-conf", conf}, args...)...)
	out, err := cmd.CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("regdnsctl: %v", err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// importOriginal writes the original server's database with the domains (all under one
// unknown account but those with an email), imports it into the etcd of the Corefile conf
// with regdnsctl, and fails the test unless every row was imported cleanly.
func importOriginal(t *testing.T, conf string, domains []origdbtest.Domain, emails map[int64]string) string {
	t.Helper()
	accounts := []origdbtest.Account{{ID: 1, Email: "", OptOut: true}}
	for id, e := range emails {
		accounts = append(accounts, origdbtest.Account{ID: id, Email: e})
	}
	source := origdbtest.WriteSQLite(t, filepath.Join(t.TempDir(), "domains.sqlite"), accounts, domains)
	code, out := regdnsctl(t, conf, "import", source)
	want := fmt.Sprintf("summary: %d rows: imported %d, unchanged 0, conflicts 0, skipped 0", len(domains), len(domains))
	if code != 0 || !strings.Contains(out, want) {
		t.Fatalf("regdnsctl import: exit %d, want 0 and %q:\n%s", code, want, out)
	}
	return source
}

// TestImportedGateways imports the original server's database, then serves it: a gateway's old
// token works for /ping, /dnsconfig (its TXT visible through DNS) and /info, and DNS answers
// as the original did: the tunnel address in mode 0, the last address in mode 1.
func TestImportedGateways(t *testing.T) {
	addrs := dnstest.FreeAddrs(t, 4)
	dir := t.TempDir()
	_, dnsPort, _ := net.SplitHostPort(addrs[0])
	corefile := zoneBlock(dnsPort, "", fmt.Sprintf(`        api %s
        %s
        tunnel 192.0.2.80
        trusted_proxy 127.0.0.1`, addrs[1], embeddedEtcd(filepath.Join(dir, "data"), addrs[2], addrs[3])))
	conf := filepath.Join(dir, "Corefile")
	if err := os.WriteFile(conf, []byte(corefile), 0o600); err != nil {
		t.Fatal(err)
	}
	const (
		tunnelToken = "3f2a1b0c-9d8e-4f7a-8b6c-5d4e3f2a1b01"
		dynToken    = "3f2a1b0c-9d8e-4f7a-8b6c-5d4e3f2a1b02"
		dyn6Token   = "3f2a1b0c-9d8e-4f7a-8b6c-5d4e3f2a1b03"
	)
	seen := time.Now().Add(-time.Hour).Unix()
	domains := []origdbtest.Domain{
		{ID: 1, Name: "legacy.example.org.", AccountID: 2, Token: tunnelToken, Description: "legacy's server", Timestamp: seen,
			Verified: true, Continent: "NA", LastIP: "198.51.100.20"},
		{ID: 2, Name: "dynold.example.org.", AccountID: 1, Token: dynToken, Timestamp: seen, Mode: 1, LastIP: "203.0.113.9"},
		{ID: 3, Name: "dyn6old.example.org.", AccountID: 1, Token: dyn6Token, Timestamp: seen, Mode: 1, LastIP: "2001:db8::9"},
	}
	// Imported while no server runs: regdnsctl starts the embedded etcd on the data directory.
	source := importOriginal(t, conf, domains, map[int64]string{2: "owner@example.com"})
	p := runCorefile(t, dir, corefile, addrs[0], addrs[1])

	// While the server runs, regdnsctl goes through its etcd: the rerun changes nothing.
	code, out := regdnsctl(t, conf, "import", source)
	if code != 0 || !strings.Contains(out, "imported 0, unchanged 3, conflicts 0, skipped 0") || !strings.Contains(out, "using the running server's embedded etcd") {
		t.Errorf("rerun while serving: exit %d:\n%s", code, out)
	}
	if code, out := regdnsctl(t, conf, "check"); code != 0 {
		t.Errorf("check: exit %d:\n%s", code, out)
	}

	answers := func(qname string, qtype uint16) []string {
		t.Helper()
		var out []string
		for _, rr := range p.query("udp", qname, qtype).Answer {
			out = append(out, strings.TrimPrefix(rr.String(), rr.Header().String()))
		}
		return out
	}
	for _, tt := range []struct {
		qname string
		qtype uint16
		want  string
	}{
		{"legacy.example.org.", dns.TypeA, "[192.0.2.80]"}, // tunnel mode: the tunnel, not last_ip
		{"dynold.example.org.", dns.TypeA, "[203.0.113.9]"},
		{"dyn6old.example.org.", dns.TypeAAAA, "[2001:db8::9]"},
		{"dyn6old.example.org.", dns.TypeA, "[]"},
	} {
		if got := fmt.Sprint(answers(tt.qname, tt.qtype)); got != tt.want {
			t.Errorf("%s %s: %s, want %s", tt.qname, dns.TypeToString[tt.qtype], got, tt.want)
		}
	}

	tok := url.Values{"token": {tunnelToken}}
	p.ok("/ping", tok)
	p.ok("/dnsconfig", url.Values{"token": {tunnelToken}, "challenge": {"imported-challenge"}})
	if got := fmt.Sprint(answers("_acme-challenge.legacy.example.org.", dns.TypeTXT)); got != `["imported-challenge"]` {
		t.Errorf("challenge TXT: %s", got)
	}
	var info struct {
		Name, Email, Continent, Description string
		Verified                            bool
		Timestamp                           int64
	}
	if err := json.Unmarshal([]byte(p.ok("/info", tok)), &info); err != nil {
		t.Fatal(err)
	}
	if info.Name != "legacy" || info.Email != "owner@example.com" || !info.Verified || info.Continent != "NA" ||
		info.Description != "legacy's server" || info.Timestamp != seen {
		t.Errorf("/info: %+v", info)
	}
	if strings.Contains(p.log.String(), tunnelToken) {
		t.Error("the token appears in coredns's log")
	}
}
