package api

import (
	"bytes"
	"context"
	"encoding/json"
	golog "log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/regdns/regdns/etcdstore"
	"github.com/regdns/regdns/etcdstore/etcdtest"
)

func TestConnectivityCheck(t *testing.T) {
	e := newEnv(t, nil)
	r := e.ok(t, "/connectivity-check")
	if r.body != "OK" || r.header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("%q %q", r.header.Get("Content-Type"), r.body)
	}
}

func TestCORS(t *testing.T) {
	e := newEnv(t, nil)
	for _, path := range []string{"/subscribe", "/unsubscribe", "/reclaim", "/ping", "/dnsconfig", "/info", "/setemail", "/revokeemail", "/connectivity-check"} {
		t.Run(path, func(t *testing.T) {
			// Error replies need the header too, or the web UI cannot read the error.
			if got := e.get(t, path).header.Get("Access-Control-Allow-Origin"); got != "*" {
				t.Errorf("GET: Access-Control-Allow-Origin %q", got)
			}
			r := e.do(t, http.MethodOptions, http.Header{"Origin": {"https://gateway.example"}, "Access-Control-Request-Method": {"GET"}}, path)
			if r.status != http.StatusNoContent || r.header.Get("Access-Control-Allow-Origin") != "*" || r.header.Get("Access-Control-Allow-Methods") != "GET" {
				t.Errorf("preflight: %d %v", r.status, r.header)
			}
		})
	}
	t.Run("/verifyemail", func(t *testing.T) {
		if got := e.get(t, "/verifyemail").header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("GET: Access-Control-Allow-Origin %q", got)
		}
		if got := e.do(t, http.MethodOptions, nil, "/verifyemail").header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("OPTIONS: Access-Control-Allow-Origin %q", got)
		}
	})
}

func TestUnknownRequests(t *testing.T) {
	e := newEnv(t, nil)
	for _, tt := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/nope", http.StatusNotFound},
		{http.MethodPost, "/subscribe", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/info", http.StatusMethodNotAllowed},
	} {
		if r := e.do(t, tt.method, nil, tt.path); r.status != tt.status {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, r.status, tt.status)
		}
	}
}

func TestCallerAddress(t *testing.T) {
	direct := newEnv(t, nil)
	proxied := newEnv(t, func(c *Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}
	})
	for i, tt := range []struct {
		name   string
		env    *env
		header http.Header
		want   string
	}{
		{"no proxy", direct, nil, "127.0.0.1"},
		{"X-Real-IP from an untrusted peer", direct, http.Header{"X-Real-Ip": {"203.0.113.7"}}, "127.0.0.1"},
		{"X-Forwarded-For from an untrusted peer", direct, http.Header{"X-Forwarded-For": {"203.0.113.7"}}, "127.0.0.1"},
		{"trusted peer without headers", proxied, nil, "127.0.0.1"},
		{"X-Real-IP from a trusted peer", proxied, http.Header{"X-Real-Ip": {" 203.0.113.7 "}}, "203.0.113.7"},
		{"X-Real-IP over X-Forwarded-For", proxied, http.Header{"X-Real-Ip": {"203.0.113.7"}, "X-Forwarded-For": {"198.51.100.1"}}, "203.0.113.7"},
		{"X-Real-IP IPv6", proxied, http.Header{"X-Real-Ip": {"2001:db8::5"}}, "2001:db8::5"},
		{"X-Real-IP IPv4-mapped", proxied, http.Header{"X-Real-Ip": {"::ffff:203.0.113.5"}}, "203.0.113.5"},
		{"rightmost X-Forwarded-For", proxied, http.Header{"X-Real-Ip": {"garbage"}, "X-Forwarded-For": {"198.51.100.1, 203.0.113.9"}}, "203.0.113.9"},
		{"trusted hops skipped", proxied, http.Header{"X-Forwarded-For": {"198.51.100.1, 203.0.113.9, 10.1.2.3"}}, "203.0.113.9"},
		{"several X-Forwarded-For headers", proxied, http.Header{"X-Forwarded-For": {"198.51.100.1", "203.0.113.10,10.0.0.1"}}, "203.0.113.10"},
		{"unparsable hop stops the walk", proxied, http.Header{"X-Forwarded-For": {"198.51.100.1, junk"}}, "127.0.0.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			name := "caller" + string(rune('a'+i))
			r := tt.env.do(t, http.MethodGet, tt.header, "/subscribe", "name", name)
			if r.status != http.StatusOK {
				t.Fatalf("%d %s", r.status, r.body)
			}
			d := tt.env.stored(t, name)
			got := d.IPv4
			if !got.IsValid() {
				got = d.IPv6
			}
			if got.String() != tt.want || (d.IPv4.IsValid() && d.IPv6.IsValid()) {
				t.Errorf("recorded %v %v, want %s", d.IPv4, d.IPv6, tt.want)
			}
		})
	}
}

