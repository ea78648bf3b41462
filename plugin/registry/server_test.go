package registry

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	_ "github.com/coredns/coredns/plugin/any"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/transfer"
	"github.com/miekg/dns"

	"github.com/regdns/regdns/etcdstore"
	"github.com/regdns/regdns/etcdstore/etcdtest"
)

// The tests run the plugin inside a real CoreDNS server (caddy instance) on loopback, with a
// real embedded etcd shared by the package; each test gets its own key prefix.
var (
	testEtcd    *etcdstore.Embedded
	startMu     sync.Mutex
	prefixCount int
)

func TestMain(m *testing.M) {
	if err := dnsserver.Register(); err != nil {
		panic(err)
	}
	dnsserver.Directives = append(dnsserver.Directives, name)
	var stop func()
	var err error
	testEtcd, stop, err = etcdtest.StartShared()
	if err != nil {
		panic(err)
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

type corefile string

func (c corefile) Body() []byte       { return []byte(c) }
func (c corefile) Path() string       { return "Corefile" }
func (c corefile) ServerType() string { return "dns" }

// server is one running CoreDNS with the registry plugin.
type server struct {
	t        *testing.T
	inst     *caddy.Instance
	udp, tcp string
	api      string // http://host:port
}

// registryBlock is the registry's Corefile block for tests; extra lines go inside it.
func registryBlock(t *testing.T, extra string) string {
	startMu.Lock()
	prefixCount++
	p := prefixCount
	startMu.Unlock()
	return fmt.Sprintf(`registry {
		etcd %s
		etcd_prefix /test-%s-%d/
		etcd_timeout 1s
		api 127.0.0.1:0
		data %s
		ns ns1.example.org 192.0.2.53 2001:db8::53
		ns ns2.dns.example.org 192.0.2.54
		ns ns.other.net
		soa ns1.example.org hostmaster.example.org 3600 600 604800 60
		ttl 3600
		address_ttl 60
		challenge_ttl 30
		tunnel 198.51.100.1 2001:db8::1
		verify_url http://127.0.0.1/verifyemail
		client_limit off
		%s
	}`, strings.Join(testEtcd.Endpoints(), " "), t.Name(), p, t.TempDir(), extra)
}

func startServer(t *testing.T, extra string) *server {
	t.Helper()
	return startServerWith(t, "", extra)
}

// startServerWith starts a server whose block also holds the lines plugins (such as a
// transfer block), and extra lines in the registry block.
func startServerWith(t *testing.T, plugins, extra string) *server {
	t.Helper()
	cf := "example.org:0 {\n bind 127.0.0.1\n ready 127.0.0.1:0\n any\n " + plugins + "\n " + registryBlock(t, extra) + "\n}\n"
	startMu.Lock()
	caddy.Quiet, dnsserver.Quiet = true, true
	inst, err := caddy.Start(corefile(cf))
	startMu.Unlock()
	if err != nil {
		t.Fatalf("start CoreDNS: %v", err)
	}
	s := &server{t: t, inst: inst}
	t.Cleanup(func() { s.stop() })
	srv := inst.Servers()[0]
	s.udp, s.tcp = srv.LocalAddr().String(), srv.Addr().String()
	s.api = "http://" + apiAddr(t, "127.0.0.1:0")
	return s
}

func (s *server) stop() {
	if s.inst != nil {
		s.inst.Stop()
		s.inst.ShutdownCallbacks()
		s.inst = nil
	}
}

// apiAddr is the bound address of the API listener configured as key.
func apiAddr(t *testing.T, key string) string {
	listeners.mu.Lock()
	defer listeners.mu.Unlock()
	e, ok := listeners.m[key]
	if !ok {
		e, ok = listeners.m[key+"|tls"]
	}
	if !ok {
		t.Fatalf("no API listener for %s", key)
	}
	return e.v.Addr().String()
}

// get calls the API and returns the status and body.
func (s *server) get(path string, params url.Values) (int, string) {
	s.t.Helper()
	resp, err := http.Get(s.api + path + "?" + params.Encode())
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// subscribe registers name and returns its token.
func (s *server) subscribe(name string, extra url.Values) string {
	s.t.Helper()
	p := url.Values{"name": {name}}
	for k, v := range extra {
		p[k] = v
	}
	code, body := s.get("/subscribe", p)
	if code != 200 {
		s.t.Fatalf("subscribe %s: %d %s", name, code, body)
	}
	var r struct{ Name, Token string }
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.Token == "" {
		s.t.Fatalf("subscribe %s: bad body %q", name, body)
	}
	return r.Token
}

func (s *server) mustGet(path string, params url.Values) {
	s.t.Helper()
	if code, body := s.get(path, params); code != 200 {
		s.t.Fatalf("%s: %d %s", path, code, body)
	}
}

// query asks the server over net ("udp" or "tcp").
func (s *server) query(net, qname string, qtype uint16) *dns.Msg {
	s.t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(qname, qtype)
	return s.exchange(net, m)
}

func (s *server) exchange(net string, m *dns.Msg) *dns.Msg {
	s.t.Helper()
	addr := s.udp
	if net == "tcp" {
		addr = s.tcp
	}
	c := &dns.Client{Net: net, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		s.t.Fatalf("%s query %s: %v", net, m.Question[0].String(), err)
	}
	return r
}
