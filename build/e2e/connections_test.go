package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/regdns/regdns/api"
	"github.com/regdns/regdns/plugin/dnstest"
)

// The connection flood tests run ./coredns under a low open-file limit and hold more idle
// connections than it could ever serve, from one address, the way issue 11 took it down.

// floodNofile is the open-file limit (soft and hard) of the flooded ./coredns.
const floodNofile = 1024

// startFlooded starts ./coredns under floodNofile with extra registry properties and a
// metrics listener; it returns the product and the metrics address.
func startFlooded(t *testing.T, extra string) (*product, string) {
	t.Helper()
	addrs := dnstest.FreeAddrs(t, 5)
	dir := t.TempDir()
	_, dnsPort, _ := net.SplitHostPort(addrs[0])
	corefile := zoneBlock(dnsPort, "    prometheus "+addrs[4], fmt.Sprintf(`        api %s
        %s
        allow_private_addresses
        %s`, addrs[1], embeddedEtcd(filepath.Join(dir, "data"), addrs[2], addrs[3]), extra))
	p := runCorefile(t, dir, corefile, addrs[0], addrs[1], "prlimit", fmt.Sprintf("--nofile=%d:%d", floodNofile, floodNofile), "--")
	return p, addrs[4]
}

var capsRE = regexp.MustCompile(`API connections capped at (\d+) in total and (\d+) per client address \(open file limit (\d+)\)`)

// caps are the connection caps ./coredns logged at start.
func (p *product) caps() (total, perClient int) {
	p.t.Helper()
	m := capsRE.FindStringSubmatch(p.log.String())
	if m == nil || m[3] != strconv.Itoa(floodNofile) {
		p.t.Fatalf("no connection caps under the open file limit %d in the log:\n%s", floodNofile, p.log.String())
	}
	total, _ = strconv.Atoi(m[1])
	perClient, _ = strconv.Atoi(m[2])
	return total, perClient
}

// openFiles counts the descriptors ./coredns holds.
func (p *product) openFiles() int {
	p.t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid))
	if err != nil {
		p.t.Fatal(err)
	}
	return len(fds)
}

// survived fails the test if ./coredns exited or ran out of descriptors.
func (p *product) survived() {
	p.t.Helper()
	p.alive(p.t)
	if strings.Contains(p.log.String(), "too many open files") {
		p.t.Errorf("coredns ran out of descriptors:\n%s", p.log.String())
	}
}

// flood is n connections from one local address, each having sent one request and read its
// answer, then kept open and silent.
type flood struct {
	conns []net.Conn
	codes map[string]int // "200", "429", "error: ..." and so on
}

// apiFlood opens n keep-alive connections to addr from the local address from.
func apiFlood(t *testing.T, addr, from string, n int) *flood {
	t.Helper()
	return openFlood(t, n, func() (net.Conn, string) { return keepAliveRequest(addr, from) })
}

// keepAliveRequest sends one GET on a new connection and reads the answer's status, leaving
// the connection open (nil if it failed: "closed" if the server closed it unanswered).
func keepAliveRequest(addr, from string) (net.Conn, string) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, "dial error: " + err.Error()
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /connectivity-check HTTP/1.1\r\nHost: api\r\n\r\n"); err != nil {
		c.Close()
		return nil, "closed"
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		return nil, "closed"
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	c.SetDeadline(time.Time{})
	return c, strconv.Itoa(resp.StatusCode)
}

// stillOpen counts the connections the server has not closed: a closed one has its EOF
// waiting already, since the server closes a shed connection before admitting the next.
func (f *flood) stillOpen() int {
	open := 0
	for _, c := range f.conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				open++
			}
		}
	}
	return open
}

func (f *flood) close() {
	for _, c := range f.conns {
		c.Close()
	}
}

// otherClient calls the API from 127.0.0.2 on a fresh connection each time.
func otherClient(p *product) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		DisableKeepAlives: true,
	}}
}

// serves checks that a client other than the flood registers a name through the API (an etcd
// write), and that DNS answers it over UDP and TCP.
func (p *product) serves(client *http.Client, name string) {
	p.t.Helper()
	p.servesOver(client, name, "udp", "tcp")
}

