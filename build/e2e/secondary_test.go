package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/regdns/regdns/plugin/dnstest"
)

// Debian's NSD as a secondary of the zone: it transfers the zone from ./coredns with AXFR (the
// transfer plugin) and must then answer exactly what ./coredns answers; the registry plugin sends
// it a NOTIFY through the transfer plugin when the zone changes.

func TestSecondaryAXFR(t *testing.T) {
	if _, err := exec.LookPath("nsd"); err != nil {
		t.Fatal("nsd is required (make test installs Debian's nsd package)")
	}
	nsdAddr := dnstest.FreeAddrs(t, 1)[0]
	p := startServer(t, "    transfer {\n        to "+nsdAddr+"\n    }", `        ns ns1.example.org 127.0.0.1
        tunnel 192.0.2.80
        record @ CAA 0 issue letsencrypt.org
        trusted_proxy 127.0.0.1`)

	subscribe := func(name string) string {
		t.Helper()
		var sub struct{ Token string }
		if err := jsonInto(p.ok("/subscribe", url.Values{"name": {name}}), &sub); err != nil || sub.Token == "" {
			t.Fatalf("subscribe %s: %v", name, err)
		}
		return sub.Token
	}
	alpha := subscribe("alpha")
	p.ok("/dnsconfig", url.Values{"token": {alpha}, "challenge": {"alpha-challenge"}})
	beta := subscribe("beta")
	p.ok("/dnsconfig", url.Values{"token": {beta}, "challenge": {"beta-1"}})
	p.ok("/dnsconfig", url.Values{"token": {beta}, "challenge": {"beta-2"}})
	// gamma is in dynamic-DNS mode, at the address it pinged from (through the trusted proxy).
	var sub struct{ Token string }
	if err := jsonInto(p.ok("/subscribe", url.Values{"name": {"gamma"}, "mode": {"1"}}), &sub); err != nil {
		t.Fatal(err)
	}
	if code, body := p.call("/ping", url.Values{"token": {sub.Token}}, http.Header{"X-Forwarded-For": {"203.0.113.9"}}); code != 200 {
		t.Fatalf("ping: %d %s", code, body)
	}
	p.ok("/dnsconfig", url.Values{"token": {sub.Token}, "challenge": {"gamma-challenge"}})

	nsd := startNSD(t, nsdAddr, p.dns)
	nsd.waitSerial(p)
	// same checks that NSD answers exactly as ./coredns does: the apex, a nonexistent name and
	// the names' addresses and challenges.
	same := func(names ...string) {
		t.Helper()
		type question struct {
			name  string
			qtype uint16
		}
		qs := []question{{"example.org.", dns.TypeSOA}, {"example.org.", dns.TypeNS}, {"example.org.", dns.TypeCAA},
			{"ns1.example.org.", dns.TypeA}, {"nothing.example.org.", dns.TypeA}}
		for _, n := range names {
			qs = append(qs, question{n + ".example.org.", dns.TypeA}, question{"_acme-challenge." + n + ".example.org.", dns.TypeTXT})
		}
		for _, q := range qs {
			ours, theirs := p.query("tcp", q.name, q.qtype), nsd.query(q.name, q.qtype)
			if ours.Rcode != theirs.Rcode || !slices.Equal(sortedRRs(ours.Answer), sortedRRs(theirs.Answer)) {
				t.Errorf("%s %s: coredns %s %v, nsd %s %v", q.name, dns.TypeToString[q.qtype],
					dns.RcodeToString[ours.Rcode], ours.Answer, dns.RcodeToString[theirs.Rcode], theirs.Answer)
			}
		}
	}
	same("alpha", "beta", "gamma")
	if got := rdata(nsd.query("beta.example.org.", dns.TypeA), dns.TypeA); len(got) != 1 || got[0] != "192.0.2.80" {
		t.Errorf("nsd beta A: %v", got)
	}
	if got := rdata(nsd.query("_acme-challenge.beta.example.org.", dns.TypeTXT), dns.TypeTXT); len(got) != 2 {
		t.Errorf("nsd beta challenges: %v", got)
	}
	if got := rdata(nsd.query("gamma.example.org.", dns.TypeA), dns.TypeA); len(got) != 1 || got[0] != "203.0.113.9" {
		t.Errorf("nsd gamma A: %v", got)
	}

	// AXFR is only for the addresses in transfer's "to".
	if rc := axfrRcode(t, "127.0.0.2", p.dns); rc != dns.RcodeRefused {
		t.Errorf("AXFR from 127.0.0.2: %s, want REFUSED", dns.RcodeToString[rc])
	}

	// A new name reaches the secondary through the plugin's NOTIFY: with the SOA refresh at
	// 3600 s, nothing else would make NSD transfer again within the wait.
	delta := subscribe("delta")
	p.ok("/dnsconfig", url.Values{"token": {delta}, "challenge": {"delta-challenge"}})
	changed := time.Now()
	nsd.waitSerial(p)
	t.Logf("nsd serves the new serial %s after the change", time.Since(changed).Round(time.Millisecond))
	same("alpha", "beta", "gamma", "delta")
	if got := rdata(nsd.query("_acme-challenge.delta.example.org.", dns.TypeTXT), dns.TypeTXT); len(got) != 1 || got[0] != `"delta-challenge"` {
		t.Errorf("nsd delta challenge: %q", got)
	}
}

