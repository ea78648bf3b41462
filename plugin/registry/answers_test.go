package registry

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"

	"github.com/regdns/regdns/api/geoip"
	"github.com/regdns/regdns/api/geoip/geoiptest"
	"github.com/regdns/regdns/etcdstore"
	"github.com/regdns/regdns/plugin/registry/kitetest"
)

// The zone of the answer tables: the conformance suite's (build/e2e/conformance_test.go), served
// from records in memory instead of etcd.
const answersCorefile = `registry {
	ns ns1.example.org 192.0.2.53 2001:db8::53
	ns ns2.dns.example.org 192.0.2.54
	soa ns1.example.org hostmaster.example.org 7200 900 1209600 300
	ttl 3600
	address_ttl 120
	challenge_ttl 45
	record @ CAA 0 issue letsencrypt.org
	record @ MX 10 mail
	record @ TXT "v=spf1 -all"
	record @ A 192.0.2.100
	record _psl TXT "https://github.com/publicsuffix/list/pull/1"
	record www CNAME @
	record ext CNAME target.example.net.
	record _dmarc.mail TXT "v=DMARC1; p=reject"
	tunnel 192.0.2.1
	tunnel EU 192.0.2.2
	api_address 192.0.2.10
	api_address EU 192.0.2.20
}`

const (
	answersSerial = 2026113001
	// negSOA is the SOA of negative answers: its TTL is min(ttl 3600, SOA minimum 300), RFC 2308.
	negSOA = "example.org. 300 IN SOA ns1.example.org. hostmaster.example.org. 2026113001 7200 900 1209600 300"
	kiteOK = "255.255.254.255"
	kiteNo = "255.255.255.1"
)

