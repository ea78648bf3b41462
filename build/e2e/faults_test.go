package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/regdns/regdns/api/mailtest"
	"github.com/regdns/regdns/etcdstore"
	"github.com/regdns/regdns/plugin/dnstest"
)

// Faults of etcd and of the process: ./coredns killed in the middle of API writes, etcd frozen
// behind a blackholing proxy, and reloads with broken and good Corefiles. After each, every
// acknowledged change must be there and etcdstore's consistency check must find nothing.

const faultTunnel = "192.0.2.80"

// faultCall is one API call from any goroutine, with header added: unlike product.call it
// returns transport errors instead of failing the test, without the URL, whose query holds
// the token.
func faultCall(c *http.Client, base, path string, params url.Values, header http.Header) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, base+path+"?"+params.Encode(), nil)
	if err != nil {
		return 0, "", err
	}
	maps.Copy(req.Header, header)
	resp, err := c.Do(req)
	if ue, ok := err.(*url.Error); ok {
		return 0, "", ue.Err
	}
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// errorCode is the "error" field of an API error body.
func errorCode(body string) string {
	var e struct{ Error string }
	jsonInto(body, &e)
	return e.Error
}

// startServing runs corefile (runCorefile) and also waits until DNS answers the zone's SOA:
// the API comes up before the DNS listeners.
func startServing(t *testing.T, dir, corefile, dnsAddr, apiAddr string) *product {
	t.Helper()
	p := runCorefile(t, dir, corefile, dnsAddr, apiAddr)
	waitUntil(t, 30*time.Second, "SOA answer from "+dnsAddr, func() bool {
		r, err := dnstest.Exchange("udp", dnsAddr, "example.org.", dns.TypeSOA)
		return err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1
	})
	return p
}

