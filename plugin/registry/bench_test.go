package registry

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"

	"github.com/regdns/regdns/etcdstore"
)

// benchRegistry is a started handler over names registered in the package's etcd, without
// the CoreDNS server around it: the benchmarks time the plugin's own work.
func benchRegistry(b testing.TB, names int) (*Registry, *etcdstore.Domain) {
	b.Helper()
	c := caddy.NewTestController("dns", `registry {
		tunnel 192.0.2.1
		record @ CAA 0 issue letsencrypt.org
	}`)
	c.ServerBlockKeys = []string{"example.org."}
	cfg, err := parse(c)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	store, err := etcdstore.Open(ctx, etcdstore.Config{Endpoints: testEtcd.Endpoints(), Prefix: fmt.Sprintf("/bench-%s-%d/", strings.ReplaceAll(b.Name(), "/", "-"), names)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	if err := store.View().WaitLoaded(ctx); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for i := range names {
		d := etcdstore.Domain{Name: fmt.Sprintf("gw%d", i), Token: fmt.Sprintf("token-%d", i), Created: now}
		d.AddChallenge("challenge-value", now, 2)
		if err := store.Create(ctx, d); err != nil && err != etcdstore.ErrNameTaken {
			b.Fatal(err)
		}
	}
	r := New(cfg)
	r.view.Store(store.View())
	d, _ := store.View().Lookup("gw0")
	return r, d
}

func benchmarkQuery(b *testing.B, r *Registry, qname string, qtype uint16, want int) {
	req := new(dns.Msg)
	req.SetQuestion(qname, qtype)
	w := &test.ResponseWriter{}
	ctx := context.Background()
	rec := &recorder{ResponseWriter: w}
	r.ServeDNS(ctx, rec, req)
	if rec.msg == nil || rec.msg.Rcode != want {
		b.Fatalf("%s %s: %v, want rcode %s", qname, dns.TypeToString[qtype], rec.msg, dns.RcodeToString[want])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.ServeDNS(ctx, w, req)
	}
}

// recorder keeps the reply, to check the benchmarked query answers what it should.
type recorder struct {
	*test.ResponseWriter
	msg *dns.Msg
}

func (r *recorder) WriteMsg(m *dns.Msg) error { r.msg = m; return nil }

func BenchmarkServeDNS(b *testing.B) {
	r, _ := benchRegistry(b, 1000)
	nonce := "abcd1234.fedcba98.12345678481eba18e060fac5f95716699dc1.http.gw1.example.org.example.org."
	for _, bc := range []struct {
		name  string
		qname string
		qtype uint16
		rcode int
	}{
		{"A hit", "gw7.example.org.", dns.TypeA, dns.RcodeSuccess},
		{"A hit, mixed case", "Gw7.Example.org.", dns.TypeA, dns.RcodeSuccess},
		{"TXT hit", "_acme-challenge.gw7.example.org.", dns.TypeTXT, dns.RcodeSuccess},
		{"NXDOMAIN", "nothing.example.org.", dns.TypeA, dns.RcodeNameError},
		{"NODATA", "gw7.example.org.", dns.TypeMX, dns.RcodeSuccess},
		{"PageKite auth", nonce, dns.TypeA, dns.RcodeSuccess},
	} {
		b.Run(bc.name, func(b *testing.B) { benchmarkQuery(b, r, bc.qname, bc.qtype, bc.rcode) })
	}
}

// The A hit of a registered name allocates nothing in the plugin but the reply itself.
func TestAHitAllocations(t *testing.T) {
	res := testing.Benchmark(func(b *testing.B) {
		r, _ := benchRegistry(b, 10)
		benchmarkQuery(b, r, "gw3.example.org.", dns.TypeA, dns.RcodeSuccess)
	})
	if a := res.AllocsPerOp(); a > 1 {
		t.Errorf("A hit: %d allocations per query, want at most 1 (the reply)", a)
	}
}
