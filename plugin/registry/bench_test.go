package registry

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"

	"github.com/regdns/regdns/etcdstore"
)

// benchRegistry is a started handler over names registered in the package's etcd, without
// the CoreDNS server around it: the benchmarks time the plugin's own work.
func benchRegistry(b testing.TB, names int) (*Registry, *etcdstore.Record) {
	b.Helper()
	return benchRegistryIn(b, "example.org.", names)
}

// benchRegistryIn is benchRegistry for zone.
func benchRegistryIn(b testing.TB, zone string, names int) (*Registry, *etcdstore.Record) {
	b.Helper()
	r := registryFor(b, `registry `+zone+` {
		tunnel 192.0.2.1
		record @ CAA 0 issue letsencrypt.org
		rrl off
	}`)
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
		d := etcdstore.Record{Name: fmt.Sprintf("gw%d", i), Token: fmt.Sprintf("token-%d", i), Created: now}
		d.AddChallenge("challenge-value", now, 2)
		if err := store.Create(ctx, d); err != nil && err != etcdstore.ErrNameTaken {
			b.Fatal(err)
		}
	}
	r.view.Store(store.View())
	d, _ := store.View().Lookup("gw0")
	return r, &d
}

// benchWriters lets the benchmarks' writer, which drops the message in WriteMsg, recycle
// replies as the server's own UDP and TCP writers do (TestRecycledWriters checks which
// writers those are).
func benchWriters(b testing.TB) {
	orig := packsAtOnce
	packsAtOnce = func(w dns.ResponseWriter) bool {
		switch w.(type) {
		case *test.ResponseWriter, *udpWriter:
			return true
		}
		return orig(w)
	}
	b.Cleanup(func() { packsAtOnce = orig })
}

func benchmarkQuery(b *testing.B, r *Registry, qname string, qtype uint16, want int) {
	benchmarkQueryTo(b, r, &test.ResponseWriter{}, qname, qtype, want)
}

// benchmarkQueryTo times queries answered to w, after checking the answer's rcode.
func benchmarkQueryTo(b *testing.B, r *Registry, w dns.ResponseWriter, qname string, qtype uint16, want int) {
	benchWriters(b)
	req := new(dns.Msg)
	req.SetQuestion(qname, qtype)
	ctx := context.Background()
	rec := &recorder{ResponseWriter: &test.ResponseWriter{}}
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

// udpWriter discards the reply, as test.ResponseWriter does, but is a UDP client whose
// address is made once, as the server's writer's is (test.ResponseWriter makes it per call).
type udpWriter struct {
	test.ResponseWriter
	addr *net.UDPAddr
}

func newUDPWriter(ip string) *udpWriter {
	return &udpWriter{addr: &net.UDPAddr{IP: net.ParseIP(ip), Port: 40212}}
}

func (w *udpWriter) RemoteAddr() net.Addr { return w.addr }

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
	// Response rate limiting, for a client under the rate (every response accounted and
	// passed) and for one far over it (every response dropped, or sent truncated).
	b.Run("A hit, RRL under the rate", func(b *testing.B) {
		r.rrl = newResponseLimiter(RRL{Rate: 1e9, Window: time.Second, Slip: 2})
		defer func() { r.rrl = nil }()
		benchmarkQueryTo(b, r, newUDPWriter("192.0.2.7"), "gw7.example.org.", dns.TypeA, dns.RcodeSuccess)
	})
	for _, slip := range []int{0, 1} {
		b.Run(fmt.Sprintf("A hit, RRL limiting, slip %d", slip), func(b *testing.B) {
			r.rrl = newResponseLimiter(RRL{Rate: 1, Window: time.Second, Slip: slip})
			defer func() { r.rrl = nil }()
			benchmarkQueryTo(b, r, newUDPWriter("192.0.2.7"), "gw7.example.org.", dns.TypeA, dns.RcodeSuccess)
		})
	}
	// A writer that may keep the message (as log's and prometheus's recorders do) gets a
	// reply of its own: the cost of the plugins in front of this one.
	b.Run("A hit, writer keeps the reply", func(b *testing.B) {
		benchmarkQueryTo(b, r, &recorder{ResponseWriter: &test.ResponseWriter{}}, "gw7.example.org.", dns.TypeA, dns.RcodeSuccess)
	})
}

// longZone is a zone whose name is longer than the 32 bytes Go concatenates on the stack.
const longZone = "gateways.registration.example-operator.org."

// The A hit of a registered name allocates nothing in the plugin when the writer is done
// with the reply at once, and only the reply when it may keep it.
func TestAHitAllocations(t *testing.T) {
	done := func() dns.ResponseWriter { return &test.ResponseWriter{} }
	keeps := func() dns.ResponseWriter { return &recorder{ResponseWriter: &test.ResponseWriter{}} }
	for _, tc := range []struct {
		name, qname string
		writer      func() dns.ResponseWriter
		want        int64
	}{
		{"writer done at once", "gw3.example.org.", done, 0},
		{"zone name over 32 bytes, writer done at once", "gw3." + longZone, done, 0},
		{"mixed case, writer done at once", "gW3.EXAMPLE.org.", done, 0},
		{"writer keeps the reply", "gw3.example.org.", keeps, 1},
		{"response rate limiting, under the rate", "gw3.example.org.", func() dns.ResponseWriter { return newUDPWriter("192.0.2.7") }, 0},
		// strings.ToLower's copy of the name, besides the reply.
		{"mixed case, writer keeps the reply", "gW3.EXAMPLE.org.", keeps, 2},
	} {
		res := testing.Benchmark(func(b *testing.B) {
			zone := "example.org."
			if strings.HasSuffix(tc.qname, longZone) {
				zone = longZone
			}
			r, _ := benchRegistryIn(b, zone, 10)
			if _, ok := tc.writer().(*udpWriter); ok {
				r.rrl = newResponseLimiter(RRL{Rate: 1e9, Window: time.Second, Slip: 2})
			}
			benchmarkQueryTo(b, r, tc.writer(), tc.qname, dns.TypeA, dns.RcodeSuccess)
		})
		if res.N == 0 {
			t.Fatalf("%s: the benchmark failed", tc.name)
		}
		if a := res.AllocsPerOp(); a != tc.want {
			t.Errorf("A hit, %s: %d allocations per query, want %d", tc.name, a, tc.want)
		}
	}
}
