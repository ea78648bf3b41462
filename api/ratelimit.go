package api

import (
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
	"golang.org/x/time/rate"
)

// RateLimit allows Burst requests at once, then Rate per second. The zero value means the
// default of the field it sets; a negative Rate turns the limit off.
type RateLimit struct {
	Rate  float64
	Burst int
}

// Defaults of Config's rate limits.
var (
	defaultClientLimit = RateLimit{Rate: 1, Burst: 20}
	defaultMailLimit   = RateLimit{Rate: 1.0 / 60, Burst: 10}
	// A gateway changes its record a few times when it sets up (an email, two ACME
	// challenges, maybe a retry of all that), twice per certificate renewal, and at most hourly
	// when it pings from a new address: ten at once and one a minute never refuse it.
	defaultWriteLimit = RateLimit{Rate: 1.0 / 60, Burst: 10}
)

const (
	// maxBuckets bounds the keys a limiter remembers, about 200 bytes each.
	maxBuckets = 1 << 16
	// sweepEvery is how often a limiter forgets the keys that have been idle long enough.
	sweepEvery = time.Minute
	// maxWait bounds the Retry-After of a refused request.
	maxWait = 24 * time.Hour
)

// limiter keeps a token bucket per key (a client address, a name, a recipient). A nil limiter
// allows everything.
type limiter struct {
	rate  rate.Limit
	burst int
	max   int

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
	swept   time.Time
}

// newLimiter returns the limiter of l, nil if l turns it off; the zero l means def.
func newLimiter(l, def RateLimit) (*limiter, error) {
	if l == (RateLimit{}) {
		l = def
	}
	switch {
	case l.Rate < 0:
		return nil, nil
	case l.Rate == 0 || math.IsInf(l.Rate, 0) || math.IsNaN(l.Rate):
		return nil, fmt.Errorf("rate %v is not a positive number (a negative one turns the limit off)", l.Rate)
	case l.Burst < 1:
		return nil, fmt.Errorf("burst %d is below 1", l.Burst)
	}
	return &limiter{rate: rate.Limit(l.Rate), burst: l.Burst, max: maxBuckets, buckets: map[string]*rate.Limiter{}}, nil
}

// allow takes a token from the bucket of every key, or, if one of them is empty, from none;
// then it returns how long until all of them hold a token again.
func (l *limiter) allow(now time.Time, keys ...string) time.Duration {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) >= sweepEvery {
		l.sweep(now)
	}
	var wait time.Duration
	buckets := make([]*rate.Limiter, len(keys))
	for i, k := range keys {
		b := l.buckets[k]
		if b == nil {
			if len(l.buckets) >= l.max {
				l.sweep(now)
			}
			b = rate.NewLimiter(l.rate, l.burst)
			l.buckets[k] = b
		}
		buckets[i] = b
		if t := b.TokensAt(now); t < 1 {
			// Capped so that a tiny rate cannot overflow the Duration.
			secs := min((1-t)/float64(l.rate), maxWait.Seconds())
			wait = max(wait, time.Duration(secs*float64(time.Second)))
		}
	}
	if wait > 0 {
		return wait
	}
	for _, b := range buckets {
		b.AllowN(now, 1)
	}
	return 0
}

// sweep forgets the buckets that are full again: a full bucket acts as a new one, so nothing
// is lost. If a flood of distinct keys still fills more than half the map, it forgets
// arbitrary ones too, so memory stays bounded and sweeps stay rare; those keys get a new burst.
func (l *limiter) sweep(now time.Time) {
	l.swept = now
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) <= l.max/2 {
			break
		}
		delete(l.buckets, k)
	}
}

// clientKey is the bucket of a caller. An IPv6 host usually holds a whole /64, so its
// addresses share one bucket; otherwise a single host could spread over countless buckets.
func clientKey(a netip.Addr) string {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// mailbox is the mailbox addr delivers to, as far as the address shows it: lower case and
// NFC, the domain in its ASCII form, without a "+tag" subaddress (which most mail systems
// deliver to the same mailbox), and for Gmail without dots in the local part and with
// googlemail.com as gmail.com. Limits count per mailbox, and addresses compare by mailbox.
func mailbox(addr string) string {
	addr = norm.NFC.String(strings.ToLower(strings.TrimSpace(addr)))
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr
	}
	local, domain := addr[:at], addr[at+1:]
	if ascii, err := idna.Lookup.ToASCII(domain); err == nil {
		domain = ascii
	}
	if plus := strings.IndexByte(local, '+'); plus > 0 {
		local = local[:plus]
	}
	if domain == "googlemail.com" {
		domain = "gmail.com"
	}
	if domain == "gmail.com" {
		// Without its dots the local part may start with a space the first trim did not
		// reach (". x@gmail.com"): trim again, so that a mailbox is its own mailbox.
		local = strings.TrimSpace(strings.ReplaceAll(local, ".", ""))
	}
	return local + "@" + domain
}

// sameMailbox reports whether two addresses reach one mailbox; "" reaches none.
func sameMailbox(a, b string) bool {
	return a != "" && b != "" && mailbox(a) == mailbox(b)
}

// rateLimited answers a request refused by a limiter; what says whose limit it hit.
func rateLimited(wait time.Duration, what string) error {
	secs := int(math.Ceil(wait.Seconds()))
	return &clientError{
		Code:       "RateLimited",
		Message:    fmt.Sprintf("Too many requests %s; try again in %v.", what, time.Duration(secs)*time.Second),
		status:     http.StatusTooManyRequests,
		retryAfter: secs,
	}
}

// mailBudget names a separate budget of the mail limit.
type mailBudget string

const (
	// ownerMail is mail the holder of a name's API token asks for (/setemail).
	ownerMail mailBudget = "owner"
	// reclaimMail is reclamation mail, which anyone can ask for (/reclaim).
	reclaimMail mailBudget = "reclaim"
)

// allowMail counts one mail about name to addr against budget, unless *counted is already
// addr: the store may run an update function more than once for one request. It runs inside
// that function, so a refused mail leaves the record as it was.
func (s *Server) allowMail(counted *string, budget mailBudget, name, addr string) error {
	if *counted == addr {
		return nil
	}
	if wait := s.mailLimit.allow(time.Now(), string(budget)+" name:"+name, string(budget)+" to:"+mailbox(addr)); wait > 0 {
		return rateLimited(wait, "for this name or email address")
	}
	*counted = addr
	return nil
}

// allowWrite counts one change of name against the write limit, unless *counted says this
// request was already counted: the store may run an update function more than once.
func (s *Server) allowWrite(counted *bool, name string) error {
	if *counted {
		return nil
	}
	if wait := s.writeLimit.allow(time.Now(), name); wait > 0 {
		return rateLimited(wait, "changing this name")
	}
	*counted = true
	return nil
}
