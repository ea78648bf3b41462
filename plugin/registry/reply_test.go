package registry

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"
)

// Replies are recycled only for writers that are done with the message when WriteMsg
// returns: the CoreDNS server's ScrubWriter over miekg/dns's real UDP and TCP writers, as a
// miekg server hands them to its handler here.
func TestRecycledWriters(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			type verdicts struct{ scrub, bare, recorder, doh bool }
			got := make(chan verdicts, 1)
			handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
				scrub := request.NewScrubWriter(r, w)
				got <- verdicts{
					scrub:    packsAtOnce(scrub),
					bare:     packsAtOnce(w),
					recorder: packsAtOnce(dnstest.NewRecorder(scrub)),
					doh:      packsAtOnce(request.NewScrubWriter(r, &dnsserver.DoHWriter{})),
				}
				m := new(dns.Msg)
				m.SetReply(r)
				scrub.WriteMsg(m)
			})
			srv := &dns.Server{Addr: "127.0.0.1:0", Net: network, Handler: handler}
			started := make(chan struct{})
			srv.NotifyStartedFunc = func() { close(started) }
			go srv.ListenAndServe()
			select {
			case <-started:
			case <-time.After(5 * time.Second):
				t.Fatal("the DNS server did not start")
			}
			defer srv.Shutdown()
			addr := ""
			if network == "udp" {
				addr = srv.PacketConn.LocalAddr().String()
			} else {
				addr = srv.Listener.Addr().String()
			}
			m := new(dns.Msg)
			m.SetQuestion("gw.example.org.", dns.TypeA)
			if _, _, err := (&dns.Client{Net: network, Timeout: 2 * time.Second}).Exchange(m, addr); err != nil {
				t.Fatal(err)
			}
			v := <-got
			if !v.scrub {
				t.Errorf("the server's writer over miekg/dns's %s writer: not recycled, want recycled", network)
			}
			if v.bare || v.recorder || v.doh {
				t.Errorf("recycled for a writer that may keep the reply: bare %v, recorder %v, DoH %v", v.bare, v.recorder, v.doh)
			}
		})
	}
}

// Many concurrent queries for different names, over UDP and TCP, each get their own answer:
// a reply recycled while still in use would answer one name with another's records.
func TestConcurrentRepliesStayApart(t *testing.T) {
	s := startServer(t, "")
	const names = 16
	for i := range names {
		tok := s.subscribe(fmt.Sprintf("gw%d", i), nil)
		s.mustGet("/dnsconfig", url.Values{"token": {tok}, "challenge": {fmt.Sprintf("value-of-gw%d", i)}})
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			network := []string{"udp", "tcp"}[g%2]
			c := &dns.Client{Net: network, Timeout: 5 * time.Second}
			addr := map[string]string{"udp": s.udp, "tcp": s.tcp}[network]
			for q := range 300 {
				i := (g*7 + q) % names
				// Mixed case, so that the owner name tells the queries apart too.
				qname := fmt.Sprintf("gW%d.Example.org.", i)
				qtype, want := dns.TypeA, "198.51.100.1"
				if q%3 == 0 {
					qname, qtype, want = "_acme-challenge."+qname, dns.TypeTXT, fmt.Sprintf("value-of-gw%d", i)
				}
				m := new(dns.Msg)
				m.SetQuestion(qname, qtype)
				r, _, err := c.Exchange(m, addr)
				if err != nil {
					errs <- fmt.Errorf("%s %s: %v", network, qname, err)
					return
				}
				if len(r.Answer) != 1 || r.Answer[0].Header().Name != qname || !strings.Contains(r.Answer[0].String(), want) {
					errs <- fmt.Errorf("%s %s %s: answer %v, want one record named as asked with %s", network, qname, dns.TypeToString[qtype], r.Answer, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// nestingWriter answers another query from inside WriteMsg, as another goroutine could while
// the first reply is being packed, and records the first reply's answer after it.
type nestingWriter struct {
	test.ResponseWriter
	r     *Registry
	inner *dns.Msg
	depth int
	after string
}

func (w *nestingWriter) WriteMsg(m *dns.Msg) error {
	if w.depth > 0 {
		return nil
	}
	w.depth++
	before := m.Answer[0].String()
	w.r.ServeDNS(context.Background(), w, w.inner)
	w.after = m.Answer[0].String()
	if w.after != before {
		w.after = "changed while written: " + before + " became " + w.after
	}
	return nil
}

// A recycled reply goes back to the pool only after its writer returned: a query answered
// while it is being written gets another reply.
func TestReplyNotReusedWhileWritten(t *testing.T) {
	r, _ := benchRegistry(t, 4)
	orig := packsAtOnce
	packsAtOnce = func(w dns.ResponseWriter) bool { _, ok := w.(*nestingWriter); return ok || orig(w) }
	t.Cleanup(func() { packsAtOnce = orig })
	for range 100 {
		outer, inner := new(dns.Msg), new(dns.Msg)
		outer.SetQuestion("gw1.example.org.", dns.TypeA)
		inner.SetQuestion("_acme-challenge.gw2.example.org.", dns.TypeTXT)
		w := &nestingWriter{r: r, inner: inner}
		r.ServeDNS(context.Background(), w, outer)
		if !strings.HasPrefix(w.after, "gw1.example.org.\t") {
			t.Fatalf("the first reply's answer: %q", w.after)
		}
	}
}

func TestLower(t *testing.T) {
	long := strings.Repeat("Ab.", 100)
	for _, tc := range []struct {
		in, want string
		pooled   bool
	}{
		{"gw1.example.org.", "gw1.example.org.", true},
		{"GW1.Example.ORG.", "gw1.example.org.", true},
		{"gw1.example.orG.", "gw1.example.org.", true},
		{`A\065\.b-Z.example.org.`, `a\065\.b-z.example.org.`, true},
		{"", "", true},
		{"GW1.Example.ORG.", "gw1.example.org.", false},
		{long, strings.ToLower(long), true},
	} {
		rep := newReply(tc.pooled)
		if got := rep.lower(tc.in); got != tc.want {
			t.Errorf("lower(%q), pooled %v = %q, want %q", tc.in, tc.pooled, got, tc.want)
		}
		rep.release(tc.pooled)
	}
}
