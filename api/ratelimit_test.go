package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/regdns/regdns/etcdstore"
)

// limited checks that r is a 429 RateLimited reply whose Retry-After lies in [low, high] seconds.
func limited(t *testing.T, r reply, low, high int) {
	t.Helper()
	if r.status != http.StatusTooManyRequests || r.code() != "RateLimited" || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %s %s, want 429 RateLimited in JSON", r.status, r.header.Get("Content-Type"), r.body)
	}
	if after, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || after < low || after > high {
		t.Errorf("Retry-After %q, want %d to %d seconds", r.header.Get("Retry-After"), low, high)
	}
}

func TestClientLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.ClientLimit = RateLimit{Rate: 0.01, Burst: 3}
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	from := func(addr string) http.Header { return http.Header{"X-Real-Ip": {addr}} }
	gw := from("81.2.69.1")
	r := e.do(t, http.MethodGet, gw, "/subscribe", "name", "first")
	if r.status != http.StatusOK {
		t.Fatalf("subscribe: %d %s", r.status, r.body)
	}
	token := e.stored(t, "first").Token
	// The three endpoints share the budget, and refused requests count too.
	if r := e.do(t, http.MethodGet, gw, "/setemail", "token", token, "email", "a@example.org"); r.status != http.StatusOK {
		t.Fatalf("setemail: %d %s", r.status, r.body)
	}
	if r := e.do(t, http.MethodGet, gw, "/reclaim", "name", "nobody"); r.code() != "NoSuchName" {
		t.Fatalf("reclaim: %d %s", r.status, r.body)
	}

	counted := metricValue(t, requests.WithLabelValues("subscribe", "429"))
	r = e.do(t, http.MethodGet, gw, "/subscribe", "name", "fourth")
	limited(t, r, 1, 100)
	if got := metricValue(t, requests.WithLabelValues("subscribe", "429")) - counted; got != 1 {
		t.Errorf("requests{subscribe,429} rose by %v, want 1", got)
	}
	if r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Error("the 429 lacks the CORS header, so the web UI cannot read it")
	}
	if _, err := e.store.Get(context.Background(), etcdstore.ByName("fourth")); !errors.Is(err, etcdstore.ErrNotFound) {
		t.Errorf("a limited subscribe stored the name: %v", err)
	}
	limited(t, e.do(t, http.MethodGet, gw, "/setemail", "token", token, "email", "b@example.org"), 1, 100)
	limited(t, e.do(t, http.MethodGet, gw, "/reclaim", "name", "first"), 1, 100)
	if d := e.stored(t, "first"); d.Email != "a@example.org" || len(e.smtp.Messages()) != 1 {
		t.Errorf("limited setemail changed the record (contact %q) or sent mail (%d sent)", d.Email, len(e.smtp.Messages()))
	}

	// /ping and /dnsconfig are what a gateway calls all the time; they stay open.
	for i := range 10 {
		if r := e.do(t, http.MethodGet, gw, "/ping", "token", token); r.status != http.StatusOK {
			t.Fatalf("ping %d: %d %s", i, r.status, r.body)
		}
		if r := e.do(t, http.MethodGet, gw, "/dnsconfig", "token", token, "challenge", "c"+strconv.Itoa(i)); r.status != http.StatusOK {
			t.Fatalf("dnsconfig %d: %d %s", i, r.status, r.body)
		}
	}
	if d := e.stored(t, "first"); d.Challenges[0].Value != "c9" {
		t.Errorf("newest challenge %q", d.Challenges[0].Value)
	}

	if r := e.do(t, http.MethodGet, from("81.2.69.2"), "/subscribe", "name", "other"); r.status != http.StatusOK {
		t.Errorf("another address was limited too: %d %s", r.status, r.body)
	}

	// An IPv6 host holds a /64: its addresses share one budget, the next /64 has its own.
	for i := range 3 {
		e.do(t, http.MethodGet, from(fmt.Sprintf("2a00:1450:4001:81a::%d", i+1)), "/subscribe")
	}
	limited(t, e.do(t, http.MethodGet, from("2a00:1450:4001:81a:ffff::9"), "/subscribe"), 1, 100)
	if r := e.do(t, http.MethodGet, from("2a00:1450:4001:81b::1"), "/subscribe"); r.reason() != "MissingParameter" {
		t.Errorf("the neighbouring /64 was limited: %d %s", r.status, r.body)
	}
}

