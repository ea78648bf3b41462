package registry

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
)

// The limiter's decisions for a sequence of responses, at times given in the test: the burst
// of a window, the rate after it, the slip pattern, the prefixes counted together and the
// exemptions.
func TestRRLAccount(t *testing.T) {
	ms := int64(time.Millisecond)
	type resp struct {
		at   int64 // ns since the epoch
		ip   string
		want rrlAction
	}
	burst := func(at int64, ip string, n int) []resp {
		out := make([]resp, n)
		for i := range out {
			out[i] = resp{at, ip, rrlPass}
		}
		return out
	}
	join := func(parts ...[]resp) []resp {
		var out []resp
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	cfg := RRL{Rate: 10, Window: time.Second, Slip: 2, Exempt: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}
	for _, tc := range []struct {
		name  string
		cfg   RRL
		resps []resp
	}{
		{"a window's worth at once, then every second limited one slips", cfg, join(burst(0, "192.0.2.1", 10), []resp{
			{0, "192.0.2.1", rrlDrop}, {0, "192.0.2.1", rrlSlip}, {0, "192.0.2.1", rrlDrop}, {0, "192.0.2.1", rrlSlip},
		})},
		{"the rate comes back", cfg, join(burst(0, "192.0.2.1", 10), []resp{
			{50 * ms, "192.0.2.1", rrlDrop}, {100 * ms, "192.0.2.1", rrlPass}, {100 * ms, "192.0.2.1", rrlSlip},
			{1100 * ms, "192.0.2.1", rrlPass},
		})},
		{"one /24 counts as one client", cfg, join(burst(0, "192.0.2.1", 5), burst(0, "192.0.2.200", 5), []resp{
			{0, "192.0.2.77", rrlDrop}, {0, "192.0.3.1", rrlPass},
		})},
		{"one /56 counts as one client", cfg, join(burst(0, "2001:db8:0:1::1", 5), burst(0, "2001:db8:0:ff::2", 5), []resp{
			{0, "2001:db8:0:1::3", rrlDrop}, {0, "2001:db8:0:100::1", rrlPass},
		})},
		{"exempt prefixes are never limited", cfg, burst(0, "198.51.100.9", 1000)},
		{"slip 0 drops every limited response", RRL{Rate: 1, Window: time.Second}, []resp{
			{0, "192.0.2.1", rrlPass}, {0, "192.0.2.1", rrlDrop}, {0, "192.0.2.1", rrlDrop}, {0, "192.0.2.1", rrlDrop},
		}},
		{"slip 1 truncates every limited response", RRL{Rate: 1, Window: time.Second, Slip: 1}, []resp{
			{0, "192.0.2.1", rrlPass}, {0, "192.0.2.1", rrlSlip}, {0, "192.0.2.1", rrlSlip},
		}},
		{"a window shorter than the interval still lets one through", RRL{Rate: 1, Window: time.Millisecond}, []resp{
			{0, "192.0.2.1", rrlPass}, {500 * ms, "192.0.2.1", rrlDrop}, {1000 * ms, "192.0.2.1", rrlPass},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newResponseLimiter(tc.cfg)
			for i, r := range tc.resps {
				if got := l.account(netip.MustParseAddr(r.ip), r.at); got != r.want {
					t.Fatalf("response %d (to %s at %dms): %d, want %d", i, r.ip, r.at/ms, got, r.want)
				}
			}
		})
	}
}

// A client over the rate stays limited while more prefixes than the table has slots query:
// the table's size is fixed, and a newcomer never resets a limit in force.
func TestRRLLimitSurvivesManySources(t *testing.T) {
	l := newResponseLimiter(RRL{Rate: 10, Window: time.Second})
	victim := netip.MustParseAddr("192.0.2.1")
	for range 10 {
		l.account(victim, 0)
	}
	if got := l.account(victim, 0); got != rrlDrop {
		t.Fatalf("11th response in the window: %d, want dropped", got)
	}
	for i := range 4 << rrlSlotBits {
		l.account(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), 1}), 1)
	}
	if got := l.account(victim, 2); got != rrlDrop {
		t.Errorf("after %d other prefixes: %d, want still dropped", 4<<rrlSlotBits, got)
	}
	if got := l.account(victim, int64(2*time.Second)); got != rrlPass {
		t.Errorf("two seconds later: %d, want passed", got)
	}
}

// Through ServeDNS: a UDP client over the rate gets truncated empty answers (every second
// limited response) or nothing; TCP is never limited; IPv4-mapped addresses count as IPv4.
func TestRRLServeDNS(t *testing.T) {
	r, _ := benchRegistry(t, 1)
	// A burst of 5, then one response a second: the test is over long before the next.
	r.rrl = newResponseLimiter(RRL{Rate: 1, Window: 5 * time.Second, Slip: 2})
	req := new(dns.Msg)
	req.SetQuestion("gw0.example.org.", dns.TypeA)
	serve := func(w *test.ResponseWriter) (answered, truncated, silent int) {
		for range 20 {
			rec := &recorder{ResponseWriter: w}
			rcode, err := r.ServeDNS(context.Background(), rec, req)
			switch {
			case err != nil || rcode != dns.RcodeSuccess:
				t.Fatalf("rcode %d, %v", rcode, err)
			case rec.msg == nil:
				silent++
			case rec.msg.Truncated && len(rec.msg.Answer) == 0 && rec.msg.Question[0] == req.Question[0] && rec.msg.Id == req.Id:
				truncated++
			case !rec.msg.Truncated && len(rec.msg.Answer) == 1:
				answered++
			default:
				t.Fatalf("unexpected reply %v", rec.msg)
			}
		}
		return
	}
	for _, tc := range []struct {
		name                        string
		w                           *test.ResponseWriter
		answered, truncated, silent int
	}{
		// The window's 5 responses pass, then the 15 limited ones alternate: dropped, truncated.
		{"UDP", &test.ResponseWriter{RemoteIP: "192.0.2.1"}, 5, 7, 8},
		{"UDP, same /24 as mapped IPv6", &test.ResponseWriter{RemoteIP: "::ffff:192.0.2.9"}, 0, 10, 10},
		{"TCP, same /24", &test.ResponseWriter{RemoteIP: "192.0.2.1", TCP: true}, 20, 0, 0},
		{"UDP, another /24", &test.ResponseWriter{RemoteIP: "192.0.3.1"}, 5, 7, 8},
	} {
		a, tr, s := serve(tc.w)
		if a != tc.answered || tr != tc.truncated || s != tc.silent {
			t.Errorf("%s: %d answered, %d truncated, %d silent; want %d, %d, %d", tc.name, a, tr, s, tc.answered, tc.truncated, tc.silent)
		}
	}
}

// BenchmarkRRLCheck is the limiter's cost per response for a UDP client under the rate.
func BenchmarkRRLCheck(b *testing.B) {
	l := newResponseLimiter(RRL{Rate: 1e9, Window: time.Second, Slip: 2, Exempt: defaultRRLExempt()})
	w := newUDPWriter("192.0.2.7")
	b.ReportAllocs()
	for b.Loop() {
		if l.check(w) != rrlPass {
			b.Fatal("limited")
		}
	}
}
