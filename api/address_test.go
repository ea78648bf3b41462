package api

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/regdns/regdns/etcdstore"
)

// serveIPv6 serves e's API on the IPv6 loopback too and returns its base URL. It skips the test
// on a machine without an IPv6 loopback, the only reason it may.
func serveIPv6(t *testing.T, e *env) string {
	t.Helper()
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("this machine has no IPv6 loopback (::1): %v", err)
	}
	ts := httptest.NewUnstartedServer(e.api)
	ts.Listener.Close()
	ts.Listener = l
	ts.Start()
	t.Cleanup(ts.Close)
	return "http://" + l.Addr().String()
}

// addrs returns the stored addresses of name, "" for none.
func (e *env) addrs(t *testing.T, name string) (v4, v6 string) {
	t.Helper()
	d := e.stored(t, name)
	if d.IPv4.IsValid() {
		v4 = d.IPv4.String()
	}
	if d.IPv6.IsValid() {
		v6 = d.IPv6.String()
	}
	return v4, v6
}

func TestPingOverIPv6(t *testing.T) {
	e := newEnv(t, nil)
	six := serveIPv6(t, e)
	token := e.subscribe(t, "demo", "mode", "1")

	if r := fetch(t, http.MethodGet, nil, six+"/ping?token="+token); r.status != http.StatusOK {
		t.Fatalf("ping over IPv6: %d %s", r.status, r.body)
	}
	if v4, v6 := e.addrs(t, "demo"); v4 != "127.0.0.1" || v6 != "::1" {
		t.Errorf("after a ping over IPv6: %q %q, want 127.0.0.1 kept and ::1", v4, v6)
	}
	if info := e.info(t, token); info["ip"] != "127.0.0.1" || info["ipv6"] != "::1" {
		t.Errorf("info shows ip %v ipv6 %v", info["ip"], info["ipv6"])
	}

	// Each family's parameter replaces only the caller's address of that family.
	for _, tt := range []struct {
		base, query string
		v4, v6      string
	}{
		{six, "ip=+%3A%3Affff%3A81.2.69.143+", "81.2.69.143", "::1"},
		{six, "ipv6=2A00:1450:4001::3", "81.2.69.143", "2a00:1450:4001::3"},
		{e.url, "", "127.0.0.1", "2a00:1450:4001::3"},
		{six, "", "127.0.0.1", "::1"},
	} {
		if r := fetch(t, http.MethodGet, nil, tt.base+"/ping?token="+token+"&"+tt.query); r.status != http.StatusOK {
			t.Fatalf("ping %s: %d %s", tt.query, r.status, r.body)
		}
		if v4, v6 := e.addrs(t, "demo"); v4 != tt.v4 || v6 != tt.v6 {
			t.Errorf("ping %q from %s: %q %q, want %q %q", tt.query, tt.base, v4, v6, tt.v4, tt.v6)
		}
	}

	if r := fetch(t, http.MethodGet, nil, six+"/subscribe?name=six"); r.status != http.StatusOK {
		t.Fatalf("subscribe over IPv6: %d %s", r.status, r.body)
	}
	if v4, v6 := e.addrs(t, "six"); v4 != "" || v6 != "::1" {
		t.Errorf("subscribed over IPv6: %q %q, want ::1 only", v4, v6)
	}
}

func TestExplicitAddresses(t *testing.T) {
	e := newEnv(t, nil)
	token := e.subscribe(t, "demo", "mode", "1")
	for _, tt := range []struct {
		params []string
		v4, v6 string
	}{
		{[]string{"ip", "81.2.69.142"}, "81.2.69.142", ""},
		{[]string{"ipv6", "2a00:1450:4001::1"}, "127.0.0.1", "2a00:1450:4001::1"},
		{[]string{"ip", "81.2.69.144", "ipv6", "2a00:1450:4001::2"}, "81.2.69.144", "2a00:1450:4001::2"},
		{[]string{"ip", "::ffff:8.8.8.8"}, "8.8.8.8", "2a00:1450:4001::2"},
		{[]string{"ipv6", "64:ff9b::5102:458e"}, "127.0.0.1", "64:ff9b::5102:458e"},
		{[]string{"ipv6", "2002:5102:458e::1"}, "127.0.0.1", "2002:5102:458e::1"},
		{[]string{"ipv6", "2001:0:4136:e378:8000:63bf:adfd:bb71"}, "127.0.0.1", "2001:0:4136:e378:8000:63bf:adfd:bb71"},
		{[]string{"ip", "", "ipv6", " "}, "127.0.0.1", "2001:0:4136:e378:8000:63bf:adfd:bb71"},
		{[]string{"ipv6", "64:ff9b::5102:458e"}, "127.0.0.1", "64:ff9b::5102:458e"},
	} {
		e.ok(t, "/ping", append([]string{"token", token}, tt.params...)...)
		if v4, v6 := e.addrs(t, "demo"); v4 != tt.v4 || v6 != tt.v6 {
			t.Errorf("ping %v: %q %q, want %q %q", tt.params, v4, v6, tt.v4, tt.v6)
		}
	}

	e.subscribe(t, "both", "ip", "81.2.69.142", "ipv6", "2a00:1450:4001::1")
	if v4, v6 := e.addrs(t, "both"); v4 != "81.2.69.142" || v6 != "2a00:1450:4001::1" {
		t.Errorf("subscribed with ip and ipv6: %q %q", v4, v6)
	}
	e.subscribe(t, "v6only", "ipv6", "2a00:1450:4001::1")
	if v4, v6 := e.addrs(t, "v6only"); v4 != "127.0.0.1" || v6 != "2a00:1450:4001::1" {
		t.Errorf("subscribed with ipv6: %q %q, want the caller's IPv4 too", v4, v6)
	}
	info := e.info(t, token)
	if info["ip"] != "127.0.0.1" || info["ipv6"] != "64:ff9b::5102:458e" {
		t.Errorf("info shows ip %v ipv6 %v", info["ip"], info["ipv6"])
	}
}

