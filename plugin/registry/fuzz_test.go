package registry

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
)

// FuzzServeDNS feeds raw packets to the handler: whatever parses as a message must get an
// answer or a clean error, never a panic.
func FuzzServeDNS(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"gw0.example.org.", dns.TypeA}, {"_acme-challenge.gw0.example.org.", dns.TypeTXT},
		{"example.org.", dns.TypeNS}, {"nothing.example.org.", dns.TypeANY},
		{"abcd1234.fedcba98.12345678481eba18e060fac5f95716699dc1.http.gw0.example.org.example.org.", dns.TypeA},
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.SetEdns0(1232, true)
		b, _ := m.Pack()
		f.Add(b)
	}
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1})
	r, _ := benchRegistry(f, 1)
	orig := packsAtOnce
	packsAtOnce = func(w dns.ResponseWriter) bool { _, ok := w.(*packingWriter); return ok || orig(w) }
	f.Cleanup(func() { packsAtOnce = orig })
	f.Fuzz(func(t *testing.T, packet []byte) {
		req := new(dns.Msg)
		if err := req.Unpack(packet); err != nil || len(req.Question) != 1 {
			return // the DNS server drops these before any plugin
		}
		rec := &recorder{ResponseWriter: &test.ResponseWriter{}}
		rcode, err := r.ServeDNS(context.Background(), rec, req)
		if err == nil && rec.msg == nil && pluginWrites(rcode) {
			t.Fatalf("rcode %d without a reply", rcode)
		}
		var want []byte
		if rec.msg != nil {
			if want, err = rec.msg.Pack(); err != nil {
				t.Fatalf("reply does not pack: %v\n%v", err, rec.msg)
			}
		}
		// The same query answered with a recycled reply (twice: the second reuses the
		// first's) gives the same bytes.
		for range 2 {
			pw := &packingWriter{}
			r.ServeDNS(context.Background(), pw, req)
			if !bytes.Equal(pw.packed, want) {
				t.Fatalf("recycled reply differs:\n%x\nwant\n%x", pw.packed, want)
			}
		}
	})
}

// packingWriter packs the reply when it is written, as the server's UDP and TCP writers do,
// and keeps only the bytes.
type packingWriter struct {
	test.ResponseWriter
	packed []byte
}

func (w *packingWriter) WriteMsg(m *dns.Msg) error {
	var err error
	w.packed, err = m.Pack()
	return err
}

// pluginWrites reports whether the handler, returning rcode, must have written the reply itself.
func pluginWrites(rcode int) bool { return rcode == dns.RcodeSuccess }

// FuzzParse feeds Corefile blocks to the parser: errors are fine, panics are not.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"registry",
		"registry {\n api 127.0.0.1:0\n tunnel EU 192.0.2.1\n record @ CAA 0 issue letsencrypt.org\n}",
		"registry {\n soa a b 1 2 3 4\n ns ns1.example.org 192.0.2.1\n name_record TXT \"v=spf1 -all\"\n}",
		"registry {\n record www CNAME @\n record www A 192.0.2.1\n}",
		"registry example.org other.org {\n fallthrough\n etcd http://127.0.0.1:2379\n}",
		"registry {\n rrl 100 slip 2 window 2s\n rrl_exempt 192.0.2.0/24 ::1\n}",
		"registry {\n rrl off\n rrl_exempt none\n}",
		"registry {\n etcd_listen http://127.0.0.1:23790 https://127.0.0.1:0\n etcd_quota 512MiB\n}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		c := caddy.NewTestController("dns", input)
		c.ServerBlockKeys = []string{"example.org."}
		cfg, err := parse(c)
		if err != nil {
			return
		}
		if l := cfg.RRL; l.Rate < 0 || l.Slip < 0 || l.Window < 0 || l.Exempt == nil {
			t.Fatalf("rrl %+v: negative, or exemptions not settled", l)
		}
		zone, err := NewZone(cfg)
		if err != nil {
			t.Fatalf("a configuration parse accepted has no zone: %v", err)
		}
		for name := range zone.Static {
			if name != strings.ToLower(name) || !strings.HasSuffix(name, ".") {
				t.Fatalf("static name %q is not lower case and fully qualified", name)
			}
		}
	})
}

// FuzzParseKite feeds names to the PageKite query parser.
func FuzzParseKite(f *testing.F) {
	f.Add("abcd1234.fedcba98.12345678481eba18e060fac5f95716699dc1.http.demo.example.org")
	f.Add("a.b.c.https-443._any_.demo.example.org")
	f.Add("...example.org")
	f.Fuzz(func(t *testing.T, rel string) {
		q, ok := parseKite(strings.ToLower(rel), "example.org")
		if !ok {
			return
		}
		if q.name == "" || strings.Contains(q.name, ".") || !strings.HasSuffix(q.kite, q.name+".example.org") {
			t.Fatalf("%q parsed as %+v", rel, q)
		}
		q.verify(kiteSecret, time.Unix(1700000000, 0))
	})
}