// TestClientLimitDefault sends requests as fast as it can from one address: the default
// allows a burst of 20, then 1 a second.
func TestClientLimitDefault(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ClientLimit = RateLimit{} })
	start := time.Now()
	allowed := 0
	for e.get(t, "/subscribe").status != http.StatusTooManyRequests {
		if allowed++; allowed > 1000 {
			t.Fatal("no request limited")
		}
	}
	if most := 20 + int(time.Since(start).Seconds()); allowed < 20 || allowed > most {
		t.Errorf("%d requests allowed before the first 429, want 20 to %d", allowed, most)
	}
}

// TestMailFlood points many names at one mailbox: only the burst of mails gets through.
func TestMailFlood(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MailLimit = RateLimit{Rate: 1.0 / 3600, Burst: 3} })
	for i, victim := range []string{
		"victim@gmail.com", "Victim@Gmail.COM", "vic.tim+1@gmail.com",
		"victim+tag@googlemail.com", "v.i.c.t.i.m@gmail.com", "VICTIM+2@gmail.com",
	} {
		name := fmt.Sprintf("flood%d", i)
		token := e.subscribe(t, name)
		r := e.get(t, "/setemail", "token", token, "email", victim)
		if i < 3 {
			if r.status != http.StatusOK {
				t.Fatalf("mail %d: %d %s", i, r.status, r.body)
			}
			continue
		}
		limited(t, r, 3000, 3600)
		if d := e.stored(t, name); d.Email != "" || d.Pending != nil {
			t.Errorf("%s: a limited setemail stored contact %q, pending %+v", name, d.Email, d.Pending)
		}
	}
	if n := len(e.smtp.Messages()); n != 3 {
		t.Fatalf("the victim received %d mails, want 3", n)
	}
	e.ok(t, "/setemail", "token", e.subscribe(t, "bystander"), "email", "someone@example.org")
	if n := len(e.smtp.Messages()); n != 4 {
		t.Errorf("mail to another address was limited too: %d mails", n)
	}
}

// TestMailFloodInternationalised: the forms of one internationalised address (case, NFC or
// not, the domain in Unicode or IDNA form, a +tag) count as one mailbox.
func TestMailFloodInternationalised(t *testing.T) {
	e := newEnvSMTPUTF8(t, true, func(c *Config) { c.MailLimit = RateLimit{Rate: 1.0 / 3600, Burst: 2} })
	for i, victim := range []string{"jöhn@exämple.com", "JÖHN+1@xn--exmple-cua.com", "jo\u0308hn@EXÄMPLE.com"} {
		r := e.get(t, "/setemail", "token", e.subscribe(t, fmt.Sprintf("flood%d", i)), "email", victim)
		if i < 2 && r.status != http.StatusOK {
			t.Fatalf("mail %d: %d %s", i, r.status, r.body)
		}
		if i == 2 {
			limited(t, r, 3000, 3600)
		}
	}
	e.ok(t, "/setemail", "token", e.subscribe(t, "bystander"), "email", "jöhn@example.com")
	if n := len(e.smtp.Messages()); n != 3 {
		t.Errorf("%d mails sent, want 2 to the flooded mailbox and 1 to another", n)
	}
}

// TestMailLimitPerName lets one name mail a few addresses, then no more.
func TestMailLimitPerName(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MailLimit = RateLimit{Rate: 1.0 / 3600, Burst: 3} })
	token := e.subscribe(t, "demo")
	for i := range 3 {
		e.ok(t, "/setemail", "token", token, "email", fmt.Sprintf("owner%d@example.org", i))
	}
	limited(t, e.get(t, "/setemail", "token", token, "email", "owner3@example.org"), 3000, 3600)
	if d := e.stored(t, "demo"); d.Email != "owner2@example.org" || len(e.smtp.Messages()) != 3 {
		t.Errorf("after the limit: contact %q, %d mails", d.Email, len(e.smtp.Messages()))
	}
}