func TestExplicitAddressRefused(t *testing.T) {
	e := newEnv(t, nil)
	token := e.subscribe(t, "demo")
	e.ok(t, "/ping", "token", token, "ip", "81.2.69.142", "ipv6", "2a00:1450:4001::1")
	before := e.stored(t, "demo")
	for i, tt := range []struct {
		param, value, reason string
	}{
		{"ip", "abc", "not an IPv4 address"},
		{"ip", "1.2.3", "not an IPv4 address"},
		{"ip", "81.2.69.142/32", "not an IPv4 address"},
		{"ip", "2a00:1450:4001::1", "must be an IPv4 address"},
		{"ip", "0.0.0.0", "unspecified"},
		{"ip", "0.1.2.3", "this network"},
		{"ip", "10.0.0.1", "private"},
		{"ip", "172.16.5.4", "private"},
		{"ip", "192.168.1.1", "private"},
		{"ip", "::ffff:10.0.0.1", "private"},
		{"ip", "127.0.0.1", "loopback"},
		{"ip", "127.1.2.3", "loopback"},
		{"ip", "169.254.1.1", "link-local"},
		{"ip", "224.0.0.1", "multicast"},
		{"ip", "239.255.255.250", "multicast"},
		{"ip", "255.255.255.255", "broadcast"},
		{"ip", "100.64.0.1", "carrier-grade NAT"},
		{"ip", "192.0.0.8", "IETF protocol assignments"},
		{"ip", "192.0.2.1", "documentation"},
		{"ip", "198.51.100.1", "documentation"},
		{"ip", "203.0.113.1", "documentation"},
		{"ip", "198.18.0.1", "benchmarking"},
		{"ip", "198.19.255.255", "benchmarking"},
		{"ip", "240.0.0.1", "reserved (240.0.0.0/4)"},
		{"ipv6", "zz::1", "not an IPv6 address"},
		{"ipv6", "81.2.69.142", "must be an IPv6 address"},
		{"ipv6", "::ffff:81.2.69.142", "must be an IPv6 address"},
		{"ipv6", "::", "unspecified"},
		{"ipv6", "::1", "loopback"},
		{"ipv6", "fc00::1", "private"},
		{"ipv6", "fd12:3456::1", "private"},
		{"ipv6", "fe80::1", "link-local"},
		{"ipv6", "fe80::1%eth0", "zone"},
		{"ipv6", "2a00:1450:4001::1%eth0", "zone"},
		{"ipv6", "ff02::1", "multicast"},
		{"ipv6", "ff0e::1", "multicast"},
		{"ipv6", "2001:db8::1", "documentation"},
		{"ipv6", "3fff::1", "documentation"},
		{"ipv6", "2001:2::1", "benchmarking"},
		{"ipv6", "100::1", "discard-only"},
		{"ipv6", "fec0::1", "site-local"},
		{"ipv6", "::5102:458e", "IPv4-compatible"},
		{"ipv6", "64:ff9b:1::1", "local-use NAT64"},
		// IPv6 forms that lead to an IPv4 address are judged by it (issue 11).
		{"ipv6", "64:ff9b::a00:1", "IPv6 form of 10.0.0.1, which is a private address"},
		{"ipv6", "64:ff9b::7f00:1", "IPv6 form of 127.0.0.1, which is a loopback address"},
		{"ipv6", "64:ff9b:1::c0a8:101", "local-use NAT64"},
		{"ipv6", "2002:a00:1::1", "IPv6 form of 10.0.0.1, which is a private address"},
		{"ipv6", "2002:6440:1::1", "IPv6 form of 100.64.0.1, which is in the carrier-grade NAT space"},
		{"ipv6", "2002:e000:1::1", "IPv6 form of 224.0.0.1, which is a multicast address"},
		{"ipv6", "2001:0:4136:e378:8000:63bf:f5ff:fffe", "IPv6 form of 10.0.0.1, which is a private address"},
		{"ipv6", "::a00:1", "IPv6 form of 10.0.0.1, which is a private address"},
	} {
		t.Run(tt.param+" "+tt.value, func(t *testing.T) {
			code := map[string]string{"ip": "InvalidIP", "ipv6": "InvalidIPv6"}[tt.param]
			r := e.fails(t, code, "/ping", "token", token, tt.param, tt.value)
			if !strings.Contains(r.body, tt.reason) {
				t.Errorf("message does not say %q: %s", tt.reason, r.body)
			}
			name := "refused" + string(rune('a'+i%26)) + string(rune('a'+i/26))
			e.fails(t, code, "/subscribe", "name", name, tt.param, tt.value)
			if _, err := e.store.Get(context.Background(), etcdstore.ByName(name)); !errors.Is(err, etcdstore.ErrNotFound) {
				t.Errorf("a refused subscription stored %s: %v", name, err)
			}
		})
	}
	if d := e.stored(t, "demo"); d.IPv4 != before.IPv4 || d.IPv6 != before.IPv6 || !d.LastPing.Equal(before.LastPing) {
		t.Errorf("refused pings changed the record: %v %v %v", d.IPv4, d.IPv6, d.LastPing)
	}
}