// killHard SIGKILLs p and its embedded etcd's process together, as a power cut or the OOM
// killer taking the whole service would (on its own the child closes etcd cleanly when its
// server dies), and waits for both; p's cleanup still finds its exit status.
func killHard(p *product) {
	etcd := childPIDs(p.cmd.Process.Pid)
	p.cmd.Process.Signal(syscall.SIGKILL)
	for _, pid := range etcd {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	err := <-p.done
	p.done <- err
	for _, pid := range etcd {
		for alive(pid) {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// stopGracefully SIGTERMs p and waits for it to exit.
func stopGracefully(t *testing.T, p *product) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(20 * time.Second):
		t.Fatal("coredns did not exit within 20s of SIGTERM")
	}
}

// storeProblems runs etcdstore's consistency check against etcd at endpoints. The lines it
// returns name keys, names and hashes, never a secret, so they may be logged.
func storeProblems(t *testing.T, endpoints ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ks, err := etcdstore.Connect(etcdstore.Config{Endpoints: endpoints, Prefix: etcdstore.DefaultPrefix})
	if err != nil {
		t.Fatalf("opening etcd for the check: %v", err)
	}
	defer ks.Close()
	problems, err := ks.Check(ctx)
	if err != nil {
		t.Fatalf("consistency check: %v", err)
	}
	return problems
}

// dataDirProblems opens the etcd data directory of a stopped ./coredns in this process, as
// the process left it, and checks it.
func dataDirProblems(t *testing.T, dir, clientURL, peerURL string) []string {
	t.Helper()
	e, err := etcdstore.StartEmbedded(etcdstore.EmbeddedConfig{Dir: dir, ClientURL: clientURL, PeerURL: peerURL})
	if err != nil {
		t.Fatalf("opening %s: %v", dir, err)
	}
	defer e.Close()
	return storeProblems(t, e.Endpoints()...)
}

// killedName is a name the kill test wrote, with what its acknowledged calls changed. Each
// name is written by one goroutine in order, which stops at its first failure: so at most its
// last call (pending) was in flight when the process died, and its outcome is unknown.
type killedName struct {
	name, token    string
	subscribed     bool
	unsubscribed   bool
	challenges     []string // every /dnsconfig value sent
	ackedChallenge string   // the last acknowledged one
	emails         []string // every /setemail address sent
	ackedEmail     string
	pending        string // the endpoint of the call in flight at the kill, if any
}

// hammer runs 8 goroutines of subscribe, dnsconfig, setemail and unsubscribe against p,
// SIGKILLs p after killAfter and returns what was written. Calls that failed before the kill
// are errors.
func hammer(t *testing.T, p *product, round int, killAfter time.Duration) []*killedName {
	client := &http.Client{Timeout: 20 * time.Second}
	var killAt atomic.Int64 // UnixNano; 0 until the kill
	var acked atomic.Int64
	var mu sync.Mutex
	var early []string // failures before the kill
	var all []*killedName
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			var mine []*killedName
			defer func() { mu.Lock(); all = append(all, mine...); mu.Unlock() }()
			// do makes one call; false stops the goroutine.
			do := func(n *killedName, path string, params url.Values) (string, bool) {
				code, body, err := faultCall(client, p.api, path, params, nil)
				if code == 200 && err == nil {
					acked.Add(1)
					return body, true
				}
				n.pending = path
				if k := killAt.Load(); k == 0 || time.Now().UnixNano() < k {
					mu.Lock()
					early = append(early, fmt.Sprintf("%s %s: %d %s %v", path, n.name, code, errorCode(body), err))
					mu.Unlock()
				}
				return "", false
			}
			for i := 0; i < 10000; i++ {
				n := &killedName{name: fmt.Sprintf("k%d-%d-%d", round, g, i)}
				mine = append(mine, n)
				body, ok := do(n, "/subscribe", url.Values{"name": {n.name}})
				if !ok {
					return
				}
				var sub struct{ Token string }
				if jsonInto(body, &sub); sub.Token == "" {
					mu.Lock()
					early = append(early, "/subscribe "+n.name+": no token")
					mu.Unlock()
					return
				}
				n.token, n.subscribed = sub.Token, true
				tok := url.Values{"token": {n.token}}
				for j, step := range []string{"/dnsconfig", "/setemail", "/dnsconfig", "/dnsconfig", "/setemail"} {
					params := url.Values{"token": tok["token"]}
					switch step {
					case "/dnsconfig":
						v := fmt.Sprintf("c%d-%s", j, n.name)
						n.challenges = append(n.challenges, v)
						params.Set("challenge", v)
						if _, ok := do(n, step, params); !ok {
							return
						}
						n.ackedChallenge = v
					case "/setemail":
						a := fmt.Sprintf("%s.%d@example.net", n.name, j)
						n.emails = append(n.emails, a)
						params.Set("email", a)
						if _, ok := do(n, step, params); !ok {
							return
						}
						n.ackedEmail = a
					}
				}
				if i%3 == 0 {
					if _, ok := do(n, "/unsubscribe", tok); !ok {
						return
					}
					n.unsubscribed = true
				}
			}
		})
	}
	time.Sleep(killAfter)
	// Every goroutine keeps a call in flight nearly all the time, so the kill lands inside
	// some writes: between their etcd transaction and their answer, or before the transaction.
	killAt.Store(time.Now().UnixNano())
	killHard(p)
	wg.Wait()
	cut := map[string]int{}
	for _, n := range all {
		if n.pending != "" {
			cut[n.pending]++
		}
	}
	t.Logf("kill %d after %s: %d acknowledged calls on %d names; calls cut off by the kill: %v", round+1, killAfter, acked.Load(), len(all), cut)
	for _, e := range early {
		t.Errorf("before the kill: %s", e)
	}
	if acked.Load() == 0 {
		t.Fatalf("kill %d: no call was acknowledged before the kill", round+1)
	}
	return all
}