// servesOver is serves with DNS checked over the given networks only (a flooded one left out).
func (p *product) servesOver(client *http.Client, name string, networks ...string) {
	p.t.Helper()
	resp, err := client.Get(p.api + "/subscribe?" + url.Values{"name": {name}, "mode": {"1"}, "ip": {"192.0.2.7"}}.Encode())
	if err != nil {
		p.t.Fatalf("subscribe %s: %v", name, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		p.t.Fatalf("subscribe %s: %d %s", name, resp.StatusCode, b)
	}
	for _, network := range networks {
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := p.query(network, name+".example.org.", dns.TypeA)
			if len(r.Answer) == 1 && r.Answer[0].(*dns.A).A.String() == "192.0.2.7" {
				break
			}
			if time.Now().After(deadline) {
				p.t.Fatalf("%s query for %s: %v", network, name, r)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// metric reads one sample of the metrics endpoint; a missing sample fails the test.
func metric(t *testing.T, metricsAddr, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", sample, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in the metrics", sample)
	return 0
}

// One address holds idle connections far beyond its per-client cap: it keeps only its share,
// the rest are refused at once (429, or closed unanswered once 64 refused connections are
// held open by the flood), and everyone else is served throughout.
func TestIdleAPIFloodFromOneAddress(t *testing.T) {
	p, metricsAddr := startFlooded(t, "")
	_, perClient := p.caps()
	apiAddr := strings.TrimPrefix(p.api, "http://")
	f := apiFlood(t, apiAddr, "127.0.0.1", 1500)
	open := f.stillOpen()
	t.Logf("1500 idle connections from 127.0.0.1 under ulimit -n %d: %v; still open %d; coredns holds %d descriptors",
		floodNofile, f.codes, open, p.openFiles())
	if f.codes["200"] != perClient || f.codes["429"] < api.MaxRefusalsAnswering || f.codes["429"]+f.codes["closed"] != 1500-perClient {
		t.Errorf("flood answers %v, want %d × 200, the rest 429 (at least %d) or closed", f.codes, perClient, api.MaxRefusalsAnswering)
	}
	if open != perClient {
		t.Errorf("%d flood connections still open, want the per-client cap %d", open, perClient)
	}
	p.serves(otherClient(p), "during")
	p.survived()
	if got := metric(t, metricsAddr, `coredns_registry_api_connections_refused_total{cap="client"}`); got != float64(1500-perClient) {
		t.Errorf("refused{cap=client} = %v, want %d", got, 1500-perClient)
	}

	f.close()
	// The listener frees a connection's place when it reads the close, a moment after the
	// client closed: until then the address is still at its cap.
	waitUntil(t, 10*time.Second, "the flood's connections closed on the server", func() bool {
		return metric(t, metricsAddr, "coredns_registry_api_connections") < float64(perClient)
	})
	p.serves(http.DefaultClient, "after")
	p.survived()
}

// Idle connections beyond the total cap (one address, per-client cap lifted: what a botnet
// or many IPv6 /64s can do) make the listener shed the longest-idle ones; descriptors stay
// within the budget and everyone else is served.
func TestIdleAPIFloodBeyondTotal(t *testing.T) {
	p, metricsAddr := startFlooded(t, "api_max_connections auto 100000")
	total, _ := p.caps()
	apiAddr := strings.TrimPrefix(p.api, "http://")
	f := apiFlood(t, apiAddr, "127.0.0.1", 3*total)
	fds, open := p.openFiles(), f.stillOpen()
	t.Logf("%d idle connections from 127.0.0.1 under ulimit -n %d (total cap %d): %v; still open %d; coredns holds %d descriptors",
		3*total, floodNofile, total, f.codes, open, fds)
	if f.codes["200"] != 3*total {
		t.Errorf("flood answers %v, want all 200 (idle connections shed to make room)", f.codes)
	}
	if open > total {
		t.Errorf("%d flood connections still open, above the total cap %d", open, total)
	}
	if fds > floodNofile-256 {
		t.Errorf("coredns holds %d descriptors: the reserve of 256 for etcd and DNS is eaten", fds)
	}
	p.serves(otherClient(p), "during")
	p.survived()
	if got := metric(t, metricsAddr, "coredns_registry_api_connections_shed_total"); got < float64(2*total) {
		t.Errorf("shed = %v, want at least %d", got, 2*total)
	}

	f.close()
	p.serves(http.DefaultClient, "after")
	p.survived()
}

// dnsFlood opens n DNS-over-TCP connections to addr from the local address from, each having
// sent one query and read its answer, then kept open and silent.
func dnsFlood(t *testing.T, addr, from string, n int) *flood {
	t.Helper()
	return openFlood(t, n, func() (net.Conn, string) { return keepAliveQuery(addr, from) })
}

// openFlood calls open n times, 16 at once, and keeps the connections it returns until the
// test ends.
func openFlood(t *testing.T, n int, open func() (net.Conn, string)) *flood {
	t.Helper()
	f := &flood{codes: map[string]int{}}
	var mu sync.Mutex
	work := make(chan struct{})
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range work {
				c, code := open()
				mu.Lock()
				f.codes[code]++
				if c != nil {
					f.conns = append(f.conns, c)
				}
				mu.Unlock()
			}
		})
	}
	for range n {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	t.Cleanup(f.close)
	return f
}

// keepAliveQuery sends one SOA query on a new TCP connection and reads the answer's rcode,
// leaving the connection open (nil if it failed).
func keepAliveQuery(addr, from string) (net.Conn, string) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, "error: " + err.Error()
	}
	dc := &dns.Conn{Conn: c}
	dc.SetDeadline(time.Now().Add(10 * time.Second))
	m := new(dns.Msg)
	m.SetQuestion("example.org.", dns.TypeSOA)
	if err := dc.WriteMsg(m); err != nil {
		c.Close()
		return nil, "error: write"
	}
	r, err := dc.ReadMsg()
	if err != nil {
		c.Close()
		return nil, "error: read"
	}
	c.SetDeadline(time.Time{})
	return c, dns.RcodeToString[r.Rcode]
}

