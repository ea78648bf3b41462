package registry

import (
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/regdns/regdns/etcdstore"
)

// rrStrings renders a section for comparison, TTLs included.
func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, strings.ReplaceAll(rr.String(), "\t", " "))
	}
	sort.Strings(out)
	return out
}

func TestAnswers(t *testing.T) {
	s := startServer(t, "")
	tok := s.subscribe("gw", nil)
	dyn := s.subscribe("dyn", url.Values{"mode": {"1"}})
	s.mustGet("/dnsconfig", url.Values{"token": {tok}, "challenge": {"first-value"}})
	s.mustGet("/dnsconfig", url.Values{"token": {tok}, "challenge": {"second-value"}})
	_ = dyn

	tests := []struct {
		name      string
		qname     string
		qtype     uint16
		rcode     int
		answer    []string
		authority string // the type expected in the authority section, "" for none
		negTTL    bool   // authority SOA must carry the negative TTL
		extra     []string
	}{
		{name: "tunnel A", qname: "gw.example.org.", qtype: dns.TypeA,
			answer: []string{"gw.example.org. 60 IN A 198.51.100.1"}},
		{name: "tunnel AAAA", qname: "gw.example.org.", qtype: dns.TypeAAAA,
			answer: []string{"gw.example.org. 60 IN AAAA 2001:db8::1"}},
		{name: "case echoed", qname: "Gw.ExAmPlE.oRg.", qtype: dns.TypeA,
			answer: []string{"Gw.ExAmPlE.oRg. 60 IN A 198.51.100.1"}},
		{name: "both challenge values", qname: "_acme-challenge.gw.example.org.", qtype: dns.TypeTXT,
			answer: []string{`_acme-challenge.gw.example.org. 30 IN TXT "first-value"`, `_acme-challenge.gw.example.org. 30 IN TXT "second-value"`}},
		{name: "challenge name without TXT type", qname: "_acme-challenge.gw.example.org.", qtype: dns.TypeA,
			authority: "SOA", negTTL: true},
		{name: "no challenge set: the name exists", qname: "_acme-challenge.dyn.example.org.", qtype: dns.TypeTXT,
			authority: "SOA", negTTL: true},
		{name: "challenge of an unknown name", qname: "_acme-challenge.nope.example.org.", qtype: dns.TypeTXT,
			rcode: dns.RcodeNameError, authority: "SOA", negTTL: true},
		{name: "dynamic name pinged from loopback", qname: "dyn.example.org.", qtype: dns.TypeA,
			answer: []string{"dyn.example.org. 60 IN A 127.0.0.1"}},
		{name: "dynamic name without IPv6", qname: "dyn.example.org.", qtype: dns.TypeAAAA,
			authority: "SOA", negTTL: true},
		{name: "registered name, other type", qname: "gw.example.org.", qtype: dns.TypeMX,
			authority: "SOA", negTTL: true},
		{name: "unknown name", qname: "nope.example.org.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, authority: "SOA", negTTL: true},
		{name: "below a registered name", qname: "x.gw.example.org.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, authority: "SOA", negTTL: true},
		{name: "apex NS with glue", qname: "example.org.", qtype: dns.TypeNS,
			answer: []string{"example.org. 3600 IN NS ns.other.net.", "example.org. 3600 IN NS ns1.example.org.", "example.org. 3600 IN NS ns2.dns.example.org."},
			extra:  []string{"ns1.example.org. 3600 IN A 192.0.2.53", "ns1.example.org. 3600 IN AAAA 2001:db8::53", "ns2.dns.example.org. 3600 IN A 192.0.2.54"}},
		{name: "apex A: no address", qname: "example.org.", qtype: dns.TypeA, authority: "SOA", negTTL: true},
		{name: "NS host A", qname: "ns1.example.org.", qtype: dns.TypeA,
			answer: []string{"ns1.example.org. 3600 IN A 192.0.2.53"}},
		{name: "NS host AAAA", qname: "ns1.example.org.", qtype: dns.TypeAAAA,
			answer: []string{"ns1.example.org. 3600 IN AAAA 2001:db8::53"}},
		{name: "empty non-terminal is NODATA", qname: "dns.example.org.", qtype: dns.TypeA,
			authority: "SOA", negTTL: true},
	}
	for _, tc := range tests {
		for _, net := range []string{"udp", "tcp"} {
			t.Run(tc.name+"/"+net, func(t *testing.T) {
				r := s.query(net, tc.qname, tc.qtype)
				if r.Rcode != tc.rcode {
					t.Fatalf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
				}
				if !r.Authoritative {
					t.Error("AA not set")
				}
				if r.Question[0].Name != tc.qname {
					t.Errorf("question %q, want %q echoed", r.Question[0].Name, tc.qname)
				}
				if got, want := rrStrings(r.Answer), tc.answer; !slices.Equal(got, want) {
					t.Errorf("answer\n got %q\nwant %q", got, want)
				}
				if tc.extra != nil {
					if got := rrStrings(r.Extra); !slices.Equal(got, tc.extra) {
						t.Errorf("additional\n got %q\nwant %q", got, tc.extra)
					}
				}
				switch {
				case tc.authority == "" && len(r.Ns) != 0:
					t.Errorf("authority %v, want none", r.Ns)
				case tc.authority == "SOA":
					if len(r.Ns) != 1 {
						t.Fatalf("authority %v, want one SOA", r.Ns)
					}
					soa, ok := r.Ns[0].(*dns.SOA)
					if !ok || soa.Hdr.Name != "example.org." {
						t.Fatalf("authority %v, want the zone SOA", r.Ns[0])
					}
					if tc.negTTL && soa.Hdr.Ttl != 60 {
						t.Errorf("negative TTL %d, want min(3600, 60) = 60", soa.Hdr.Ttl)
					}
				}
			})
		}
	}
}

func TestSOASerialFollowsChanges(t *testing.T) {
	s := startServer(t, "")
	serial := func() uint32 {
		r := s.query("udp", "example.org.", dns.TypeSOA)
		if len(r.Answer) != 1 {
			t.Fatalf("SOA answer %v", r.Answer)
		}
		soa := r.Answer[0].(*dns.SOA)
		if soa.Ns != "ns1.example.org." || soa.Mbox != "hostmaster.example.org." || soa.Refresh != 3600 ||
			soa.Retry != 600 || soa.Expire != 604800 || soa.Minttl != 60 || soa.Hdr.Ttl != 3600 {
			t.Fatalf("SOA fields %v", soa)
		}
		return soa.Serial
	}
	before := serial()
	tok := s.subscribe("serial", nil)
	afterSubscribe := serial()
	s.mustGet("/dnsconfig", url.Values{"token": {tok}, "challenge": {"v"}})
	afterChallenge := serial()
	if !(before < afterSubscribe && afterSubscribe < afterChallenge) {
		t.Errorf("serials %d, %d, %d: want strictly increasing", before, afterSubscribe, afterChallenge)
	}
}

// The SOA serial is the store's (etcd revision plus the offset a restore raises): after
// RaiseSerial, positive and negative answers carry the raised serial, and changes move it on.
func TestSOASerialAfterRaise(t *testing.T) {
	const prefix = "/test-soa-serial-raise/"
	s := startServer(t, "etcd_prefix "+prefix)
	serials := func() (apex, negative uint32) {
		apex = s.query("udp", "example.org.", dns.TypeSOA).Answer[0].(*dns.SOA).Serial
		negative = s.query("udp", "nope.example.org.", dns.TypeA).Ns[0].(*dns.SOA).Serial
		return apex, negative
	}
	store, err := etcdstore.Open(t.Context(), etcdstore.Config{Endpoints: testEtcd.Endpoints(), Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	before, _ := serials()
	raised, err := store.RaiseSerial(t.Context(), before+1000)
	if err != nil || raised != before+1001 {
		t.Fatalf("RaiseSerial(%d) = %d, %v; want %d", before+1000, raised, err, before+1001)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		apex, negative := serials()
		if apex == raised && negative == raised {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SOA serials %d (apex) and %d (negative answer), want %d", apex, negative, raised)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.subscribe("afterraise", nil)
	if apex, negative := serials(); apex != raised+1 || negative != raised+1 {
		t.Errorf("after a change: SOA serials %d and %d, want %d", apex, negative, raised+1)
	}
}

// A gateway that got 200 must be answered at once by the same replica.
func TestReadYourWrites(t *testing.T) {
	s := startServer(t, "")
	for i := range 20 {
		name := "ryw" + string(rune('a'+i))
		tok := s.subscribe(name, nil)
		if r := s.query("udp", name+".example.org.", dns.TypeA); len(r.Answer) != 1 {
			t.Fatalf("%s: no A right after subscribe: %v", name, r)
		}
		value := "challenge-" + name
		s.mustGet("/dnsconfig", url.Values{"token": {tok}, "challenge": {value}})
		r := s.query("udp", "_acme-challenge."+name+".example.org.", dns.TypeTXT)
		if len(r.Answer) != 1 || r.Answer[0].(*dns.TXT).Txt[0] != value {
			t.Fatalf("%s: challenge not served right after dnsconfig: %v", name, r.Answer)
		}
		s.mustGet("/unsubscribe", url.Values{"token": {tok}})
		if r := s.query("udp", name+".example.org.", dns.TypeA); r.Rcode != dns.RcodeNameError {
			t.Fatalf("%s: still answered after unsubscribe: %v", name, r)
		}
	}
}

func TestOpcodes(t *testing.T) {
	s := startServer(t, "")
	for _, tc := range []struct {
		opcode int
		rcode  int
	}{
		{dns.OpcodeNotify, dns.RcodeNotImplemented},
		{dns.OpcodeUpdate, dns.RcodeNotImplemented},
		{dns.OpcodeStatus, dns.RcodeNotImplemented},
	} {
		m := new(dns.Msg)
		m.SetQuestion("example.org.", dns.TypeSOA)
		m.Opcode = tc.opcode
		r := s.exchange("udp", m)
		if r.Rcode != tc.rcode || len(r.Answer) != 0 {
			t.Errorf("opcode %s: rcode %s answer %v, want %s and no answer",
				dns.OpcodeToString[tc.opcode], dns.RcodeToString[r.Rcode], r.Answer, dns.RcodeToString[tc.rcode])
		}
	}
}

func TestTruncationOverUDP(t *testing.T) {
	// Twelve challenges of one name at once are beyond what the default write_limit allows.
	s := startServer(t, "challenge_keep 12\n\t\twrite_limit 1/m 12")
	tok := s.subscribe("big", nil)
	for i := range 12 {
		s.mustGet("/dnsconfig", url.Values{"token": {tok}, "challenge": {strings.Repeat(string(rune('a'+i)), 43)}})
	}
	r := s.query("udp", "_acme-challenge.big.example.org.", dns.TypeTXT)
	if !r.Truncated {
		t.Errorf("12 TXT values over plain UDP (512 bytes): TC not set, %d answers", len(r.Answer))
	}
	r = s.query("tcp", "_acme-challenge.big.example.org.", dns.TypeTXT)
	if r.Truncated || len(r.Answer) != 12 {
		t.Errorf("over TCP: TC=%v with %d answers, want all 12", r.Truncated, len(r.Answer))
	}
	m := new(dns.Msg)
	m.SetQuestion("_acme-challenge.big.example.org.", dns.TypeTXT)
	m.SetEdns0(4096, false)
	r = s.exchange("udp", m)
	if r.Truncated || len(r.Answer) != 12 || r.IsEdns0() == nil {
		t.Errorf("EDNS0 4096 over UDP: TC=%v, %d answers, OPT %v; want all 12 and OPT echoed", r.Truncated, len(r.Answer), r.IsEdns0())
	}
}
