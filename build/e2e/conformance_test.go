package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/regdns/regdns/api/geoip/geoiptest"
	"github.com/regdns/regdns/plugin/dnstest"
	"github.com/regdns/regdns/plugin/registry/kitetest"
)

// The conformance suite asks the running ./coredns over the wire, UDP and TCP, what an
// authoritative server for the registry zone must answer: header bits, exact negative answers,
// RFC 8482 ANY, EDNS0, odd opcodes, malformed packets, GeoIP, PageKite and zone transfers.

const (
	apexSOA = "example.org. 3600 IN SOA ns1.example.org. hostmaster.example.org. SERIAL 7200 900 1209600 300"
	// negSOA is the SOA of negative answers: its TTL is min(ttl 3600, SOA minimum 300), RFC 2308.
	negSOA = "example.org. 300 IN SOA ns1.example.org. hostmaster.example.org. SERIAL 7200 900 1209600 300"
	kiteOK = "255.255.254.255"
	kiteNo = "255.255.255.1"
)

// conformanceRegistry is the registry block of the main server; %s is the GeoIP database.
const conformanceRegistry = `        ns ns1.example.org 192.0.2.53 2001:db8::53
        ns ns2.dns.example.org 192.0.2.54
        soa ns1.example.org hostmaster.example.org 7200 900 1209600 300
        ttl 3600
        address_ttl 120
        challenge_ttl 45
        challenge_keep 12
        write_limit 1/m 20
        record @ CAA 0 issue letsencrypt.org
        record @ MX 10 mail
        record @ TXT "v=spf1 -all"
        record @ A 192.0.2.100
        record _psl TXT "https://github.com/publicsuffix/list/pull/1"
        record www CNAME @
        record ext CNAME target.example.net.
        record _dmarc.mail TXT "v=DMARC1; p=reject"
        geoip %s
        tunnel 192.0.2.1
        tunnel EU 192.0.2.2
        api_address 192.0.2.10
        api_address EU 192.0.2.20
        trusted_proxy 127.0.0.1`

var nets = []string{"udp", "tcp"}

// startServer runs ./coredns for example.org with serverLines in the server block and
// registryLines in the registry block, on free loopback ports, and waits until the zone answers.
func startServer(t *testing.T, serverLines, registryLines string) *product {
	addrs := dnstest.FreeAddrs(t, 4)
	dir := t.TempDir()
	_, dnsPort, _ := net.SplitHostPort(addrs[0])
	corefile := fmt.Sprintf(`example.org:%s {
    bind 127.0.0.1
    errors
%s
    registry {
        api %s
        data %s
        etcd_listen http://%s http://%s
%s
    }
}
`, dnsPort, serverLines, addrs[1], filepath.Join(dir, "data"), addrs[2], addrs[3], registryLines)
	p := runCorefile(t, dir, corefile, addrs[0], addrs[1])
	soa, _ := newQuery("example.org.", dns.TypeSOA, false, 0).Pack()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := rawExchange("udp", p.dns, soa, time.Second)
		if err == nil && len(b) > 3 && b[3]&0x0f == dns.RcodeSuccess {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not come up (last error %v):\n%s", err, p.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// in is p with its helpers failing t, for use inside a subtest.
func (p *product) in(t *testing.T) *product {
	c := *p
	c.t = t
	return &c
}

// alive fails t if the server process has exited.
func (p *product) alive(t *testing.T) {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		t.Fatalf("coredns exited: %v", err)
	default:
	}
}

// subscribe registers name in mode ("0" tunnel, "1" dynamic DNS) as if called from the address
// from, reported by the trusted proxy, and returns the name's token.
func subscribe(t *testing.T, p *product, name, mode, from string) string {
	t.Helper()
	var h http.Header
	if from != "" {
		h = http.Header{"X-Forwarded-For": {from}}
	}
	code, body := p.in(t).call("/subscribe", url.Values{"name": {name}, "mode": {mode}}, h)
	if code != 200 {
		t.Fatalf("subscribe %s: %d %s", name, code, body)
	}
	var sub struct{ Token string }
	if err := json.Unmarshal([]byte(body), &sub); err != nil || sub.Token == "" {
		t.Fatalf("subscribe %s: no token in the reply", name)
	}
	return sub.Token
}

func newQuery(name string, qtype uint16, rd bool, udpSize uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = rd
	if udpSize > 0 {
		m.SetEdns0(udpSize, false)
	}
	return m
}

// rawExchange sends one message's bytes and returns the reply's bytes (without the TCP length).
func rawExchange(network, addr string, b []byte, timeout time.Duration) ([]byte, error) {
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if network == "tcp" {
		b = append([]byte{byte(len(b) >> 8), byte(len(b))}, b...)
	}
	if _, err := c.Write(b); err != nil {
		return nil, err
	}
	if network == "udp" {
		buf := make([]byte, 65535)
		n, err := c.Read(buf)
		return buf[:n], err
	}
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, err
	}
	buf := make([]byte, int(l[0])<<8|int(l[1]))
	_, err = io.ReadFull(c, buf)
	return buf, err
}

