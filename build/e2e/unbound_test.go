package e2e

import (
	"context"
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
	"github.com/regdns/regdns/plugin/dnstest"
)

// A real recursive resolver in the path: Debian's unbound, with a stub zone pointing at
// ./coredns, strict QNAME minimisation and DNSSEC validation against the zone's own key, which
// CoreDNS's dnssec plugin signs with online.

// zoneKey writes a KSK/ZSK for zone in dir, in the K<zone>+013+<tag> files the dnssec plugin
// reads, and returns the file base name and the DNSKEY as a trust anchor.
func zoneKey(t *testing.T, dir, zone string) (string, string) {
	key := &dns.DNSKEY{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags: 257, Protocol: 3, Algorithm: dns.ECDSAP256SHA256}
	priv, err := key.Generate(256)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, fmt.Sprintf("K%s+%03d+%05d", zone, key.Algorithm, key.KeyTag()))
	if err := os.WriteFile(base+".key", []byte(key.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(base+".private", []byte(key.PrivateKeyString(priv)), 0o600); err != nil {
		t.Fatal(err)
	}
	return base, key.String()
}

type resolver struct {
	t    *testing.T
	addr string
}

// startUnbound runs unbound on a free loopback port with a stub zone for zone at upstream.
func startUnbound(t *testing.T, zone, upstream, anchor string) *resolver {
	if _, err := exec.LookPath("unbound"); err != nil {
		t.Fatal("unbound is required (make test installs Debian's unbound package)")
	}
	dir := t.TempDir()
	addr := dnstest.FreeUDPAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	uhost, uport, _ := net.SplitHostPort(upstream)
	conf := fmt.Sprintf(`server:
    interface: %s@%s
    port: %s
    do-daemonize: no
    use-syslog: no
    logfile: ""
    verbosity: 1
    username: ""
    chroot: ""
    directory: "%s"
    pidfile: "%s/unbound.pid"
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    do-ip6: no
    qname-minimisation: yes
    qname-minimisation-strict: yes
    module-config: "validator iterator"
    trust-anchor: "%s"
    val-log-level: 2
    cache-min-ttl: 0
remote-control:
    control-enable: no
stub-zone:
    name: "%s"
    stub-addr: %s@%s
`, host, port, port, dir, dir, anchor, zone, uhost, uport)
	cf := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "unbound", "-d", "-c", cf)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("unbound output:\n%s", out.String())
		}
	})
	r := &resolver{t: t, addr: addr}
	deadline := time.Now().Add(15 * time.Second)
	for {
		m := new(dns.Msg)
		m.SetQuestion(zone, dns.TypeSOA)
		if _, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, addr); err == nil {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("unbound did not answer:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ask queries the resolver with DNSSEC OK and returns the answer.
func (r *resolver) ask(qname string, qtype uint16) *dns.Msg {
	r.t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(qname, qtype)
	m.SetEdns0(1232, true)
	resp, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, r.addr)
	if err != nil {
		r.t.Fatalf("unbound %s %s: %v", qname, dns.TypeToString[qtype], err)
	}
	return resp
}

// rdata returns the answer's records of qtype, as text after the header.
func rdata(m *dns.Msg, qtype uint16) []string {
	var out []string
	for _, rr := range m.Answer {
		if rr.Header().Rrtype == qtype {
			out = append(out, strings.TrimPrefix(rr.String(), rr.Header().String()))
		}
	}
	return out
}

func TestUnboundStubZone(t *testing.T) {
	const zone = "example.org."
	keyBase, anchor := zoneKey(t, t.TempDir(), zone)
	p := startServer(t, "    dnssec {\n        key file "+keyBase+"\n    }", `        ns ns1.example.org 127.0.0.1
        soa ns1.example.org hostmaster.example.org 3600 600 604800 2
        tunnel 192.0.2.80
        record @ CAA 0 issue letsencrypt.org
        trusted_proxy 127.0.0.1`)
	u := startUnbound(t, zone, p.dns, anchor)

	secure := func(m *dns.Msg, what string) {
		t.Helper()
		if !m.AuthenticatedData {
			t.Errorf("%s: not validated (AD=0): %v", what, m)
		}
	}

	// A name asked before it exists is cached as nonexistent for at most the SOA minimum (2 s).
	if m := u.ask("fresh.example.org.", dns.TypeA); len(m.Answer) != 0 || m.Rcode == dns.RcodeServerFailure {
		t.Fatalf("fresh before subscribe: %v", m)
	} else {
		secure(m, "denial of fresh.example.org")
	}
	registered := time.Now()
	var sub struct{ Token string }
	code, body := p.call("/subscribe", url.Values{"name": {"fresh"}}, nil)
	if code != 200 || jsonInto(body, &sub) != nil {
		t.Fatalf("subscribe: %d %s", code, body)
	}
	for {
		m := u.ask("fresh.example.org.", dns.TypeA)
		if got := rdata(m, dns.TypeA); len(got) == 1 && got[0] == "192.0.2.80" {
			secure(m, "fresh A")
			break
		}
		if time.Since(registered) > 2*time.Second+3*time.Second {
			t.Fatalf("fresh name still hidden %s after subscribe (SOA minimum 2s): %v", time.Since(registered), m)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("fresh name visible through unbound %s after subscribe", time.Since(registered).Round(time.Millisecond))

	// The challenge, set after its name was asked (and denied), appears within the SOA minimum.
	if m := u.ask("_acme-challenge.fresh.example.org.", dns.TypeTXT); len(m.Answer) != 0 {
		t.Fatalf("challenge before dnsconfig: %v", m)
	}
	set := time.Now()
	p.ok("/dnsconfig", url.Values{"token": {sub.Token}, "challenge": {"value-1"}})
	p.ok("/dnsconfig", url.Values{"token": {sub.Token}, "challenge": {"value-2"}})
	for {
		m := u.ask("_acme-challenge.fresh.example.org.", dns.TypeTXT)
		if got := rdata(m, dns.TypeTXT); len(got) == 2 {
			secure(m, "challenge TXT")
			break
		}
		if time.Since(set) > 2*time.Second+3*time.Second {
			t.Fatalf("challenge still hidden %s after dnsconfig: %v", time.Since(set), m)
		}
		time.Sleep(200 * time.Millisecond)
	}

	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		rcodes []int // acceptable rcodes
		want   []string
	}{
		{"apex CAA", zone, dns.TypeCAA, []int{dns.RcodeSuccess}, []string{`0 issue "letsencrypt.org"`}},
		{"CAA at a registered name is NODATA", "fresh.example.org.", dns.TypeCAA, []int{dns.RcodeSuccess}, nil},
		{"AAAA NODATA", "fresh.example.org.", dns.TypeAAAA, []int{dns.RcodeSuccess}, nil},
		{"NS host", "ns1.example.org.", dns.TypeA, []int{dns.RcodeSuccess}, []string{"127.0.0.1"}},
		// The dnssec plugin denies with NSEC "black lies": a signed NXDOMAIN becomes a validated
		// NODATA whose NSEC covers only the name asked.
		{"nonexistent", "nothing.example.org.", dns.TypeA, []int{dns.RcodeSuccess}, nil},
		{"below a registered name", "deep.fresh.example.org.", dns.TypeTXT, []int{dns.RcodeSuccess}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := u.ask(tc.qname, tc.qtype)
			ok := false
			for _, rc := range tc.rcodes {
				ok = ok || m.Rcode == rc
			}
			if !ok {
				t.Fatalf("rcode %s: %v", dns.RcodeToString[m.Rcode], m)
			}
			if got := rdata(m, tc.qtype); strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("answer %q, want %q", got, tc.want)
			}
			secure(m, tc.name)
		})
	}
}
