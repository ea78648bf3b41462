package registry

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// RRL is the response rate limit of DNS over UDP, per source prefix (Knot's, NSD's and BIND's
// response rate limiting): a forged source address turns an open UDP server into an amplifier
// aimed at that address, and the limit bounds what any one prefix can be sent. Over TCP the
// source is proven by the handshake, so TCP is never limited.
type RRL struct {
	// Rate is responses per second to one prefix; 0 disables the limit.
	Rate int
	// Window is how far ahead of the rate a prefix may go: it gets Rate×Window responses at
	// once, then Rate per second.
	Window time.Duration
	// Slip makes every Slip-th limited response a truncated, empty answer (so that a real
	// client behind the prefix retries over TCP) and drops the others; 0 drops them all.
	Slip int
	// Exempt prefixes are never limited.
	Exempt []netip.Prefix
}

const (
	// rrlV4Bits and rrlV6Bits are the prefix lengths counted together, as in Knot: a /24 is
	// one site, a /56 one subscriber's IPv6 allocation.
	rrlV4Bits, rrlV6Bits = 24, 56
	// rrlSlotBits sizes the table: 65,536 slots of 32 bytes, 2 MiB, whatever the traffic.
	rrlSlotBits = 16
)

// defaultRRL limits each prefix to 200 responses/s (the rate Knot's and NSD's documentation
// give) and lets every second limited response through truncated. Its exemptions are set
// once the Corefile is read: `rrl_exempt` replaces defaultRRLExempt.
func defaultRRL() RRL { return RRL{Rate: 200, Window: time.Second, Slip: 2} }

// defaultRRLExempt is loopback, which no packet from the network can claim as its source.
func defaultRRLExempt() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}

// rrlAction is what the limiter says of one response.
type rrlAction int

const (
	rrlPass rrlAction = iota
	rrlSlip
	rrlDrop
)

// responseLimiter holds one GCRA (a token bucket in one number) per prefix, in a fixed table
// indexed by a keyed hash of the prefix: memory never grows with the number of sources.
// Prefixes whose hashes meet share a slot while its holder is over the rate, and take it over
// otherwise.
type responseLimiter struct {
	cfg      RRL
	interval int64 // ns between two responses at the rate
	slack    int64 // ns a prefix may run ahead of the rate
	seed     uint64
	epoch    time.Time
	slots    [1 << rrlSlotBits]rrlSlot
}

type rrlSlot struct {
	mu      sync.Mutex
	prefix  uint64
	tat     int64 // when the prefix is back to the rate, in ns since epoch
	limited uint32
}

// newResponseLimiter returns the limiter of cfg, or nil when cfg disables it.
func newResponseLimiter(cfg RRL) *responseLimiter {
	if cfg.Rate <= 0 {
		return nil
	}
	interval := int64(time.Second) / int64(cfg.Rate)
	return &responseLimiter{
		cfg: cfg, interval: interval, slack: max(0, int64(cfg.Window)-interval),
		seed: rand.Uint64() | 1, epoch: time.Now(),
	}
}

// check accounts one response to the client of w and says what to do with it. Only UDP
// responses are limited; a nil limiter passes everything.
func (l *responseLimiter) check(w dns.ResponseWriter) rrlAction {
	if l == nil {
		return rrlPass
	}
	udp, ok := w.RemoteAddr().(*net.UDPAddr)
	if !ok {
		return rrlPass
	}
	ip, ok := netip.AddrFromSlice(udp.IP)
	if !ok {
		return rrlPass
	}
	return l.account(ip.Unmap(), time.Since(l.epoch).Nanoseconds())
}

// account applies one response to ip at now (ns since the epoch).
func (l *responseLimiter) account(ip netip.Addr, now int64) rrlAction {
	for _, p := range l.cfg.Exempt {
		if p.Contains(ip) {
			return rrlPass
		}
	}
	key := prefixKey(ip)
	s := &l.slots[((key^l.seed)*0x9E3779B97F4A7C15)>>(64-rrlSlotBits)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.prefix != key && s.tat <= now {
		s.prefix, s.tat, s.limited = key, now, 0
	}
	tat := max(s.tat, now)
	if tat-now <= l.slack {
		s.tat = tat + l.interval
		return rrlPass
	}
	s.limited++
	if l.cfg.Slip > 0 && s.limited%uint32(l.cfg.Slip) == 0 {
		return rrlSlip
	}
	return rrlDrop
}

// prefixKey packs the /24 of an IPv4 address or the /56 of an IPv6 one into a number, with
// a bit that keeps the two families apart.
func prefixKey(ip netip.Addr) uint64 {
	if ip.Is4() {
		a := ip.As4()
		return 1<<63 | uint64(binary.BigEndian.Uint32(a[:]))>>(32-rrlV4Bits)
	}
	a := ip.As16()
	return binary.BigEndian.Uint64(a[:8]) >> (64 - rrlV6Bits)
}

// answerLimited answers a response the limiter held back: a truncated reply without records
// for a slip, nothing for a drop.
func (r *Registry) answerLimited(w dns.ResponseWriter, req *dns.Msg, rep *reply, act rrlAction) (int, error) {
	rrlLimited[act].Inc()
	if act == rrlSlip {
		m := &rep.Msg
		m.Question = req.Question
		m.Id, m.Response, m.Opcode, m.Truncated = req.Id, true, req.Opcode, true
		m.RecursionDesired, m.CheckingDisabled = req.RecursionDesired, req.CheckingDisabled
		w.WriteMsg(m)
	}
	return dns.RcodeSuccess, nil
}