// verifyKilled checks on the restarted p that every acknowledged change of names is there.
func verifyKilled(t *testing.T, p *product, names []*killedName) {
	t.Helper()
	var present, gone, unknown int
	for _, n := range names {
		switch {
		case !n.subscribed || n.pending == "/unsubscribe":
			unknown++ // never acknowledged, or its deletion may or may not have happened
		case n.unsubscribed:
			gone++
			code, body := p.call("/info", url.Values{"token": {n.token}}, nil)
			if code != 400 || errorCode(body) != "InvalidToken" {
				t.Errorf("%s: /info after acknowledged unsubscribe: %d %s", n.name, code, errorCode(body))
			}
			if r := p.query("udp", n.name+".example.org.", dns.TypeA); r.Rcode != dns.RcodeNameError {
				t.Errorf("%s: DNS after acknowledged unsubscribe: %s", n.name, dns.RcodeToString[r.Rcode])
			}
		default:
			present++
			code, body := p.call("/info", url.Values{"token": {n.token}}, nil)
			var info struct {
				Name       string
				Challenges []string `json:"dns_challenges"`
				Email      string   `json:"email"`
			}
			if jsonInto(body, &info); code != 200 || info.Name != n.name {
				t.Errorf("%s: /info after acknowledged subscribe: %d %s", n.name, code, errorCode(body))
				continue
			}
			if got := rdata(p.query("udp", n.name+".example.org.", dns.TypeA), dns.TypeA); !slices.Equal(got, []string{faultTunnel}) {
				t.Errorf("%s: A %v, want %s", n.name, got, faultTunnel)
			}
			served := txtValues(p.query("udp", "_acme-challenge."+n.name+".example.org.", dns.TypeTXT).Answer)
			slices.Sort(info.Challenges)
			if !slices.Equal(served, info.Challenges) {
				t.Errorf("%s: DNS serves challenges %v, /info has %v", n.name, served, info.Challenges)
			}
			if n.ackedChallenge != "" && !slices.Contains(served, n.ackedChallenge) {
				t.Errorf("%s: acknowledged challenge %s not served (served %v)", n.name, n.ackedChallenge, served)
			}
			// Without a /dnsconfig cut off by the kill, every value sent was acknowledged: the
			// two newest are served, exactly.
			if n.pending != "/dnsconfig" {
				want := slices.Clone(n.challenges[max(0, len(n.challenges)-2):])
				slices.Sort(want)
				if !slices.Equal(served, want) {
					t.Errorf("%s: serves challenges %v, want the two last acknowledged %v", n.name, served, want)
				}
			}
			for _, v := range served {
				if !slices.Contains(n.challenges, v) {
					t.Errorf("%s: serves challenge %s that was never sent", n.name, v)
				}
			}
			want := []string{n.ackedEmail}
			if n.pending == "/setemail" {
				want = append(want, n.emails[len(n.emails)-1])
			}
			if !slices.Contains(want, info.Email) {
				t.Errorf("%s: contact email %q, want one of %q", n.name, info.Email, want)
			}
		}
	}
	t.Logf("after restart: %d acknowledged names present with their last changes, %d acknowledged unsubscribes gone, %d of unknown outcome", present, gone, unknown)
}

// TestKillDuringWrites SIGKILLs ./coredns (embedded etcd) three times while it answers writes;
// after each, its data directory must be consistent and the restarted process must serve every
// acknowledged change.
func TestKillDuringWrites(t *testing.T) {
	var mails mailtest.Server
	mailAddr := mails.Start(t, "none", nil)
	dir := t.TempDir()
	addrs := dnstest.FreeAddrs(t, 4)
	_, dnsPort, _ := net.SplitHostPort(addrs[0])
	data := filepath.Join(dir, "data")
	corefile := zoneBlock(dnsPort, "", fmt.Sprintf(`        api %s
        %s
        tunnel %s
        client_limit off
        write_limit off
        mail_limit off
        smtp %s none
        mail_from registry@example.org`, addrs[1], embeddedEtcd(data, addrs[2], addrs[3]), faultTunnel, mailAddr))
	clientURL, peerURL := "http://"+addrs[2], "http://"+addrs[3]
	p := startServing(t, dir, corefile, addrs[0], addrs[1])
	var names []*killedName
	for round, killAfter := range []time.Duration{400 * time.Millisecond, 1300 * time.Millisecond, 2900 * time.Millisecond} {
		names = append(names, hammer(t, p, round, killAfter)...)
		if problems := dataDirProblems(t, filepath.Join(data, "etcd"), clientURL, peerURL); len(problems) > 0 {
			t.Errorf("data directory after kill %d: %d problems:\n%s", round+1, len(problems), strings.Join(problems, "\n"))
		}
		p = startServing(t, dir, corefile, addrs[0], addrs[1])
		verifyKilled(t, p, names)
	}
	t.Logf("mails received: %d", len(mails.Messages()))
	stopGracefully(t, p)
	if problems := dataDirProblems(t, filepath.Join(data, "etcd"), clientURL, peerURL); len(problems) > 0 {
		t.Errorf("data directory at the end: %d problems:\n%s", len(problems), strings.Join(problems, "\n"))
	}
}