// TestMailLimitReclaim counts reclamation mail against the name and the contact's mailbox,
// apart from the mail owners ask for: strangers cannot use up the owner's budget.
func TestMailLimitReclaim(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MailLimit = RateLimit{Rate: 1.0 / 3600, Burst: 3} })
	tokens := map[string]string{}
	for _, name := range []string{"alpha", "beta", "gamma"} {
		tokens[name] = e.subscribe(t, name)
		e.ok(t, "/setemail", "token", tokens[name], "email", "owner+"+name+"@example.org")
	}
	e.ok(t, "/reclaim", "name", "alpha")
	e.ok(t, "/reclaim", "name", "alpha")
	e.ok(t, "/reclaim", "name", "beta")
	hashes := e.stored(t, "alpha").ReclamationTokens()

	// gamma has reclamation mail left, but its owner's mailbox has had three.
	limited(t, e.get(t, "/reclaim", "name", "gamma"), 3000, 3600)
	limited(t, e.get(t, "/reclaim", "name", "alpha"), 3000, 3600)
	if n := len(e.smtp.Messages()); n != 6 {
		t.Errorf("%d mails sent, want 3 verifications and 3 reclamations", n)
	}
	if len(e.stored(t, "gamma").ReclamationTokens()) != 0 || !slices.Equal(e.stored(t, "alpha").ReclamationTokens(), hashes) {
		t.Error("a limited reclaim changed a reclamation token")
	}
	e.fails(t, "NoSuchName", "/reclaim", "name", "delta")
}

// TestMailBudgetsApart: a name whose reclamation budget strangers used up still gets the
// mail its owner asks for.
func TestMailBudgetsApart(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MailLimit = RateLimit{Rate: 1.0 / 3600, Burst: 2} })
	token := e.subscribe(t, "demo")
	e.ok(t, "/setemail", "token", token, "email", "owner@example.org")
	e.ok(t, "/reclaim", "name", "demo")
	e.ok(t, "/reclaim", "name", "demo")
	limited(t, e.get(t, "/reclaim", "name", "demo"), 3000, 3600)
	e.ok(t, "/setemail", "token", token, "email", "owner@example.org")
	if n := len(e.smtp.Messages()); n != 4 {
		t.Errorf("%d mails, want 4", n)
	}
}

func TestRateLimitsOff(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.ClientLimit = RateLimit{Rate: -1}
		c.MailLimit = RateLimit{Rate: -1, Burst: 3}
	})
	token := e.subscribe(t, "demo")
	for range 30 {
		e.unavailable(t, "MissingParameter", "/subscribe")
	}
	for range 8 {
		e.ok(t, "/setemail", "token", token, "email", "owner@example.org")
	}
	if n := len(e.smtp.Messages()); n != 8 {
		t.Errorf("%d mails sent, want 8", n)
	}
}

func TestNewChecksRateLimits(t *testing.T) {
	store := openStore(t, testEtcd)
	mailer := DirMailer{Dir: t.TempDir()}
	for _, l := range []RateLimit{
		{Rate: 0, Burst: 5},
		{Rate: 1, Burst: 0},
		{Rate: 1, Burst: -1},
		{Rate: math.NaN(), Burst: 1},
		{Rate: math.Inf(1), Burst: 1},
	} {
		if _, err := New(store, Config{Zone: zone, Mailer: mailer, ClientLimit: l}); err == nil {
			t.Errorf("client limit %+v accepted", l)
		}
		if _, err := New(store, Config{Zone: zone, Mailer: mailer, MailLimit: l}); err == nil {
			t.Errorf("mail limit %+v accepted", l)
		}
	}
	s, err := New(store, Config{Zone: zone, Mailer: mailer})
	if err != nil {
		t.Fatal(err)
	}
	if c, m := s.clientLimit, s.mailLimit; c == nil || m == nil || c.rate != 1 || c.burst != 20 || float64(m.rate) != 1.0/60 || m.burst != 10 {
		t.Errorf("defaults: client %+v mail %+v", c, m)
	}
	s, err = New(store, Config{Zone: zone, Mailer: mailer, ClientLimit: RateLimit{Rate: -1}, MailLimit: RateLimit{Rate: -0.5, Burst: 9}})
	if err != nil || s.clientLimit != nil || s.mailLimit != nil {
		t.Errorf("negative rates did not turn the limits off: %v", err)
	}
}