var dnsCapRE = regexp.MustCompile(`DNS over TCP on port \d+ capped: its connections fit below descriptor (\d+)`)

// Idle DNS-over-TCP connections, which CoreDNS itself accepts without bound, stop with
// dns_tcp_guard at the registry's descriptor threshold: the rest are closed at accept, the API and DNS over UDP
// keep serving, and DNS over TCP serves again once the flood is gone.
func TestIdleDNSTCPFlood(t *testing.T) {
	p, metricsAddr := startFlooded(t, "dns_tcp_guard")
	m := dnsCapRE.FindStringSubmatch(p.log.String())
	if m == nil {
		t.Fatalf("no DNS over TCP cap in the log:\n%s", p.log.String())
	}
	threshold, _ := strconv.Atoi(m[1])
	f := dnsFlood(t, p.dns, "127.0.0.1", 3*floodNofile)
	fds, open := p.openFiles(), f.stillOpen()
	t.Logf("%d idle DNS TCP connections from 127.0.0.1 under ulimit -n %d (threshold %d): %v; still open %d; coredns holds %d descriptors",
		3*floodNofile, floodNofile, threshold, f.codes, open, fds)
	if f.codes["NOERROR"] == 0 || f.codes["NOERROR"] >= threshold || open >= threshold {
		t.Errorf("%d flood connections answered, %d still open; want some, and fewer than the threshold %d", f.codes["NOERROR"], open, threshold)
	}
	if fds > floodNofile-256 {
		t.Errorf("coredns holds %d descriptors: the reserve of 256 for etcd and the API is eaten", fds)
	}
	if got := metric(t, metricsAddr, "coredns_registry_dns_tcp_connections_refused_total"); got == 0 || int(got) > 3*floodNofile-f.codes["NOERROR"] {
		t.Errorf("dns_tcp_connections_refused_total = %v, want the refused part of the flood", got)
	}
	other := otherClient(p)
	p.servesOver(other, "during", "udp") // DNS over TCP is what is flooded
	p.survived()

	f.close()
	p.serves(other, "after")
	p.survived()
}

// Both floods at once, the worst a client can do with idle connections: DNS over TCP fills
// its share, the API's connections land above it, and the reserve still stays free.
func TestIdleAPIAndDNSTCPFlood(t *testing.T) {
	p, _ := startFlooded(t, "api_max_connections auto 100000\n        dns_tcp_guard")
	total, _ := p.caps()
	dnsF := dnsFlood(t, p.dns, "127.0.0.1", 3*floodNofile)
	apiF := apiFlood(t, strings.TrimPrefix(p.api, "http://"), "127.0.0.1", 3*total)
	fds := p.openFiles()
	t.Logf("DNS TCP flood %v and API flood %v under ulimit -n %d: coredns holds %d descriptors", dnsF.codes, apiF.codes, floodNofile, fds)
	if fds > floodNofile-256 {
		t.Errorf("coredns holds %d descriptors: the reserve of 256 for etcd is eaten", fds)
	}
	p.servesOver(otherClient(p), "during", "udp") // DNS over TCP is what is flooded
	p.survived()

	dnsF.close()
	apiF.close()
	p.serves(otherClient(p), "after")
	p.survived()
}