// etcdProxy forwards TCP between ./coredns and etcd, and is this test's fault injector:
// switched to blackhole, it keeps accepting connections and reading from them but forwards and
// answers nothing, which is what a partitioned or frozen etcd looks like to its client: the
// port stays open, so nothing is refused and only timeouts notice.
type etcdProxy struct {
	ln        net.Listener
	target    string
	blackhole atomic.Bool
	accepted  atomic.Int64
	mu        sync.Mutex
	conns     map[net.Conn]bool
}

func startEtcdProxy(t *testing.T, target string) *etcdProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	x := &etcdProxy{ln: l, target: target, conns: map[net.Conn]bool{}}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			x.accepted.Add(1)
			go x.handle(c)
		}
	}()
	t.Cleanup(func() { l.Close(); x.closeAll() })
	return x
}

func (x *etcdProxy) addr() string { return x.ln.Addr().String() }

func (x *etcdProxy) track(cs ...net.Conn) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, c := range cs {
		x.conns[c] = true
	}
}

func (x *etcdProxy) handle(c net.Conn) {
	x.track(c)
	defer c.Close()
	if x.blackhole.Load() {
		io.Copy(io.Discard, c)
		return
	}
	u, err := net.Dial("tcp", x.target)
	if err != nil {
		return
	}
	x.track(u)
	defer u.Close()
	done := make(chan struct{}, 2)
	go func() { x.pipe(u, c); done <- struct{}{} }()
	go func() { x.pipe(c, u); done <- struct{}{} }()
	<-done // one side ended: the deferred closes end the other
}

// pipe copies src to dst, dropping what it reads while blackholed.
func (x *etcdProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !x.blackhole.Load() {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// heal ends the blackhole. The connections that lived through it lost bytes and cannot
// resume, so they are closed, as a partition that heals resets them; the client reconnects.
func (x *etcdProxy) heal() {
	x.blackhole.Store(false)
	x.closeAll()
}

func (x *etcdProxy) closeAll() {
	x.mu.Lock()
	defer x.mu.Unlock()
	for c := range x.conns {
		c.Close()
		delete(x.conns, c)
	}
}

// promMetric reads one unlabelled metric from a prometheus endpoint.
func promMetric(t *testing.T, metricsURL, name string) float64 {
	t.Helper()
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s at %s", name, metricsURL)
	return 0
}

// establishedTo counts the ESTABLISHED TCP connections whose local port is port: on loopback,
// the server side of the connections to a listener of this machine.
func establishedTo(t *testing.T, port string) int {
	t.Helper()
	p, _ := strconv.Atoi(port)
	want := fmt.Sprintf(":%04X", p)
	n := 0
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) > 3 && strings.HasSuffix(fields[1], want) && fields[3] == "01" {
				n++
			}
		}
	}
	return n
}

// waveResult is what n concurrent API calls got.
type waveResult struct {
	codes   map[string]int // "501 InternalError", "503 Busy", "connection error", ...
	slowest time.Duration
}

func (w waveResult) String() string {
	var parts []string
	for k, v := range w.codes {
		parts = append(parts, fmt.Sprintf("%s x%d", k, v))
	}
	slices.Sort(parts)
	return fmt.Sprintf("%s; slowest %s", strings.Join(parts, ", "), w.slowest.Round(time.Millisecond))
}