// TestStoreDown stops etcd under a running API: requests must fail soon with a 501.
func TestStoreDown(t *testing.T) {
	etcd, stopEtcd := etcdtest.StartStoppable(t)
	e := newEnvOn(t, openStore(t, etcd), nil)
	token := e.subscribe(t, "demo")
	stopEtcd()

	for _, tt := range []struct {
		path   string
		params []string
		ctype  string
	}{
		// A ping that changes nothing is answered from the view (see TestPingWithoutChange);
		// one that reports a new address must reach etcd.
		{"/ping", []string{"token", token, "ip", "198.51.99.7"}, "application/json"},
		{"/dnsconfig", []string{"token", token, "challenge", "value"}, "application/json"},
		{"/verifyemail", []string{"s", "00000000-0000-4000-8000-000000000000"}, "text/html; charset=utf-8"},
	} {
		start := time.Now()
		r := e.get(t, tt.path, tt.params...)
		if took := time.Since(start); took > 3500*time.Millisecond {
			t.Errorf("%s took %v", tt.path, took)
		}
		if r.status != http.StatusNotImplemented || r.header.Get("Content-Type") != tt.ctype {
			t.Errorf("%s: %d %s %s", tt.path, r.status, r.header.Get("Content-Type"), r.body)
		}
		if tt.ctype == "application/json" && r.code() != "InternalError" {
			t.Errorf("%s: code %q", tt.path, r.code())
		}
	}
}