func TestLimiter(t *testing.T) {
	l, err := newLimiter(RateLimit{Rate: 0.5, Burst: 2}, defaultClientLimit)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range 2 {
		if wait := l.allow(now, "a"); wait != 0 {
			t.Fatalf("request %d of the burst waits %v", i, wait)
		}
	}
	if wait := l.allow(now, "a"); wait != 2*time.Second {
		t.Errorf("over the burst: wait %v, want 2s at 0.5 a second", wait)
	}
	if wait := l.allow(now.Add(time.Second), "a"); wait != time.Second {
		t.Errorf("half refilled: wait %v, want 1s", wait)
	}
	if wait := l.allow(now.Add(2*time.Second), "a"); wait != 0 {
		t.Errorf("refilled: wait %v", wait)
	}

	// Several keys are all charged or none: a refusal through one leaves the others as they were.
	if wait := l.allow(now.Add(2*time.Second), "b", "a"); wait != 2*time.Second {
		t.Errorf("with an empty key: wait %v", wait)
	}
	for i := range 2 {
		if wait := l.allow(now.Add(2*time.Second), "b"); wait != 0 {
			t.Errorf("b was charged for a refused request: request %d waits %v", i, wait)
		}
	}
}

// TestLimiterMemoryBounded floods a limiter with distinct keys, as a botnet would.
func TestLimiterMemoryBounded(t *testing.T) {
	l, err := newLimiter(RateLimit{Rate: 0.001, Burst: 2}, defaultClientLimit)
	if err != nil {
		t.Fatal(err)
	}
	l.max = 100
	now := time.Now()
	for i := range 10_000 {
		l.allow(now, fmt.Sprintf("203.0.113.%d/%d", i%256, i))
		if n := len(l.buckets); n > l.max {
			t.Fatalf("after %d keys the limiter holds %d buckets, over its bound of %d", i+1, n, l.max)
		}
	}

	// Idle buckets (full again) are forgotten at the next sweep; a busy one is kept.
	l, _ = newLimiter(RateLimit{Rate: 1, Burst: 2}, defaultClientLimit)
	for i := range 50 {
		l.allow(now, strconv.Itoa(i))
	}
	busy := now.Add(sweepEvery - time.Millisecond)
	l.allow(busy, "busy")
	l.allow(busy, "busy")
	later := now.Add(sweepEvery)
	if l.allow(later, "new"); len(l.buckets) != 2 {
		t.Errorf("after a sweep %d buckets are left, want busy and new", len(l.buckets))
	}
	if wait := l.allow(later, "busy"); wait == 0 {
		t.Error("the sweep forgot a busy bucket")
	}
}

// TestClientLimitFlood sends requests from many addresses through the API: the buckets stay bounded.
func TestClientLimitFlood(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.ClientLimit = RateLimit{Rate: 0.01, Burst: 1}
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	e.api.clientLimit.max = 40
	for i := range 200 {
		addr := fmt.Sprintf("81.2.%d.%d", i/200, i%200+1)
		if r := e.do(t, http.MethodGet, http.Header{"X-Real-Ip": {addr}}, "/subscribe"); r.reason() != "MissingParameter" {
			t.Fatalf("%s: %d %s", addr, r.status, r.body)
		}
		e.api.clientLimit.mu.Lock()
		n := len(e.api.clientLimit.buckets)
		e.api.clientLimit.mu.Unlock()
		if n > 40 {
			t.Fatalf("after %d addresses %d buckets", i+1, n)
		}
	}
}