// ask sends m and returns the reply after the checks every reply must pass: ID, opcode and
// question (exact case, for 0x20) echoed, QR set, RD copied, RA clear, and over UDP no larger
// than the size the query advertised (512 without EDNS).
func ask(t *testing.T, network, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	what := fmt.Sprintf("%s %s %s opcode %s", network, m.Question[0].Name, dns.TypeToString[m.Question[0].Qtype], dns.OpcodeToString[m.Opcode])
	b, err := m.Pack()
	if err != nil {
		t.Fatalf("%s: pack: %v", what, err)
	}
	reply, err := rawExchange(network, addr, b, 5*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(reply); err != nil {
		t.Fatalf("%s: unpack reply: %v", what, err)
	}
	if err := checkHeader(m, r); err != nil {
		t.Errorf("%s: %v", what, err)
	}
	if network == "udp" {
		limit := 512
		if o := m.IsEdns0(); o != nil && o.UDPSize() > 512 {
			limit = int(o.UDPSize())
		}
		if len(reply) > limit {
			t.Errorf("%s: %d-byte UDP reply, the query advertised %d", what, len(reply), limit)
		}
	}
	return r
}

func checkHeader(q, r *dns.Msg) error {
	var errs []string
	if r.Id != q.Id {
		errs = append(errs, fmt.Sprintf("ID %d, want %d", r.Id, q.Id))
	}
	if !r.Response {
		errs = append(errs, "QR clear")
	}
	if r.Opcode != q.Opcode {
		errs = append(errs, fmt.Sprintf("opcode %d, want %d", r.Opcode, q.Opcode))
	}
	if r.RecursionDesired != q.RecursionDesired {
		errs = append(errs, fmt.Sprintf("RD %v, want %v as asked", r.RecursionDesired, q.RecursionDesired))
	}
	if r.RecursionAvailable {
		errs = append(errs, "RA set")
	}
	// A query's question always comes back; a rejected odd opcode may come back without one.
	if (q.Opcode == dns.OpcodeQuery || len(r.Question) > 0) && (len(r.Question) != 1 || r.Question[0] != q.Question[0]) {
		errs = append(errs, fmt.Sprintf("question %v, want %v", r.Question, q.Question))
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// canon returns rrs in presentation form with lower-case owners, sorted, OPT left out, so that
// sections compare as sets.
func canon(rrs []dns.RR) []string {
	out := []string{}
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		c := dns.Copy(rr)
		c.Header().Name = strings.ToLower(c.Header().Name)
		out = append(out, c.String())
	}
	slices.Sort(out)
	return out
}

// canonLines parses zone-file lines, SERIAL standing for serial, into canon's form.
func canonLines(t *testing.T, lines []string, serial uint32) []string {
	t.Helper()
	var rrs []dns.RR
	for _, l := range lines {
		rr, err := dns.NewRR(strings.ReplaceAll(l, "SERIAL", strconv.FormatUint(uint64(serial), 10)))
		if err != nil {
			t.Fatalf("expected record %q: %v", l, err)
		}
		rrs = append(rrs, rr)
	}
	return canon(rrs)
}

// mixCase randomises the case of every letter, as resolvers using 0x20 do.
func mixCase(rng *rand.Rand, name string) string {
	b := []byte(name)
	for i, c := range b {
		if ('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') && rng.IntN(2) == 0 {
			b[i] ^= 0x20
		}
	}
	return string(b)
}

func fq(rel string) string {
	if rel == "@" {
		return "example.org."
	}
	return rel + ".example.org."
}

func soaSerial(t *testing.T, p *product) uint32 {
	t.Helper()
	r := ask(t, "udp", p.dns, newQuery("example.org.", dns.TypeSOA, false, 0))
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("SOA query: %v", r)
	}
	soa, ok := r.Answer[0].(*dns.SOA)
	if !ok {
		t.Fatalf("SOA query answered %v", r.Answer[0])
	}
	return soa.Serial
}

// txtValues returns the strings of the TXT records in rrs, sorted.
func txtValues(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(txt.Txt, ""))
		}
	}
	slices.Sort(out)
	return out
}

// writeCountryDB writes a GeoLite2-Country database placing the test networks on continents.
func writeCountryDB(t *testing.T) string {
	return geoiptest.Write(t, "GeoLite2-Country", map[string]geoiptest.Place{
		"198.51.100.0/24":  {Continent: "EU", Country: "DE"},
		"203.0.113.0/24":   {Continent: "NA", Country: "US"},
		"2001:db8:e0::/48": {Continent: "EU", Country: "FR"},
	})
}

// dnsCase is one question and the exact reply it must get.
type dnsCase struct {
	name              string // relative to the zone, "@" for the apex
	qtype             uint16
	rcode             int
	answer, ns, extra []string
	// check replaces the comparison of the answer section where RFC 8482 leaves the choice of RRset.
	check func(qname string, r *dns.Msg) error
}

// minimalANY checks an RFC 8482 answer to ANY: one RRset at the question's name, of type want
// (any type when 0); HINFO must be the RFC's own.
func minimalANY(want uint16) func(string, *dns.Msg) error {
	return func(qname string, r *dns.Msg) error {
		if len(r.Answer) == 0 {
			return errors.New("empty answer to ANY")
		}
		first := r.Answer[0].Header().Rrtype
		for _, rr := range r.Answer {
			if rr.Header().Rrtype != first || !strings.EqualFold(rr.Header().Name, qname) {
				return fmt.Errorf("ANY answered more than one RRset at %s: %v", qname, r.Answer)
			}
		}
		if want != 0 && first != want {
			return fmt.Errorf("ANY answered %s, want %s", dns.TypeToString[first], dns.TypeToString[want])
		}
		if h, ok := r.Answer[0].(*dns.HINFO); ok && (len(r.Answer) != 1 || h.Cpu != "RFC8482") {
			return fmt.Errorf("ANY answered %v, want one HINFO \"RFC8482\"", r.Answer)
		}
		return nil
	}
}