func TestAllowPrivateAddrs(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AllowPrivateAddrs = true })
	token := e.subscribe(t, "demo", "ip", "10.0.0.1")
	if v4, _ := e.addrs(t, "demo"); v4 != "10.0.0.1" {
		t.Errorf("subscribed with ip 10.0.0.1: stored %q", v4)
	}
	for _, tt := range [][2]string{
		{"ip", "10.0.0.1"}, {"ip", "192.168.1.20"}, {"ip", "127.0.0.2"}, {"ip", "169.254.3.4"},
		{"ip", "100.64.1.1"}, {"ip", "192.0.2.10"}, {"ipv6", "fd00::1"}, {"ipv6", "fe80::2"},
		{"ipv6", "::1"}, {"ipv6", "2001:db8::5"}, {"ipv6", "64:ff9b::a00:1"}, {"ipv6", "2002:c0a8:101::1"},
	} {
		e.ok(t, "/ping", "token", token, tt[0], tt[1])
		v4, v6 := e.addrs(t, "demo")
		if got := map[string]string{"ip": v4, "ipv6": v6}[tt[0]]; got != tt[1] {
			t.Errorf("%s=%s: stored %q", tt[0], tt[1], got)
		}
	}
	// These are never the address of a host, so even a LAN setup cannot mean them.
	for _, tt := range [][3]string{
		{"ip", "0.0.0.0", "unspecified"}, {"ip", "224.0.0.1", "multicast"},
		{"ip", "255.255.255.255", "broadcast"}, {"ip", "10.0.0", "not an IPv4 address"},
		{"ipv6", "::", "unspecified"}, {"ipv6", "ff02::1", "multicast"},
		{"ipv6", "2002:e000:1::1", "IPv6 form of 224.0.0.1, which is a multicast address"},
	} {
		code := map[string]string{"ip": "InvalidIP", "ipv6": "InvalidIPv6"}[tt[0]]
		if r := e.fails(t, code, "/ping", "token", token, tt[0], tt[1]); !strings.Contains(r.body, tt[2]) {
			t.Errorf("%s=%s: message does not say %q: %s", tt[0], tt[1], tt[2], r.body)
		}
	}
}

// TestCallerAddressNotChecked keeps today's behaviour: the address a request really comes
// from is recorded even when it is private, as in a LAN test setup behind a trusted proxy.
func TestCallerAddressNotChecked(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} })
	r := e.do(t, http.MethodGet, http.Header{"X-Real-Ip": {"192.168.1.20"}}, "/subscribe", "name", "lan")
	if r.status != http.StatusOK {
		t.Fatalf("subscribe from a private address: %d %s", r.status, r.body)
	}
	var out struct{ Token string }
	if err := json.Unmarshal([]byte(r.body), &out); err != nil {
		t.Fatal(err)
	}
	token := out.Token
	e.do(t, http.MethodGet, http.Header{"X-Real-Ip": {"fd00::20"}}, "/ping", "token", token)
	if v4, v6 := e.addrs(t, "lan"); v4 != "192.168.1.20" || v6 != "fd00::20" {
		t.Errorf("private caller addresses recorded as %q %q", v4, v6)
	}
}