// sortedRRs returns rrs as text, sorted, for comparing answers.
func sortedRRs(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, rr.String())
	}
	slices.Sort(out)
	return out
}

// axfrRcode asks server for an AXFR of the zone from the local address src and returns the rcode.
func axfrRcode(t *testing.T, src, server string) int {
	c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}).Dial("tcp", server)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	m := new(dns.Msg)
	m.SetAxfr("example.org.")
	co := &dns.Conn{Conn: c}
	if err := co.WriteMsg(m); err != nil {
		t.Fatal(err)
	}
	r, err := co.ReadMsg()
	if err != nil {
		t.Fatalf("AXFR from %s: %v", src, err)
	}
	return r.Rcode
}

type secondary struct {
	t    *testing.T
	addr string
	log  string
}

// startNSD runs NSD on addr as a secondary of example.org, transferring it from primary.
func startNSD(t *testing.T, addr, primary string) *secondary {
	dir := t.TempDir()
	host, port, _ := net.SplitHostPort(addr)
	phost, pport, _ := net.SplitHostPort(primary)
	conf := fmt.Sprintf(`server:
    ip-address: %[1]s@%[2]s
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "%[3]s"
    database: ""
    zonelistfile: "%[3]s/zone.list"
    xfrdfile: "%[3]s/xfrd.state"
    xfrdir: "%[3]s"
    pidfile: "%[3]s/nsd.pid"
    logfile: "%[3]s/nsd.log"
    verbosity: 2
    server-count: 1
remote-control:
    control-enable: no
zone:
    name: example.org
    zonefile: example.org.zone
    request-xfr: AXFR %[4]s@%[5]s NOKEY
    allow-notify: %[4]s NOKEY
`, host, port, dir, phost, pport)
	cf := filepath.Join(dir, "nsd.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &secondary{t: t, addr: addr, log: filepath.Join(dir, "nsd.log")}
	startDaemonProc(t, exec.Command("nsd", "-d", "-c", cf))
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(s.log)
			t.Logf("nsd log:\n%s", b)
		}
	})
	return s
}

func (s *secondary) query(qname string, qtype uint16) *dns.Msg {
	s.t.Helper()
	return dnstest.Ask(s.t, "tcp", s.addr, qname, qtype)
}

// waitSerial waits until NSD serves the zone with the primary's current SOA serial.
func (s *secondary) waitSerial(p *product) {
	s.t.Helper()
	want := p.query("tcp", "example.org.", dns.TypeSOA).Answer[0].(*dns.SOA).Serial
	var got uint32
	waitUntil(s.t, 20*time.Second, fmt.Sprintf("SOA serial %d on nsd", want), func() bool {
		r, err := dnstest.Exchange("udp", s.addr, "example.org.", dns.TypeSOA)
		if err == nil && len(r.Answer) == 1 {
			got = r.Answer[0].(*dns.SOA).Serial
		}
		return got == want
	})
}