// apiWave makes n API calls at once, each on its own connection (no keep-alive, so that
// connections the server still holds afterwards are its own doing), mixing endpoints that need
// etcd with pings; midway it calls during.
func apiWave(base string, n int, tokens []string, during func()) waveResult {
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res := waveResult{codes: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		tok := tokens[i%len(tokens)]
		var path string
		params := url.Values{"token": {tok}}
		switch i % 5 {
		case 0:
			path = "/info"
		case 1:
			path = "/dnsconfig"
			params.Set("challenge", fmt.Sprintf("wave-%d", i))
		case 2:
			path = "/revokeemail"
		case 3:
			path, params = "/subscribe", url.Values{"name": {fmt.Sprintf("wave-%d", i)}}
		default:
			// A ping from unchanged addresses is answered from the view, without etcd.
			path = "/ping"
		}
		wg.Go(func() {
			<-start
			t0 := time.Now()
			code, body, err := faultCall(client, base, path, params, nil)
			took := time.Since(t0)
			key := fmt.Sprintf("%d %s", code, errorCode(body))
			switch {
			case err != nil:
				key = "connection error"
			case code == 200:
				key = "200 " + path
			}
			mu.Lock()
			res.codes[key]++
			res.slowest = max(res.slowest, took)
			mu.Unlock()
		})
	}
	close(start)
	time.Sleep(500 * time.Millisecond)
	during()
	wg.Wait()
	return res
}