func TestMailFailure(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	e := newEnv(t, func(c *Config) {
		c.Mailer = SMTPMailer{Addr: dead, Security: "none", From: "registry@mydomain.org", Timeout: time.Second}
	})
	token := e.subscribe(t, "demo")
	_, err = e.store.Update(context.Background(), etcdstore.ByName("demo"), func(d *etcdstore.Record) error {
		d.Email = "owner@example.org"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		kind mailBudget
		call []string
	}{
		{ownerMail, []string{"/setemail", "token", token, "email", "new@example.org"}},
		{reclaimMail, []string{"/reclaim", "name", "demo"}},
	} {
		failed, sent := mails.WithLabelValues(string(tt.kind), "failed"), mails.WithLabelValues(string(tt.kind), "sent")
		failedBefore, sentBefore := metricValue(t, failed), metricValue(t, sent)
		r := e.get(t, tt.call[0], tt.call[1:]...)
		if r.status != http.StatusNotImplemented || r.code() != "InternalError" || strings.Contains(r.body, dead) {
			t.Errorf("%s: %d %s", tt.call[0], r.status, r.body)
		}
		if got := metricValue(t, failed) - failedBefore; got != 1 {
			t.Errorf("%s: mails_total{kind=%q,result=\"failed\"} grew by %v, want 1", tt.call[0], tt.kind, got)
		}
		if got := metricValue(t, sent) - sentBefore; got != 0 {
			t.Errorf("%s: mails_total{kind=%q,result=\"sent\"} grew by %v, want 0", tt.call[0], tt.kind, got)
		}
	}
}

// TestMailsSentCounted: a delivered mail counts once as sent, by kind.
func TestMailsSentCounted(t *testing.T) {
	e := newEnv(t, nil)
	token := e.subscribe(t, "demo")
	for _, tt := range []struct {
		kind mailBudget
		call func()
	}{
		{ownerMail, func() { e.verifyLink(t, token, "owner@example.org") }},
		{reclaimMail, func() { e.reclamationToken(t, "demo") }},
	} {
		sent := mails.WithLabelValues(string(tt.kind), "sent")
		before := metricValue(t, sent)
		tt.call()
		if got := metricValue(t, sent) - before; got != 1 {
			t.Errorf("mails_total{kind=%q,result=\"sent\"} grew by %v, want 1", tt.kind, got)
		}
	}
}

// TestLogsHoldNoSecrets runs a whole lifecycle, failures included, and looks for its secrets
// in everything logged meanwhile.
func TestLogsHoldNoSecrets(t *testing.T) {
	var logs bytes.Buffer
	golog.SetOutput(&logs)
	defer golog.SetOutput(os.Stderr)

	e := newEnv(t, nil)
	token := e.subscribe(t, "demo")
	e.ok(t, "/ping", "token", token)
	e.ok(t, "/dnsconfig", "token", token, "challenge", "acme-value")
	e.ok(t, "/info", "token", token)
	link := e.verifyLink(t, token, "owner@example.org")
	fetch(t, http.MethodGet, nil, link)
	fetch(t, http.MethodGet, nil, link)
	rt := e.reclamationToken(t, "demo")
	_, mailBody := e.smtp.Last(t).Parse(t)
	r := e.ok(t, "/subscribe", "name", "demo", "reclamationToken", rt)
	var out struct{ Token string }
	json.Unmarshal([]byte(r.body), &out)
	e.fails(t, "InvalidToken", "/info", "token", token)
	e.ok(t, "/unsubscribe", "token", out.Token)

	broken := newEnv(t, func(c *Config) {
		c.Mailer = SMTPMailer{Addr: "127.0.0.1:1", Security: "none", From: "registry@mydomain.org", Timeout: time.Second}
	})
	other := broken.subscribe(t, "other")
	broken.get(t, "/setemail", "token", other, "email", "owner@example.org")
	golog.SetOutput(os.Stderr)

	got := logs.String()
	if !strings.Contains(got, `GET "/subscribe" 200`) || !strings.Contains(got, `GET "/setemail" 501`) || !strings.Contains(got, "127.0.0.1") {
		t.Errorf("access log lines missing:\n%s", got)
	}
	id := strings.TrimPrefix(link, e.url+"/verifyemail?s=")
	for what, secret := range map[string]string{
		"token": token, "new token": out.Token, "reclamation token": rt, "verification id": id,
		"other token": other, "mail body": strings.TrimSpace(strings.Split(mailBody, "\r\n")[2]),
	} {
		if strings.Contains(strings.ToLower(got), strings.ToLower(secret)) {
			t.Errorf("the %s is in the logs:\n%s", what, got)
		}
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, nil)
	counts := func() [4]float64 {
		var out [4]float64
		for i, m := range []prometheus.Metric{
			requests.WithLabelValues("connectivity-check", "200"),
			requests.WithLabelValues("info", "400"),
			requests.WithLabelValues("other", "404"),
			requestDuration.WithLabelValues("info").(prometheus.Metric),
		} {
			var pb dto.Metric
			if err := m.Write(&pb); err != nil {
				t.Fatal(err)
			}
			out[i] = pb.GetCounter().GetValue() + float64(pb.GetHistogram().GetSampleCount())
		}
		return out
	}
	before := counts()
	e.get(t, "/connectivity-check")
	e.get(t, "/info")
	e.get(t, "/no/such/path")
	after := counts()
	for i, what := range []string{"connectivity-check 200", "info 400", "other 404", "info duration"} {
		if after[i] != before[i]+1 {
			t.Errorf("%s: counted %v, want %v", what, after[i], before[i]+1)
		}
	}
}

// A request beyond MaxConcurrent gets 503 Busy at once and is counted like any other.
func TestBusyCounted(t *testing.T) {
	// An SMTP server that accepts and never speaks holds /setemail in progress.
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := hole.Accept(); err == nil {
			accepted <- c
		}
	}()
	e := newEnv(t, func(c *Config) {
		c.MaxConcurrent = 1
		c.Mailer = SMTPMailer{Addr: hole.Addr().String(), Security: "none", From: "registry@mydomain.org"}
	})
	tok := e.subscribe(t, "busy")
	stuck := make(chan reply)
	go func() { stuck <- fetch(t, "GET", nil, e.url+"/setemail?token="+tok+"&email=a@example.net") }()
	var mailConn net.Conn
	select {
	case mailConn = <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("/setemail never reached the mail server")
	}
	busy := requests.WithLabelValues("connectivity-check", "503")
	before := metricValue(t, busy)
	r := e.get(t, "/connectivity-check")
	if r.status != http.StatusServiceUnavailable || r.code() != "Busy" || r.header.Get("Retry-After") != "1" {
		t.Errorf("request beyond MaxConcurrent: %d %q Retry-After %q, want 503 Busy 1", r.status, r.code(), r.header.Get("Retry-After"))
	}
	if got := metricValue(t, busy) - before; got != 1 {
		t.Errorf("requests{connectivity-check,503} rose by %v, want 1", got)
	}
	mailConn.Close()
	hole.Close()
	if r := <-stuck; r.status != http.StatusNotImplemented {
		t.Errorf("setemail with a dead SMTP server: %d, want 501", r.status)
	}
	if r := e.get(t, "/connectivity-check"); r.status != 200 {
		t.Errorf("after the slot is free: %d, want 200", r.status)
	}
}