// bigValues are 13 challenge values of 100 characters: the newest 12 make a TXT answer of about
// 1.4 kB, above 1232 bytes and below 4096.
func bigValues() []string {
	var out []string
	for i := range 13 {
		out = append(out, fmt.Sprintf("%02d-%s", i, strings.Repeat(string(rune('a'+i)), 97)))
	}
	return out
}

func TestConformance(t *testing.T) {
	t.Parallel()
	p := startServer(t, "    transfer {\n        to *\n    }", fmt.Sprintf(conformanceRegistry, writeCountryDB(t)))

	demo := subscribe(t, p, "demo", "0", "")
	subscribe(t, p, "dyn", "1", "203.0.113.50")
	for _, c := range []string{"chal-base", "chal-wild"} {
		p.ok("/dnsconfig", url.Values{"token": {demo}, "challenge": {c}})
	}
	big := subscribe(t, p, "big", "0", "")
	for _, c := range bigValues() {
		p.ok("/dnsconfig", url.Values{"token": {big}, "challenge": {c}})
	}
	rng := rand.New(rand.NewPCG(0x20, 2))
	mix := func(name string) string { return mixCase(rng, name) }

	t.Run("Records", func(t *testing.T) {
		nodata := []string{negSOA}
		apexA := "example.org. 3600 IN A 192.0.2.100"
		wwwCNAME := "www.example.org. 3600 IN CNAME example.org."
		extCNAME := "ext.example.org. 3600 IN CNAME target.example.net."
		const nx = dns.RcodeNameError
		cases := []dnsCase{
			{name: "@", qtype: dns.TypeSOA, answer: []string{apexSOA}},
			{name: "@", qtype: dns.TypeNS,
				answer: []string{"example.org. 3600 IN NS ns1.example.org.", "example.org. 3600 IN NS ns2.dns.example.org."},
				extra:  []string{"ns1.example.org. 3600 IN A 192.0.2.53", "ns1.example.org. 3600 IN AAAA 2001:db8::53", "ns2.dns.example.org. 3600 IN A 192.0.2.54"}},
			{name: "@", qtype: dns.TypeCAA, answer: []string{`example.org. 3600 IN CAA 0 issue "letsencrypt.org"`}},
			{name: "@", qtype: dns.TypeMX, answer: []string{"example.org. 3600 IN MX 10 mail.example.org."}},
			{name: "@", qtype: dns.TypeTXT, answer: []string{`example.org. 3600 IN TXT "v=spf1 -all"`}},
			{name: "@", qtype: dns.TypeA, answer: []string{apexA}},
			{name: "@", qtype: dns.TypeAAAA, ns: nodata},
			{name: "@", qtype: dns.TypeSRV, ns: nodata},
			{name: "_psl", qtype: dns.TypeTXT, answer: []string{`_psl.example.org. 3600 IN TXT "https://github.com/publicsuffix/list/pull/1"`}},
			{name: "_psl", qtype: dns.TypeA, ns: nodata},
			{name: "www", qtype: dns.TypeA, answer: []string{wwwCNAME, apexA}},
			{name: "www", qtype: dns.TypeAAAA, answer: []string{wwwCNAME}, ns: nodata},
			{name: "www", qtype: dns.TypeCNAME, answer: []string{wwwCNAME}},
			{name: "www", qtype: dns.TypeTXT, answer: []string{wwwCNAME, `example.org. 3600 IN TXT "v=spf1 -all"`}},
			{name: "ext", qtype: dns.TypeA, answer: []string{extCNAME}},
			{name: "ext", qtype: dns.TypeAAAA, answer: []string{extCNAME}},
			{name: "ext", qtype: dns.TypeCNAME, answer: []string{extCNAME}},
			{name: "x.www", qtype: dns.TypeA, rcode: nx, ns: nodata},
			// Empty non-terminals: above ns2.dns and _dmarc.mail.
			{name: "dns", qtype: dns.TypeA, ns: nodata},
			{name: "dns", qtype: dns.TypeNS, ns: nodata},
			{name: "mail", qtype: dns.TypeA, ns: nodata},
			{name: "mail", qtype: dns.TypeMX, ns: nodata},
			{name: "_dmarc.mail", qtype: dns.TypeTXT, answer: []string{`_dmarc.mail.example.org. 3600 IN TXT "v=DMARC1; p=reject"`}},
			{name: "ns1", qtype: dns.TypeA, answer: []string{"ns1.example.org. 3600 IN A 192.0.2.53"}},
			{name: "ns1", qtype: dns.TypeAAAA, answer: []string{"ns1.example.org. 3600 IN AAAA 2001:db8::53"}},
			{name: "ns2.dns", qtype: dns.TypeA, answer: []string{"ns2.dns.example.org. 3600 IN A 192.0.2.54"}},
			{name: "ns2.dns", qtype: dns.TypeAAAA, ns: nodata},
			{name: "nosuch", qtype: dns.TypeA, rcode: nx, ns: nodata},
			{name: "deep.nosuch", qtype: dns.TypeTXT, rcode: nx, ns: nodata},
			{name: "ns3", qtype: dns.TypeA, rcode: nx, ns: nodata},
			// A registered name: its address, nothing else; nothing below it but its challenge.
			{name: "demo", qtype: dns.TypeA, answer: []string{"demo.example.org. 120 IN A 192.0.2.1"}},
			{name: "demo", qtype: dns.TypeAAAA, ns: nodata},
			{name: "demo", qtype: dns.TypeCAA, ns: nodata},
			{name: "demo", qtype: dns.TypeTXT, ns: nodata},
			{name: "demo", qtype: dns.TypeMX, ns: nodata},
			{name: "demo", qtype: dns.TypeCNAME, ns: nodata},
			{name: "x.demo", qtype: dns.TypeA, rcode: nx, ns: nodata},
			{name: "x.demo", qtype: dns.TypeCAA, rcode: nx, ns: nodata},
			{name: "a.b.demo", qtype: dns.TypeA, rcode: nx, ns: nodata},
			{name: "_acme-challenge.demo", qtype: dns.TypeTXT, answer: []string{
				`_acme-challenge.demo.example.org. 45 IN TXT "chal-base"`, `_acme-challenge.demo.example.org. 45 IN TXT "chal-wild"`}},
			{name: "_acme-challenge.demo", qtype: dns.TypeA, ns: nodata},
			{name: "_acme-challenge.demo", qtype: dns.TypeCAA, ns: nodata},
			{name: "x._acme-challenge.demo", qtype: dns.TypeTXT, rcode: nx, ns: nodata},
			// Without a value the challenge name still exists (NODATA): an NXDOMAIN would be
			// cached for every type, and ACME clients look up a CNAME there first.
			{name: "_acme-challenge.dyn", qtype: dns.TypeTXT, ns: nodata},
			{name: "_acme-challenge.nosuch", qtype: dns.TypeTXT, rcode: nx, ns: nodata},
			{name: "dyn", qtype: dns.TypeA, answer: []string{"dyn.example.org. 120 IN A 203.0.113.50"}},
			{name: "dyn", qtype: dns.TypeAAAA, ns: nodata},
			{name: "api", qtype: dns.TypeA, answer: []string{"api.example.org. 120 IN A 192.0.2.10"}},
			{name: "api", qtype: dns.TypeAAAA, ns: nodata},
			// ANY, RFC 8482: one RRset, HINFO where there is none; a CNAME is the RRset itself
			// and is not followed (RFC 1034 4.3.2: ANY matches the CNAME).
			{name: "@", qtype: dns.TypeANY, check: minimalANY(0)},
			{name: "demo", qtype: dns.TypeANY, check: minimalANY(dns.TypeA)},
			{name: "dyn", qtype: dns.TypeANY, check: minimalANY(dns.TypeA)},
			{name: "_acme-challenge.demo", qtype: dns.TypeANY, check: minimalANY(dns.TypeTXT)},
			{name: "_psl", qtype: dns.TypeANY, check: minimalANY(dns.TypeTXT)},
			{name: "ns1", qtype: dns.TypeANY, check: minimalANY(0)},
			{name: "api", qtype: dns.TypeANY, check: minimalANY(dns.TypeA)},
			{name: "www", qtype: dns.TypeANY, answer: []string{wwwCNAME}},
			{name: "dns", qtype: dns.TypeANY, check: minimalANY(dns.TypeHINFO)},
			{name: "mail", qtype: dns.TypeANY, check: minimalANY(dns.TypeHINFO)},
			{name: "nosuch", qtype: dns.TypeANY, rcode: nx, ns: nodata},
			{name: "x.demo", qtype: dns.TypeANY, rcode: nx, ns: nodata},
		}
		serial := soaSerial(t, p)
		for i, c := range cases {
			for j, network := range nets {
				qname := mix(fq(c.name))
				var size uint16
				if (i+j)%2 == 0 {
					size = 1232
				}
				m := newQuery(qname, c.qtype, i%2 == 0, size)
				r := ask(t, network, p.dns, m)
				what := fmt.Sprintf("%s %s %s (EDNS %d)", network, qname, dns.TypeToString[c.qtype], size)
				var errs []string
				if !r.Authoritative {
					errs = append(errs, "AA clear")
				}
				if r.Truncated {
					errs = append(errs, "TC set")
				}
				if r.Rcode != c.rcode {
					errs = append(errs, fmt.Sprintf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[c.rcode]))
				}
				if (r.IsEdns0() != nil) != (size > 0) {
					errs = append(errs, fmt.Sprintf("OPT in reply %v, OPT in query %v", r.IsEdns0() != nil, size > 0))
				}
				for _, rr := range r.Answer {
					if n := rr.Header().Name; strings.EqualFold(n, qname) && n != qname {
						errs = append(errs, fmt.Sprintf("answer owner %q does not keep the question's case", n))
						break
					}
				}
				sections := []struct {
					name  string
					got   []dns.RR
					lines []string
				}{{"answer", r.Answer, c.answer}, {"authority", r.Ns, c.ns}, {"additional", r.Extra, c.extra}}
				for k, s := range sections {
					if k == 0 && c.check != nil {
						if err := c.check(qname, r); err != nil {
							errs = append(errs, err.Error())
						}
						continue
					}
					got, want := canon(s.got), canonLines(t, s.lines, serial)
					if !slices.Equal(got, want) {
						errs = append(errs, fmt.Sprintf("%s section:\n\t%s\nwant:\n\t%s", s.name, strings.Join(got, "\n\t"), strings.Join(want, "\n\t")))
					}
				}
				if len(errs) > 0 {
					t.Errorf("%s: %s", what, strings.Join(errs, "; "))
				}
			}
		}
	})

	t.Run("EDNS", func(t *testing.T) {
		for _, network := range nets {
			m := newQuery(mix("example.org."), dns.TypeSOA, true, 1232)
			m.IsEdns0().SetVersion(1)
			r := ask(t, network, p.dns, m)
			if r.Rcode != dns.RcodeBadVers || r.IsEdns0() == nil || len(r.Answer) != 0 {
				t.Errorf("%s EDNS version 1: rcode %s, OPT %v, %d answers; want BADVERS with an OPT and no answer",
					network, dns.RcodeToString[r.Rcode], r.IsEdns0() != nil, len(r.Answer))
			}

			m = newQuery(mix("example.org."), dns.TypeSOA, true, 1232)
			second := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
			second.SetUDPSize(1232)
			m.Extra = append(m.Extra, second)
			r = ask(t, network, p.dns, m)
			if r.Rcode != dns.RcodeFormatError || len(r.Answer) != 0 {
				t.Errorf("%s two OPT records: rcode %s with %d answers, want FORMERR (RFC 6891 6.1.1) and no answer",
					network, dns.RcodeToString[r.Rcode], len(r.Answer))
			}
		}

		// The 12 newest of 13 values, about 1.4 kB: truncated below that, whole above and over TCP.
		want := bigValues()[1:]
		slices.Sort(want)
		for _, c := range []struct {
			network string
			size    uint16
			full    bool
		}{{"udp", 0, false}, {"udp", 512, false}, {"udp", 1232, false}, {"udp", 4096, true}, {"tcp", 0, true}, {"tcp", 1232, true}} {
			r := ask(t, c.network, p.dns, newQuery(mix("_acme-challenge.big.example.org."), dns.TypeTXT, false, c.size))
			got := txtValues(r.Answer)
			switch {
			case r.Rcode != dns.RcodeSuccess:
				t.Errorf("%s EDNS %d: rcode %s", c.network, c.size, dns.RcodeToString[r.Rcode])
			case c.full && (r.Truncated || !slices.Equal(got, want)):
				t.Errorf("%s EDNS %d: TC %v with %d of the 12 newest values (%d answers), want all, TC clear", c.network, c.size, r.Truncated, countIn(got, want), len(r.Answer))
			case !c.full && !r.Truncated:
				t.Errorf("%s EDNS %d: TC clear on an answer that does not fit (%d answers)", c.network, c.size, len(r.Answer))
			}
		}
	})

	t.Run("Opcodes", func(t *testing.T) {
		for _, op := range []int{dns.OpcodeNotify, dns.OpcodeUpdate, dns.OpcodeStatus, 3, 15} {
			for _, network := range nets {
				m := newQuery(mix("example.org."), dns.TypeSOA, false, 0)
				m.Opcode = op
				r := ask(t, network, p.dns, m)
				if !slices.Contains([]int{dns.RcodeNotImplemented, dns.RcodeRefused, dns.RcodeNotAuth}, r.Rcode) || len(r.Answer)+len(r.Ns) > 0 {
					t.Errorf("%s opcode %d: rcode %s, %d answers, %d authority; want NOTIMP, REFUSED or NOTAUTH without records",
						network, op, dns.RcodeToString[r.Rcode], len(r.Answer), len(r.Ns))
				}
			}
		}
	})

	t.Run("Malformed", func(t *testing.T) {
		header := func(qdcount byte) []byte { return []byte{0xbe, 0xef, 0x01, 0x00, 0, qdcount, 0, 0, 0, 0, 0, 0} }
		typeClass := []byte{0, 1, 0, 1}
		valid, _ := newQuery("example.org.", dns.TypeSOA, true, 0).Pack()
		valid[0], valid[1] = 0xbe, 0xef
		twoQuestions := append(slices.Clone(valid), valid[12:]...)
		twoQuestions[5] = 2
		var long []byte
		for range 5 {
			long = append(append(long, 63), strings.Repeat("a", 63)...)
		}
		malformed := []struct {
			name string
			b    []byte
			// servfail: CoreDNS's server (not the plugin) answers SERVFAIL here: miekg/dns
			// unpacks a QDCOUNT of 1 without question bytes as a message with no question,
			// which dnsserver refuses before any plugin runs. An error all the same.
			servfail bool
		}{
			{"header only", header(1), true},
			{"header with no question", header(0), false},
			{"truncated name", append(header(1), 10, 'a', 'b', 'c'), false},
			{"question without type", append(header(1), 3, 'o', 'r', 'g', 0), false},
			{"compression pointer loop", append(append(header(1), 0xc0, 12), typeClass...), false},
			{"compression pointer past the end", append(append(header(1), 0xc0, 0xff), typeClass...), false},
			{"two questions", twoQuestions, false},
			{"huge label length", append(append(header(1), 0x3f, 'a', 'b', 0), typeClass...), false},
			{"reserved label type", append(append(header(1), 0x7f, 'a', 0), typeClass...), false},
			{"name over 255 octets", append(append(append(header(1), long...), 0), typeClass...), false},
		}
		rng := rand.New(rand.NewPCG(1, 2))
		for _, network := range nets {
			for _, c := range malformed {
				reply, err := rawExchange(network, p.dns, c.b, time.Second)
				if err != nil {
					continue // dropping a malformed packet is fine
				}
				// A reply, if any, is an error about this packet, never an answer.
				rcode := -1
				if len(reply) >= 12 {
					rcode = int(reply[3] & 0x0f)
				}
				want := []int{dns.RcodeFormatError, dns.RcodeNotImplemented, dns.RcodeRefused}
				if c.servfail {
					want = append(want, dns.RcodeServerFailure)
				}
				if len(reply) < 12 || reply[0] != 0xbe || reply[1] != 0xef || reply[2]&0x80 == 0 ||
					!slices.Contains(want, rcode) || reply[6]|reply[7] != 0 {
					t.Errorf("%s %s: reply %x (rcode %d), want FORMERR (or NOTIMP/REFUSED) to ID beef, QR set, no answer", network, c.name, reply, rcode)
				}
			}
			// Random garbage, without waiting for replies.
			for range 200 {
				b := make([]byte, rng.IntN(600))
				for i := range b {
					b[i] = byte(rng.Uint32())
				}
				c, err := net.Dial(network, p.dns)
				if err != nil {
					t.Fatal(err)
				}
				if network == "tcp" {
					b = append([]byte{byte(len(b) >> 8), byte(len(b))}, b...)
				}
				c.Write(b)
				c.Close()
			}
			if network == "tcp" {
				// A length prefix announcing more than is sent, then close; and a lone prefix.
				for _, b := range [][]byte{append([]byte{0x01, 0x00}, valid...), {0x00, 0x20}, {0x00}} {
					c, err := net.Dial("tcp", p.dns)
					if err != nil {
						t.Fatal(err)
					}
					c.Write(b)
					c.Close()
				}
			}
			p.alive(t)
			// The flood can still fill the server's UDP socket buffer, where the kernel drops
			// what does not fit, a query as well: as a resolver would, ask again until the
			// server has worked through it (a wedged server never answers), then check.
			waitUntil(t, 15*time.Second, "a UDP answer after the flood", func() bool {
				r, err := dnstest.Exchange("udp", p.dns, "example.org.", dns.TypeSOA)
				return err == nil && r.Rcode == dns.RcodeSuccess
			})
			for _, n := range nets {
				r := ask(t, n, p.dns, newQuery(mix("example.org."), dns.TypeSOA, true, 0))
				if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeSOA {
					t.Errorf("after malformed %s packets, %s SOA query: %v", network, n, r)
				}
			}
		}
	})

	t.Run("Serial", func(t *testing.T) {
		q := p.in(t)
		last := soaSerial(t, p)
		step := func(what string) {
			t.Helper()
			if s := soaSerial(t, p); s <= last {
				t.Errorf("SOA serial %d after %s, was %d: want it to grow", s, what, last)
			} else {
				last = s
			}
		}
		tok := subscribe(t, p, "serial-a", "0", "")
		step("/subscribe")
		q.ok("/dnsconfig", url.Values{"token": {tok}, "challenge": {"serial-value"}})
		step("/dnsconfig")
		dyn := subscribe(t, p, "serial-d", "1", "203.0.113.60")
		step("/subscribe in dynamic mode")
		if code, body := q.call("/ping", url.Values{"token": {dyn}}, http.Header{"X-Forwarded-For": {"203.0.113.61"}}); code != 200 {
			t.Fatalf("ping: %d %s", code, body)
		}
		step("/ping in dynamic mode")
		q.ok("/unsubscribe", url.Values{"token": {tok}})
		step("/unsubscribe")
	})

	t.Run("GeoIP", func(t *testing.T) {
		for _, c := range []struct{ name, from, want string }{
			{"geo-eu", "198.51.100.7", "192.0.2.2"},
			{"geo-na", "203.0.113.7", "192.0.2.1"}, // no NA tunnel: the default
			{"geo-eu6", "2001:db8:e0::7", "192.0.2.2"},
			{"geo-unknown", "192.0.2.200", "192.0.2.1"},
		} {
			subscribe(t, p, c.name, "0", c.from)
			for _, network := range nets {
				qname := mix(fq(c.name))
				r := ask(t, network, p.dns, newQuery(qname, dns.TypeA, false, 0))
				if got := canon(r.Answer); !slices.Equal(got, canonLines(t, []string{qname + " 120 IN A " + c.want}, 0)) {
					t.Errorf("%s A of a name subscribed from %s: %v, want %s", network, c.from, got, c.want)
				}
			}
		}
		for _, c := range []struct {
			ecs  string // client subnet, "" for none
			want string
		}{
			{"198.51.100.0/24", "192.0.2.20"},
			{"2001:db8:e0::/48", "192.0.2.20"},
			{"203.0.113.0/24", "192.0.2.10"},
			{"", "192.0.2.10"},               // the resolver itself, 127.0.0.1, is nowhere
			{"198.51.100.0/0", "192.0.2.10"}, // source prefix 0: the client hides its subnet
		} {
			for _, network := range nets {
				qname := mix("api.example.org.")
				m := newQuery(qname, dns.TypeA, false, 1232)
				if c.ecs != "" {
					pfx, bits, _ := strings.Cut(c.ecs, "/")
					n, _ := strconv.Atoi(bits)
					ip := net.ParseIP(pfx)
					ecs := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(n), Address: ip.To4()}
					if ip.To4() == nil {
						ecs.Family, ecs.Address = 2, ip
					}
					m.IsEdns0().Option = append(m.IsEdns0().Option, ecs)
				}
				r := ask(t, network, p.dns, m)
				if got := canon(r.Answer); r.Rcode != dns.RcodeSuccess || !slices.Equal(got, canonLines(t, []string{qname + " 120 IN A " + c.want}, 0)) {
					t.Errorf("%s api A with client subnet %q: %s %v, want %s", network, c.ecs, dns.RcodeToString[r.Rcode], got, c.want)
				}
			}
		}
	})

	t.Run("PageKite", func(t *testing.T) {
		kite := subscribe(t, p, "kite", "0", "")
		other := subscribe(t, p, "kite-other", "0", "")
		sign := func(secret, proto, kitename, srand, token, salt string) string {
			return kitetest.Sign(secret, proto, kitename, srand, token, salt, time.Now())
		}
		query := func(srand, token, sig, proto, label string) string {
			return kitetest.Query(srand, token, sig, proto, label+".example.org", "example.org.")
		}
		const srand, tok = "5f3a9c01", "c0ffee42"
		valid := sign(kite, "http", "kite.example.org", srand, tok, "0a1b2c3d")
		badDigit := valid[:35] + "0"
		if valid[35] == '0' {
			badDigit = valid[:35] + "1"
		}
		for _, c := range []struct {
			what, qname, want string
		}{
			{"valid", query(srand, tok, valid, "http", "kite"), kiteOK},
			// All upper case, signature included: names compare without case.
			{"valid, upper case", strings.ToUpper(query(srand, tok, valid, "http", "kite")), kiteOK},
			{"valid wildcard kite", query(srand, tok, sign(kite, "https-443", "*.kite.example.org", srand, tok, "99887766"), "https-443", "_any_.kite"), kiteOK},
			{"valid timestamped", query(srand, tok, sign(kite, "http", "kite.example.org", srand, tok, "t1b2c3d4"), "http", "kite"), kiteOK},
			{"one digit wrong", query(srand, tok, badDigit, "http", "kite"), kiteNo},
			{"other srand", query("5f3a9c02", tok, valid, "http", "kite"), kiteNo},
			{"name's signature for the wildcard", query(srand, tok, valid, "http", "_any_.kite"), kiteNo},
			{"signed with another name's token", query(srand, tok, sign(other, "http", "kite.example.org", srand, tok, "0a1b2c3d"), "http", "kite"), kiteNo},
			{"unregistered kite", query(srand, tok, sign(kite, "http", "nokite.example.org", srand, tok, "0a1b2c3d"), "http", "nokite"), kiteNo},
		} {
			for _, network := range nets {
				qname := c.qname
				if qname != strings.ToUpper(qname) {
					qname = mix(qname)
				}
				r := ask(t, network, p.dns, newQuery(qname, dns.TypeA, false, 0))
				want := canonLines(t, []string{qname + " 0 IN A " + c.want}, 0)
				if got := canon(r.Answer); r.Rcode != dns.RcodeSuccess || !r.Authoritative || !slices.Equal(got, want) {
					t.Errorf("%s kite query %s: %s AA %v %v, want exactly %v", network, c.what, dns.RcodeToString[r.Rcode], r.Authoritative, got, want)
				}
			}
		}
	})

	t.Run("Transfer", func(t *testing.T) {
		serial := soaSerial(t, p)
		m := new(dns.Msg)
		m.SetAxfr("example.org.")
		tr := &dns.Transfer{DialTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
		envs, err := tr.In(m, p.dns)
		if err != nil {
			t.Fatalf("AXFR: %v", err)
		}
		var rrs []dns.RR
		for e := range envs {
			if e.Error != nil {
				t.Fatalf("AXFR: %v", e.Error)
			}
			rrs = append(rrs, e.RR...)
		}
		soaLine := canonLines(t, []string{apexSOA}, serial)[0]
		if len(rrs) < 3 || canon(rrs[:1])[0] != soaLine || canon(rrs[len(rrs)-1:])[0] != soaLine {
			t.Fatalf("AXFR of %d records does not start and end with the SOA %s (serial of the SOA query)", len(rrs), soaLine)
		}
		body := rrs[1 : len(rrs)-1]
		got := canon(body)
		for _, w := range canonLines(t, []string{
			"example.org. 3600 IN NS ns1.example.org.", "example.org. 3600 IN NS ns2.dns.example.org.",
			"ns1.example.org. 3600 IN A 192.0.2.53", "ns1.example.org. 3600 IN AAAA 2001:db8::53", "ns2.dns.example.org. 3600 IN A 192.0.2.54",
			`example.org. 3600 IN CAA 0 issue "letsencrypt.org"`, "example.org. 3600 IN MX 10 mail.example.org.",
			`example.org. 3600 IN TXT "v=spf1 -all"`, "example.org. 3600 IN A 192.0.2.100",
			`_psl.example.org. 3600 IN TXT "https://github.com/publicsuffix/list/pull/1"`,
			"www.example.org. 3600 IN CNAME example.org.", "ext.example.org. 3600 IN CNAME target.example.net.",
			`_dmarc.mail.example.org. 3600 IN TXT "v=DMARC1; p=reject"`, "api.example.org. 120 IN A 192.0.2.10",
			"demo.example.org. 120 IN A 192.0.2.1", "dyn.example.org. 120 IN A 203.0.113.50", "geo-eu.example.org. 120 IN A 192.0.2.2",
			`_acme-challenge.demo.example.org. 45 IN TXT "chal-base"`, `_acme-challenge.demo.example.org. 45 IN TXT "chal-wild"`,
		}, serial) {
			if !slices.Contains(got, w) {
				t.Errorf("AXFR lacks %s", w)
			}
		}
		if d := slices.Compact(slices.Clone(got)); len(d) != len(got) {
			t.Errorf("AXFR repeats records: %d records, %d distinct", len(got), len(d))
		}
		// Every RRset of the transfer is what a query for it answers, and nothing lies outside the zone.
		sets := map[dns.Question][]dns.RR{}
		for _, rr := range body {
			h := rr.Header()
			if h.Rrtype == dns.TypeSOA || !dns.IsSubDomain("example.org.", strings.ToLower(h.Name)) {
				t.Errorf("AXFR holds %s inside the zone", rr)
				continue
			}
			q := dns.Question{Name: strings.ToLower(h.Name), Qtype: h.Rrtype, Qclass: dns.ClassINET}
			sets[q] = append(sets[q], rr)
		}
		for q, set := range sets {
			r := ask(t, "tcp", p.dns, newQuery(q.Name, q.Qtype, false, 0))
			if got, want := canon(r.Answer), canon(set); !slices.Equal(got, want) {
				t.Errorf("%s %s: the AXFR has %v, a query answers %v", q.Name, dns.TypeToString[q.Qtype], want, got)
			}
		}

		if s := soaSerial(t, p); s != serial {
			t.Errorf("serial %d after the AXFR, %d before, with no change", s, serial)
		}
		ixfr := new(dns.Msg)
		ixfr.SetIxfr("example.org.", serial, "ns1.example.org.", "hostmaster.example.org.")
		r := ask(t, "tcp", p.dns, ixfr)
		if got, want := canon(r.Answer), canonLines(t, []string{apexSOA}, serial); r.Rcode != dns.RcodeSuccess || !slices.Equal(got, want) {
			t.Errorf("IXFR from the current serial: %s %v, want just %v", dns.RcodeToString[r.Rcode], got, want)
		}
		axfr := new(dns.Msg)
		axfr.SetAxfr("example.org.")
		r = ask(t, "udp", p.dns, axfr)
		if r.Rcode != dns.RcodeRefused || len(r.Answer) > 0 {
			t.Errorf("AXFR over UDP: %s with %d answers, want REFUSED", dns.RcodeToString[r.Rcode], len(r.Answer))
		}
	})
}