// TestEtcdStalledAPIBoundedAndDNSServes freezes etcd behind a proxy. Meanwhile the API must
// fail fast (501 within etcd_timeout, or 503 beyond api_max_concurrent; a ping that changes
// nothing is answered from the view), without goroutines,
// descriptors or connections piling up, and DNS must answer from its view; after the freeze,
// both must recover without a restart.
func TestEtcdStalledAPIBoundedAndDNSServes(t *testing.T) {
	const (
		timeout = time.Second
		slack   = 1500 * time.Millisecond // a loaded 2-core machine, 200 connections at once
	)
	dir := t.TempDir()
	addrs := dnstest.FreeAddrs(t, 5)
	e, err := etcdstore.StartEmbedded(etcdstore.EmbeddedConfig{Dir: filepath.Join(dir, "etcd"),
		ClientURL: "http://" + addrs[3], PeerURL: "http://" + addrs[4], Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	proxy := startEtcdProxy(t, addrs[3])
	_, dnsPort, _ := net.SplitHostPort(addrs[0])
	_, apiPort, _ := net.SplitHostPort(addrs[1])
	corefile := zoneBlock(dnsPort, "    prometheus "+addrs[2], fmt.Sprintf(`        api %s
        etcd http://%s
        etcd_timeout %s
        api_max_concurrent 32
        api_max_connections auto 1000
        client_limit off
        write_limit off
        tunnel %s`, addrs[1], proxy.addr(), timeout, faultTunnel))
	p := startServing(t, dir, corefile, addrs[0], addrs[1])
	metrics := "http://" + addrs[2] + "/metrics"

	var names, tokens []string
	for i := range 20 {
		name := fmt.Sprintf("known-%d", i)
		tokens = append(tokens, subscribe(t, p, name, "0", ""))
		names = append(names, name)
	}
	p.ok("/dnsconfig", url.Values{"token": {tokens[0]}, "challenge": {"before-freeze"}})
	dnsServesAll := func(when string) {
		t.Helper()
		for _, n := range names {
			r, err := dnstest.Exchange("udp", p.dns, n+".example.org.", dns.TypeA)
			if err != nil {
				t.Errorf("%s: %s A: %v", when, n, err)
			} else if got := rdata(r, dns.TypeA); !slices.Equal(got, []string{faultTunnel}) {
				t.Errorf("%s: %s A: %s %v", when, n, dns.RcodeToString[r.Rcode], got)
			}
		}
		if r, err := dnstest.Exchange("udp", p.dns, "_acme-challenge.known-0.example.org.", dns.TypeTXT); err != nil || !slices.Equal(txtValues(r.Answer), []string{"before-freeze"}) {
			t.Errorf("%s: challenge TXT: %v %v", when, r, err)
		}
	}
	dnsServesAll("etcd healthy")

	// A wave while etcd is healthy starts every pool and lazy goroutine the process will have.
	// known-0 keeps its challenge: the waves use the other names.
	warm := apiWave(p.api, 200, tokens[1:], func() {})
	t.Logf("healthy etcd, 200 calls at once: %s", warm)
	settled := func() (float64, float64) {
		// The test's own idle keep-alive connections are not the server's doing.
		http.DefaultClient.CloseIdleConnections()
		time.Sleep(2 * time.Second)
		return promMetric(t, metrics, "go_goroutines"), promMetric(t, metrics, "process_open_fds")
	}
	baseG, baseFD := settled()
	t.Logf("before the freeze: %.0f goroutines, %.0f open descriptors", baseG, baseFD)

	http.DefaultClient.CloseIdleConnections()
	proxy.blackhole.Store(true)
	frozen := time.Now()
	acceptedBefore := proxy.accepted.Load()
	dnsServesAll("etcd frozen")
	// Several waves, the last ones after the etcd client's keepalive (10 s + etcd_timeout) has
	// given up on its connection and dialled into the blackhole again.
	for wave := 1; time.Since(frozen) < 16*time.Second || wave <= 3; wave++ {
		var peakG float64
		var peakConns int
		res := apiWave(p.api, 200, tokens[1:], func() {
			peakG, peakConns = promMetric(t, metrics, "go_goroutines"), establishedTo(t, apiPort)
			dnsServesAll(fmt.Sprintf("etcd frozen, wave %d in progress", wave))
		})
		for k := range res.codes {
			if k != "501 InternalError" && k != "503 Busy" && k != "200 /ping" {
				t.Errorf("wave %d: %s, want only 501 InternalError, 503 Busy, or 200 for an unchanged /ping", wave, k)
			}
		}
		if res.codes["501 InternalError"] == 0 {
			t.Errorf("wave %d: no call reached etcd: %s", wave, res)
		}
		if res.slowest > timeout+slack {
			t.Errorf("wave %d: slowest call took %s, want at most etcd_timeout %s + %s", wave, res.slowest, timeout, slack)
		}
		// The calls are over: what they held must be given back, whatever the wave number.
		var g, fd float64
		deadline := time.Now().Add(10 * time.Second)
		for {
			g, fd = promMetric(t, metrics, "go_goroutines"), promMetric(t, metrics, "process_open_fds")
			if (g <= baseG+40 && fd <= baseFD+10 && establishedTo(t, apiPort) == 0) || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		conns := establishedTo(t, apiPort)
		t.Logf("etcd frozen %s, wave %d: %s; mid-wave %.0f goroutines, %d API connections; after %.0f goroutines, %.0f descriptors, %d API connections",
			time.Since(frozen).Round(time.Second), wave, res, peakG, peakConns, g, fd, conns)
		if peakG > baseG+3*200+100 {
			t.Errorf("wave %d: %.0f goroutines mid-wave, more than 3 per call above the %.0f before", wave, peakG, baseG)
		}
		if g > baseG+40 || fd > baseFD+10 || conns != 0 {
			t.Errorf("wave %d: after the calls %.0f goroutines (before the freeze %.0f), %.0f descriptors (%.0f), %d API connections still open",
				wave, g, baseG, fd, baseFD, conns)
		}
		time.Sleep(3 * time.Second)
	}
	dials := proxy.accepted.Load() - acceptedBefore
	t.Logf("connections the etcd client opened during the %s freeze: %d", time.Since(frozen).Round(time.Second), dials)
	if dials > 20 {
		t.Errorf("the etcd client opened %d connections during the freeze: it should back off", dials)
	}
	dnsServesAll("etcd frozen, after the waves")

	// Heal: the API recovers by itself.
	proxy.heal()
	healed := time.Now()
	waitUntil(t, 60*time.Second, "API recovery after the freeze", func() bool {
		code, _, err := faultCall(http.DefaultClient, p.api, "/info", url.Values{"token": {tokens[1]}}, nil)
		return err == nil && code == 200
	})
	recovery := time.Since(healed)
	t.Logf("API answered 200 again %s after the freeze ended", recovery.Round(10*time.Millisecond))
	if recovery > 30*time.Second {
		t.Errorf("API took %s to recover", recovery)
	}
	subscribe(t, p, "after-freeze", "0", "")
	p.ok("/dnsconfig", url.Values{"token": {tokens[0]}, "challenge": {"after-freeze"}})
	waitUntil(t, 10*time.Second, "DNS answers for a name written after the freeze", func() bool {
		r, err := dnstest.Exchange("udp", p.dns, "after-freeze.example.org.", dns.TypeA)
		return err == nil && slices.Equal(rdata(r, dns.TypeA), []string{faultTunnel})
	})
	if r := p.query("udp", "_acme-challenge.known-0.example.org.", dns.TypeTXT); !slices.Equal(txtValues(r.Answer), []string{"after-freeze", "before-freeze"}) {
		t.Errorf("challenges after the freeze: %v", txtValues(r.Answer))
	}
	g, fd := settled()
	t.Logf("after recovery: %.0f goroutines, %.0f open descriptors", g, fd)
	if g > baseG+40 || fd > baseFD+10 {
		t.Errorf("after recovery %.0f goroutines, %.0f descriptors; before the freeze %.0f, %.0f", g, fd, baseG, baseFD)
	}
	if problems := storeProblems(t, e.Endpoints()...); len(problems) > 0 {
		t.Errorf("consistency check: %d problems:\n%s", len(problems), strings.Join(problems, "\n"))
	}
}

// TestReloadBrokenAndGood reloads ./coredns (SIGUSR1) with two broken Corefiles, one that does
// not parse and one that parses but cannot start, then with a good one.
func TestReloadBrokenAndGood(t *testing.T) {
	dir := t.TempDir()
	addrs := dnstest.FreeAddrs(t, 4)
	_, dnsPort, _ := net.SplitHostPort(addrs[0])
	data := filepath.Join(dir, "data")
	// held is a port taken by a listener without SO_REUSEPORT, so an API cannot bind it.
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	corefile := func(api, tunnel, extra string) string {
		return zoneBlock(dnsPort, "", fmt.Sprintf(`        api %s
        %s
        tunnel %s
        client_limit off
        write_limit off%s`, api, embeddedEtcd(data, addrs[2], addrs[3]), tunnel, extra))
	}
	p := startServing(t, dir, corefile(addrs[1], faultTunnel, ""), addrs[0], addrs[1])
	tokens := map[string]string{}
	for i := range 10 {
		name := fmt.Sprintf("before-%d", i)
		tokens[name] = subscribe(t, p, name, "0", "")
	}
	p.ok("/dnsconfig", url.Values{"token": {tokens["before-0"]}, "challenge": {"kept"}})

	reload := func(text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "Corefile"), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		p.cmd.Process.Signal(syscall.SIGUSR1)
	}
	failures := func() int { return strings.Count(p.log.String(), "[ERROR] SIGUSR1") }
	serves := func(when, tunnel string) {
		t.Helper()
		for name, tok := range tokens {
			if got := rdata(p.query("udp", name+".example.org.", dns.TypeA), dns.TypeA); !slices.Equal(got, []string{tunnel}) {
				t.Errorf("%s: %s A %v, want %s", when, name, got, tunnel)
			}
			var info struct{ Name string }
			if code, body := p.call("/info", url.Values{"token": {tok}}, nil); code != 200 || jsonInto(body, &info) != nil || info.Name != name {
				t.Errorf("%s: /info of %s: %d %s", when, name, code, errorCode(body))
			}
		}
		if got := txtValues(p.query("tcp", "_acme-challenge.before-0.example.org.", dns.TypeTXT).Answer); !slices.Equal(got, []string{"kept"}) {
			t.Errorf("%s: challenge %v", when, got)
		}
	}

	for i, broken := range []struct{ what, text string }{
		{"an unknown property", corefile(addrs[1], "192.0.2.99", "\n        no_such_property 1")},
		{"an API address that cannot be bound", corefile(held.Addr().String(), "192.0.2.99", "")},
	} {
		reload(broken.text)
		waitUntil(t, 20*time.Second, "reload failure in the log for "+broken.what, func() bool { return failures() == i+1 })
		when := "after a reload with " + broken.what
		serves(when, faultTunnel)
		name := fmt.Sprintf("broken-%d", i)
		tokens[name] = subscribe(t, p, name, "0", "")
		serves(when, faultTunnel)
	}

	// A good reload while a gateway keeps subscribing: no call is refused or lost.
	stop := make(chan struct{})
	var during []string
	var refused []string
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("during-%d", i)
			code, body, err := faultCall(http.DefaultClient, p.api, "/subscribe", url.Values{"name": {name}}, nil)
			var sub struct{ Token string }
			if jsonInto(body, &sub); err != nil || code != 200 || sub.Token == "" {
				refused = append(refused, fmt.Sprintf("%s: %d %s %v", name, code, errorCode(body), err))
				continue
			}
			tokens[name] = sub.Token
			during = append(during, name)
			time.Sleep(20 * time.Millisecond)
		}
	})
	time.Sleep(300 * time.Millisecond)
	reload(corefile(addrs[1], "192.0.2.81", ""))
	reloaded := time.Now()
	waitUntil(t, 20*time.Second, "the new tunnel address after a good reload", func() bool {
		r, err := dnstest.Exchange("udp", p.dns, "before-1.example.org.", dns.TypeA)
		return err == nil && slices.Equal(rdata(r, dns.TypeA), []string{"192.0.2.81"})
	})
	t.Logf("new tunnel address answered %s after SIGUSR1", time.Since(reloaded).Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("%d names subscribed during the good reload, %d calls failed", len(during), len(refused))
	for _, r := range refused {
		t.Errorf("during the good reload: %s", r)
	}
	if failures() != 2 {
		t.Errorf("the good reload failed:\n%s", p.log.String())
	}
	serves("after the good reload", "192.0.2.81")
	if problems := storeProblems(t, "http://"+addrs[2]); len(problems) > 0 {
		t.Errorf("consistency check: %d problems:\n%s", len(problems), strings.Join(problems, "\n"))
	}
}