// answersRegistry is a handler for answersCorefile over records, with a GeoIP database that
// places 198.51.100.0/24 and 2001:db8:e0::/48 in Europe and 203.0.113.0/24 in North America.
func answersRegistry(t *testing.T, records ...*etcdstore.Record) *Registry {
	t.Helper()
	r := registryFor(t, answersCorefile)
	r.view.Store(etcdstore.StaticView(answersSerial, records...))
	geo, err := geoip.Open(geoiptest.Write(t, "GeoLite2-Country", map[string]geoiptest.Place{
		"198.51.100.0/24": {Continent: "EU"}, "2001:db8:e0::/48": {Continent: "EU"}, "203.0.113.0/24": {Continent: "NA"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { geo.Close() })
	r.geo.Store(geo)
	return r
}

// registryFor is a handler for the registry block corefile in example.org, not started.
func registryFor(tb testing.TB, corefile string) *Registry {
	tb.Helper()
	c := caddy.NewTestController("dns", corefile)
	c.ServerBlockKeys = []string{"example.org."}
	cfg, err := parse(c)
	if err != nil {
		tb.Fatal(err)
	}
	zone, err := NewZone(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return New(cfg, zone)
}

// answersRecords are the registered names of the tables.
func answersRecords() []*etcdstore.Record {
	now := time.Now()
	demo := &etcdstore.Record{Name: "demo", Token: "token-demo", Created: now}
	demo.AddChallenge("chal-base", now, 12)
	demo.AddChallenge("chal-wild", now, 12)
	old := &etcdstore.Record{Name: "old", Token: "token-old", Created: now}
	old.AddChallenge("too-old", now.Add(-48*time.Hour), 12)
	banned := &etcdstore.Record{Name: "banned", Token: "token-banned", Created: now}
	banned.AddChallenge("banned-value", now, 12)
	banned.Disable("abuse", now)
	return []*etcdstore.Record{
		demo, old, banned,
		{Name: "dyn", Token: "token-dyn", Mode: etcdstore.ModeDynamic, IPv4: netip.MustParseAddr("203.0.113.50"), Created: now},
		{Name: "dyn6", Token: "token-dyn6", Mode: etcdstore.ModeDynamic, IPv6: netip.MustParseAddr("2001:db8::50"), Created: now},
		{Name: "geo-eu", Token: "token-eu", Continent: "EU", Created: now},
		{Name: "geo-na", Token: "token-na", Continent: "NA", Created: now},
		{Name: "kite", Token: "token-kite", Created: now},
		{Name: "kite-other", Token: "token-other", Created: now},
	}
}

// rrs parses records written in zone-file syntax.
func rrs(t *testing.T, lines ...string) []dns.RR {
	t.Helper()
	out := make([]dns.RR, len(lines))
	for i, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		out[i] = rr
	}
	return out
}

// checkReply compares a reply with tc: rcode, AA, and every section record by record, whole
// (test.SortAndCheck compares only some fields of some types).
func checkReply(t *testing.T, tc test.Case, m *dns.Msg) {
	t.Helper()
	what := tc.Qname + " " + dns.TypeToString[tc.Qtype]
	if err := test.Header(tc, m); err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	if !m.Authoritative {
		t.Errorf("%s: AA clear", what)
	}
	for _, s := range []struct {
		name      string
		got, want []dns.RR
	}{{"answer", m.Answer, tc.Answer}, {"authority", m.Ns, tc.Ns}, {"additional", m.Extra, tc.Extra}} {
		if got, want := rrStrings(s.got), rrStrings(s.want); !slices.Equal(got, want) {
			t.Errorf("%s: %s section\n\t%s\nwant\n\t%s", what, s.name, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
		}
	}
}

// serve runs m through r.ServeDNS from client (an address) and returns the reply written.
func serve(t *testing.T, r *Registry, m *dns.Msg, client string) *dns.Msg {
	t.Helper()
	rec := dnstest.NewRecorder(&test.ResponseWriter{RemoteIP: client})
	if _, err := r.ServeDNS(context.Background(), rec, m); err != nil {
		t.Fatalf("%s: %v", m.Question[0].Name, err)
	}
	if rec.Msg == nil {
		t.Fatalf("%s: no reply written", m.Question[0].Name)
	}
	return rec.Msg
}

// Every answer rule of the conformance suite's records, as table rows.
func TestAnswerTable(t *testing.T) {
	r := answersRegistry(t, answersRecords()...)
	apexA := "example.org. 3600 IN A 192.0.2.100"
	wwwCNAME := "www.example.org. 3600 IN CNAME example.org."
	extCNAME := "ext.example.org. 3600 IN CNAME target.example.net."
	apexNS := []string{"example.org. 3600 IN NS ns1.example.org.", "example.org. 3600 IN NS ns2.dns.example.org."}
	glue := []string{"ns1.example.org. 3600 IN A 192.0.2.53", "ns1.example.org. 3600 IN AAAA 2001:db8::53", "ns2.dns.example.org. 3600 IN A 192.0.2.54"}
	nx := dns.RcodeNameError
	type row struct {
		qname             string
		qtype             uint16
		rcode             int
		answer, ns, extra []string
	}
	nodata := []string{negSOA}
	for _, c := range []row{
		// The zone's own records.
		{"example.org.", dns.TypeSOA, 0, []string{"example.org. 3600 IN SOA ns1.example.org. hostmaster.example.org. 2026113001 7200 900 1209600 300"}, nil, nil},
		{"example.org.", dns.TypeNS, 0, apexNS, nil, glue},
		{"example.org.", dns.TypeCAA, 0, []string{`example.org. 3600 IN CAA 0 issue "letsencrypt.org"`}, nil, nil},
		{"example.org.", dns.TypeMX, 0, []string{"example.org. 3600 IN MX 10 mail.example.org."}, nil, nil},
		{"example.org.", dns.TypeTXT, 0, []string{`example.org. 3600 IN TXT "v=spf1 -all"`}, nil, nil},
		{"example.org.", dns.TypeA, 0, []string{apexA}, nil, nil},
		{"example.org.", dns.TypeAAAA, 0, nil, nodata, nil},
		{"example.org.", dns.TypeSRV, 0, nil, nodata, nil},
		{"ExAmPlE.oRg.", dns.TypeA, 0, []string{"ExAmPlE.oRg. 3600 IN A 192.0.2.100"}, nil, nil},
		{"_psl.example.org.", dns.TypeTXT, 0, []string{`_psl.example.org. 3600 IN TXT "https://github.com/publicsuffix/list/pull/1"`}, nil, nil},
		{"_psl.example.org.", dns.TypeA, 0, nil, nodata, nil},
		// CNAMEs: followed inside the zone, not outside it, not for CNAME or ANY.
		{"www.example.org.", dns.TypeA, 0, []string{wwwCNAME, apexA}, nil, nil},
		{"www.example.org.", dns.TypeAAAA, 0, []string{wwwCNAME}, nodata, nil},
		{"www.example.org.", dns.TypeCNAME, 0, []string{wwwCNAME}, nil, nil},
		{"www.example.org.", dns.TypeTXT, 0, []string{wwwCNAME, `example.org. 3600 IN TXT "v=spf1 -all"`}, nil, nil},
		{"www.example.org.", dns.TypeANY, 0, []string{wwwCNAME}, nil, nil},
		{"WWW.example.org.", dns.TypeA, 0, []string{"WWW.example.org. 3600 IN CNAME example.org.", apexA}, nil, nil},
		{"ext.example.org.", dns.TypeA, 0, []string{extCNAME}, nil, nil},
		{"ext.example.org.", dns.TypeAAAA, 0, []string{extCNAME}, nil, nil},
		{"ext.example.org.", dns.TypeCNAME, 0, []string{extCNAME}, nil, nil},
		{"x.www.example.org.", dns.TypeA, nx, nil, nodata, nil},
		// Empty non-terminals exist, with no records.
		{"dns.example.org.", dns.TypeA, 0, nil, nodata, nil},
		{"dns.example.org.", dns.TypeNS, 0, nil, nodata, nil},
		{"mail.example.org.", dns.TypeA, 0, nil, nodata, nil},
		{"mail.example.org.", dns.TypeMX, 0, nil, nodata, nil},
		{"_dmarc.mail.example.org.", dns.TypeTXT, 0, []string{`_dmarc.mail.example.org. 3600 IN TXT "v=DMARC1; p=reject"`}, nil, nil},
		// Name servers' addresses.
		{"ns1.example.org.", dns.TypeA, 0, []string{"ns1.example.org. 3600 IN A 192.0.2.53"}, nil, nil},
		{"ns1.example.org.", dns.TypeAAAA, 0, []string{"ns1.example.org. 3600 IN AAAA 2001:db8::53"}, nil, nil},
		{"ns2.dns.example.org.", dns.TypeA, 0, []string{"ns2.dns.example.org. 3600 IN A 192.0.2.54"}, nil, nil},
		{"ns2.dns.example.org.", dns.TypeAAAA, 0, nil, nodata, nil},
		{"nosuch.example.org.", dns.TypeA, nx, nil, nodata, nil},
		{"deep.nosuch.example.org.", dns.TypeTXT, nx, nil, nodata, nil},
		{"ns3.example.org.", dns.TypeA, nx, nil, nodata, nil},
		// A registered name: its address, nothing else; nothing below it but its challenge.
		{"demo.example.org.", dns.TypeA, 0, []string{"demo.example.org. 120 IN A 192.0.2.1"}, nil, nil},
		{"DeMo.example.org.", dns.TypeA, 0, []string{"DeMo.example.org. 120 IN A 192.0.2.1"}, nil, nil},
		{"demo.example.org.", dns.TypeAAAA, 0, nil, nodata, nil},
		{"demo.example.org.", dns.TypeCAA, 0, nil, nodata, nil},
		{"demo.example.org.", dns.TypeTXT, 0, nil, nodata, nil},
		{"demo.example.org.", dns.TypeMX, 0, nil, nodata, nil},
		{"demo.example.org.", dns.TypeCNAME, 0, nil, nodata, nil},
		{"demo.example.org.", dns.TypeANY, 0, []string{"demo.example.org. 120 IN A 192.0.2.1"}, nil, nil},
		{"x.demo.example.org.", dns.TypeA, nx, nil, nodata, nil},
		{"x.demo.example.org.", dns.TypeCAA, nx, nil, nodata, nil},
		{"x.demo.example.org.", dns.TypeANY, nx, nil, nodata, nil},
		{"a.b.demo.example.org.", dns.TypeA, nx, nil, nodata, nil},
		// Challenges: the live values; the name exists as long as its registered name does.
		{"_acme-challenge.demo.example.org.", dns.TypeTXT, 0, []string{
			`_acme-challenge.demo.example.org. 45 IN TXT "chal-base"`, `_acme-challenge.demo.example.org. 45 IN TXT "chal-wild"`}, nil, nil},
		{"_ACME-challenge.demo.example.org.", dns.TypeANY, 0, []string{
			`_ACME-challenge.demo.example.org. 45 IN TXT "chal-base"`, `_ACME-challenge.demo.example.org. 45 IN TXT "chal-wild"`}, nil, nil},
		{"_acme-challenge.demo.example.org.", dns.TypeA, 0, nil, nodata, nil},
		{"_acme-challenge.demo.example.org.", dns.TypeCAA, 0, nil, nodata, nil},
		{"x._acme-challenge.demo.example.org.", dns.TypeTXT, nx, nil, nodata, nil},
		{"_acme-challenge.dyn.example.org.", dns.TypeTXT, 0, nil, nodata, nil},
		{"_acme-challenge.old.example.org.", dns.TypeTXT, 0, nil, nodata, nil},
		{"_acme-challenge.nosuch.example.org.", dns.TypeTXT, nx, nil, nodata, nil},
		// A name an operator disabled answers as if absent, its challenge name too.
		{"banned.example.org.", dns.TypeA, nx, nil, nodata, nil},
		{"banned.example.org.", dns.TypeANY, nx, nil, nodata, nil},
		{"_acme-challenge.banned.example.org.", dns.TypeTXT, nx, nil, nodata, nil},
		// Dynamic DNS: the address last reported, of either family.
		{"dyn.example.org.", dns.TypeA, 0, []string{"dyn.example.org. 120 IN A 203.0.113.50"}, nil, nil},
		{"dyn.example.org.", dns.TypeAAAA, 0, nil, nodata, nil},
		{"dyn.example.org.", dns.TypeANY, 0, []string{"dyn.example.org. 120 IN A 203.0.113.50"}, nil, nil},
		{"dyn6.example.org.", dns.TypeAAAA, 0, []string{"dyn6.example.org. 120 IN AAAA 2001:db8::50"}, nil, nil},
		{"dyn6.example.org.", dns.TypeANY, 0, []string{"dyn6.example.org. 120 IN AAAA 2001:db8::50"}, nil, nil},
		// Tunnel names by the continent they subscribed from, the default tunnel elsewhere.
		{"geo-eu.example.org.", dns.TypeA, 0, []string{"geo-eu.example.org. 120 IN A 192.0.2.2"}, nil, nil},
		{"geo-na.example.org.", dns.TypeA, 0, []string{"geo-na.example.org. 120 IN A 192.0.2.1"}, nil, nil},
		// The API host, by the resolver's continent (10.240.0.1, the recorder's, is nowhere).
		{"api.example.org.", dns.TypeA, 0, []string{"api.example.org. 120 IN A 192.0.2.10"}, nil, nil},
		{"api.example.org.", dns.TypeAAAA, 0, nil, nodata, nil},
		{"api.example.org.", dns.TypeANY, 0, []string{"api.example.org. 120 IN A 192.0.2.10"}, nil, nil},
		// ANY, RFC 8482: one RRset, HINFO where there is none.
		{"example.org.", dns.TypeANY, 0, []string{"example.org. 3600 IN SOA ns1.example.org. hostmaster.example.org. 2026113001 7200 900 1209600 300"}, nil, nil},
		{"_psl.example.org.", dns.TypeANY, 0, []string{`_psl.example.org. 3600 IN TXT "https://github.com/publicsuffix/list/pull/1"`}, nil, nil},
		{"ns1.example.org.", dns.TypeANY, 0, []string{"ns1.example.org. 3600 IN A 192.0.2.53"}, nil, nil},
		{"dns.example.org.", dns.TypeANY, 0, []string{`dns.example.org. 3600 IN HINFO "RFC8482" ""`}, nil, nil},
		{"mail.example.org.", dns.TypeANY, 0, []string{`mail.example.org. 3600 IN HINFO "RFC8482" ""`}, nil, nil},
		{"nosuch.example.org.", dns.TypeANY, nx, nil, nodata, nil},
	} {
		tc := test.Case{Qname: c.qname, Qtype: c.qtype, Rcode: c.rcode,
			Answer: rrs(t, c.answer...), Ns: rrs(t, c.ns...), Extra: rrs(t, c.extra...)}
		checkReply(t, tc, serve(t, r, tc.Msg(), ""))
	}
}

// The API host's address follows the client's subnet (EDNS Client Subnet) when the resolver
// sends one with a prefix, the resolver's own address otherwise.
func TestAnswerAPIByContinent(t *testing.T) {
	r := answersRegistry(t)
	for _, c := range []struct {
		resolver, ecs, want string
	}{
		{"198.51.100.7", "", "192.0.2.20"},
		{"10.0.0.1", "198.51.100.0/24", "192.0.2.20"},
		{"10.0.0.1", "2001:db8:e0::/48", "192.0.2.20"},
		{"10.0.0.1", "203.0.113.0/24", "192.0.2.10"},
		{"198.51.100.7", "203.0.113.0/24", "192.0.2.10"},
		{"10.0.0.1", "198.51.100.0/0", "192.0.2.10"}, // source prefix 0: the client hides its subnet
	} {
		tc := test.Case{Qname: "api.example.org.", Qtype: dns.TypeA, Answer: rrs(t, "api.example.org. 120 IN A "+c.want)}
		m := tc.Msg()
		if c.ecs != "" {
			pfx := netip.MustParsePrefix(c.ecs)
			ecs := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(pfx.Bits()), Address: pfx.Addr().AsSlice()}
			if pfx.Addr().Is6() {
				ecs.Family = 2
			}
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = append(m.IsEdns0().Option, ecs)
		}
		checkReply(t, tc, serve(t, r, m, c.resolver))
	}
}

// PageKite queries: the accepting address only for a name, not disabled, whose token signed
// the query.
func TestAnswerPageKite(t *testing.T) {
	r := answersRegistry(t, answersRecords()...)
	sign := func(secret, proto, kitename, srand, token, salt string) string {
		return kitetest.Sign(secret, proto, kitename, srand, token, salt, time.Now())
	}
	query := func(srand, token, sig, proto, label string) string {
		return kitetest.Query(srand, token, sig, proto, label+".example.org", "example.org.")
	}
	const srand, tok, kite, other, banned = "5f3a9c01", "c0ffee42", "token-kite", "token-other", "token-banned"
	valid := sign(kite, "http", "kite.example.org", srand, tok, "0a1b2c3d")
	badDigit := valid[:35] + "0"
	if valid[35] == '0' {
		badDigit = valid[:35] + "1"
	}
	for _, c := range []struct{ qname, want string }{
		{query(srand, tok, valid, "http", "kite"), kiteOK},
		{strings.ToUpper(query(srand, tok, valid, "http", "kite")), kiteOK},
		{query(srand, tok, sign(kite, "https-443", "*.kite.example.org", srand, tok, "99887766"), "https-443", "_any_.kite"), kiteOK},
		{query(srand, tok, sign(kite, "http", "kite.example.org", srand, tok, "t1b2c3d4"), "http", "kite"), kiteOK},
		{query(srand, tok, badDigit, "http", "kite"), kiteNo},
		{query("5f3a9c02", tok, valid, "http", "kite"), kiteNo},
		{query(srand, tok, valid, "http", "_any_.kite"), kiteNo},
		{query(srand, tok, sign(other, "http", "kite.example.org", srand, tok, "0a1b2c3d"), "http", "kite"), kiteNo},
		{query(srand, tok, sign(kite, "http", "nokite.example.org", srand, tok, "0a1b2c3d"), "http", "nokite"), kiteNo},
		{query(srand, tok, sign(banned, "http", "banned.example.org", srand, tok, "0a1b2c3d"), "http", "banned"), kiteNo},
	} {
		tc := test.Case{Qname: c.qname, Qtype: dns.TypeA, Answer: rrs(t, c.qname+" 0 IN A "+c.want)}
		checkReply(t, tc, serve(t, r, tc.Msg(), ""))
	}
}

// Queries that are not answered from the zone: other opcodes, transfers, two OPT records,
// names outside every zone, and any query before the view is loaded.
func TestAnswerRefusals(t *testing.T) {
	r := answersRegistry(t)
	notify := new(dns.Msg)
	notify.SetNotify("example.org.")
	xfr := new(dns.Msg)
	xfr.SetAxfr("example.org.")
	twoOPT := new(dns.Msg)
	twoOPT.SetQuestion("example.org.", dns.TypeSOA)
	twoOPT.SetEdns0(1232, false)
	twoOPT.Extra = append(twoOPT.Extra, &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}})
	outside := new(dns.Msg)
	outside.SetQuestion("example.net.", dns.TypeA)
	for _, c := range []struct {
		what  string
		m     *dns.Msg
		rcode int
	}{
		{"NOTIFY", notify, dns.RcodeNotImplemented},
		{"AXFR without the transfer plugin", xfr, dns.RcodeRefused},
		{"two OPT records", twoOPT, dns.RcodeFormatError},
		{"outside the zone", outside, dns.RcodeRefused},
	} {
		m := serve(t, r, c.m, "")
		if m.Rcode != c.rcode || len(m.Answer) != 0 {
			t.Errorf("%s: %s with %d answers, want %s and none", c.what, dns.RcodeToString[m.Rcode], len(m.Answer), dns.RcodeToString[c.rcode])
		}
	}
	r.view.Store(nil)
	q := new(dns.Msg)
	q.SetQuestion("example.org.", dns.TypeSOA)
	rec := dnstest.NewRecorder(&test.ResponseWriter{})
	if rcode, _ := r.ServeDNS(context.Background(), rec, q); rcode != dns.RcodeServerFailure || rec.Msg != nil {
		t.Errorf("before the view is loaded: rcode %s, reply written %v; want SERVFAIL returned to CoreDNS", dns.RcodeToString[rcode], rec.Msg != nil)
	}
}