func TestNewChecksConfig(t *testing.T) {
	store := openStore(t, testEtcd)
	mailer := DirMailer{Dir: t.TempDir()}
	for _, tt := range []struct {
		name  string
		store Store
		cfg   Config
	}{
		{"no store", nil, Config{Zone: zone, Mailer: mailer}},
		{"no mailer", store, Config{Zone: zone}},
		{"no zone", store, Config{Zone: " . ", Mailer: mailer}},
		{"challenge keep of 1", store, Config{Zone: zone, Mailer: mailer, ChallengeKeep: 1}},
		{"negative lifetime", store, Config{Zone: zone, Mailer: mailer, VerifyTTL: -time.Hour}},
		{"negative max concurrent", store, Config{Zone: zone, Mailer: mailer, MaxConcurrent: -1}},
		{"relative verify URL", store, Config{Zone: zone, Mailer: mailer, VerifyURL: "/verifyemail"}},
		{"verify URL with a query", store, Config{Zone: zone, Mailer: mailer, VerifyURL: "https://api.mydomain.org/verifyemail?x=1"}},
		{"template that does not parse", store, Config{Zone: zone, Mailer: mailer, Templates: Templates{VerifyBody: "{{.Link"}}},
		{"template with an unknown field", store, Config{Zone: zone, Mailer: mailer, Templates: Templates{ErrorPage: "{{.Reason}}"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.store, tt.cfg); err == nil {
				t.Error("New accepted it")
			}
		})
	}
	s, err := New(store, Config{Zone: "MyDomain.org.", Mailer: mailer})
	if err != nil {
		t.Fatal(err)
	}
	if s.verifyURL != "https://api.mydomain.org/verifyemail" || s.challengeKeep != 2 || s.verifyTTL != 24*time.Hour || s.reclaimTTL != 24*time.Hour {
		t.Errorf("defaults: %q %d %v %v", s.verifyURL, s.challengeKeep, s.verifyTTL, s.reclaimTTL)
	}
}