// TestEtcdProcessKilled kills the embedded etcd's process (SIGKILL) under a serving server:
// DNS keeps answering from the view meanwhile, the server starts etcd again on its data and
// says so in its log, the API works again with the names registered before, and once the
// server has stopped no etcd process is left.
func TestEtcdProcessKilled(t *testing.T) {
	addrs := dnstest.FreeAddrs(t, 2)
	dir := t.TempDir()
	_, dnsPort, _ := net.SplitHostPort(addrs[0])
	corefile := zoneBlock(dnsPort, "", fmt.Sprintf("        api %s\n        data %s\n        tunnel %s",
		addrs[1], filepath.Join(dir, "data"), faultTunnel))
	p := runCorefile(t, dir, corefile, addrs[0], addrs[1])
	var sub struct{ Token string }
	if err := jsonInto(p.ok("/subscribe", url.Values{"name": {"gw"}}), &sub); err != nil {
		t.Fatal(err)
	}
	first := childPIDs(p.cmd.Process.Pid)
	if len(first) != 1 {
		t.Fatalf("server's child processes: %v, want the embedded etcd's alone", first)
	}
	if err := syscall.Kill(first[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if r := p.query("udp", "gw.example.org.", dns.TypeA); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			t.Fatalf("DNS while etcd is away: %v", r)
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitUntil(t, 30*time.Second, "new embedded etcd process", func() bool {
		now := childPIDs(p.cmd.Process.Pid)
		return len(now) == 1 && now[0] != first[0]
	})
	waitUntil(t, 30*time.Second, "/ping answered 200 again", func() bool {
		code, _ := p.call("/ping", url.Values{"token": {sub.Token}}, nil)
		return code == http.StatusOK
	})
	p.fails("/subscribe", url.Values{"name": {"gw"}}, 400, "UnavailableName")
	for _, want := range []string{"embedded etcd process exited", "embedded etcd process serving again"} {
		if !strings.Contains(p.log.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
	second := childPIDs(p.cmd.Process.Pid)
	stopGracefully(t, p)
	if alive(second[0]) {
		t.Errorf("embedded etcd process %d still running after the server stopped", second[0])
	}
}