// countIn counts the values of got that are in want.
func countIn(got, want []string) int {
	n := 0
	for _, g := range got {
		if slices.Contains(want, g) {
			n++
		}
	}
	return n
}

// TestConformanceExpiry runs a second server, whose challenges expire after 2 s and whose
// zone may be transferred only to 192.0.2.99.
func TestConformanceExpiry(t *testing.T) {
	t.Parallel()
	p := startServer(t, "    transfer {\n        to 192.0.2.99\n    }", "        challenge_expiry 2s")

	t.Run("ChallengeExpiry", func(t *testing.T) {
		q := p.in(t)
		tok := subscribe(t, p, "short", "0", "")
		qname := "_acme-challenge.short.example.org."
		set := func(v string) (before, after time.Time) {
			before = time.Now()
			q.ok("/dnsconfig", url.Values{"token": {tok}, "challenge": {v}})
			return before, time.Now()
		}
		firstStart, firstEnd := set("first")
		time.Sleep(800 * time.Millisecond)
		secondStart, secondEnd := set("second")
		// A value set between start and end is served until at least start+2s and at most end+2s:
		// each reply is judged by what must hold whenever the server answered it.
		seen := map[string]int{}
		for {
			sent := time.Now()
			r := ask(t, "udp", p.dns, newQuery(qname, dns.TypeTXT, false, 0))
			received := time.Now()
			got := strings.Join(txtValues(r.Answer), ",")
			if r.Rcode == dns.RcodeSuccess && got == "" && len(r.Ns) == 1 && r.Ns[0].Header().Rrtype == dns.TypeSOA {
				got = "NODATA"
			} else if r.Rcode != dns.RcodeSuccess || got == "" {
				got = dns.RcodeToString[r.Rcode] + " " + got
			}
			seen[got]++
			var want []string
			switch {
			case received.Before(firstStart.Add(2 * time.Second)):
				want = []string{"first,second"}
			case sent.After(firstEnd.Add(2*time.Second)) && received.Before(secondStart.Add(2*time.Second)):
				want = []string{"second"}
			case received.Before(secondStart.Add(2 * time.Second)):
				want = []string{"first,second", "second"}
			case sent.After(secondEnd.Add(2 * time.Second)):
				want = []string{"NODATA"}
			default:
				want = []string{"second", "NODATA"}
			}
			if !slices.Contains(want, got) {
				t.Fatalf("%.2fs after the first value and %.2fs after the second were set: %s answered %q, want %q",
					sent.Sub(firstEnd).Seconds(), sent.Sub(secondEnd).Seconds(), qname, got, strings.Join(want, " or "))
			}
			if got == "NODATA" {
				break
			}
			if time.Since(secondEnd) > 15*time.Second {
				t.Fatalf("%s still answers %q 15s after the last value was set, with challenge_expiry 2s", qname, got)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("replies seen: %v", seen)
	})

	t.Run("TransferNotAllowed", func(t *testing.T) {
		for _, qtype := range []uint16{dns.TypeAXFR, dns.TypeIXFR} {
			m := new(dns.Msg)
			if qtype == dns.TypeAXFR {
				m.SetAxfr("example.org.")
			} else {
				m.SetIxfr("example.org.", 1, "ns1.example.org.", "hostmaster.example.org.")
			}
			r := ask(t, "tcp", p.dns, m)
			if r.Rcode != dns.RcodeRefused || len(r.Answer) > 0 {
				t.Errorf("%s from 127.0.0.1 with `to 192.0.2.99`: %s with %d answers, want REFUSED", dns.TypeToString[qtype], dns.RcodeToString[r.Rcode], len(r.Answer))
			}
		}
	})
}
