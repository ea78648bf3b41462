package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/regdns/regdns/api/mailtest"
	"github.com/regdns/regdns/plugin/dnstest"
)

// The end-to-end test runs the real ./coredns binary with a Corefile, a real SMTP server
// (go-smtp) receiving its mail, and Debian's headless Chromium opening the mailed link.

// binary returns the coredns binary under test: $COREDNS_BINARY (set by `make test`), or one
// built from the main package in build/ (the parent of this package).
func binary(t *testing.T) string {
	return binaryUnderTest(t, "COREDNS_BINARY", "coredns", "..")
}

// binaryUnderTest returns the binary named by the environment variable env, or one built as
// name from the package pkg (relative to this directory) into a temporary directory.
func binaryUnderTest(t *testing.T, env, name, pkg string) string {
	if b := os.Getenv(env); b != "" {
		return b
	}
	out := filepath.Join(t.TempDir(), name)
	if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// product is a running ./coredns.
type product struct {
	t    *testing.T
	cmd  *exec.Cmd
	log  *syncBuffer
	dns  string
	api  string
	done chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startProduct(t *testing.T, smtpAddr string) *product {
	addrs := dnstest.FreeAddrs(t, 4)
	dir := t.TempDir()
	_, dnsPort, _ := net.SplitHostPort(addrs[0])
	corefile := zoneBlock(dnsPort, "    log", fmt.Sprintf(`        api %s
        %s
        tunnel 192.0.2.80
        trusted_proxy 127.0.0.1
        smtp %s none
        mail_from registry@example.org
        verify_url http://%s/verifyemail
        reserved admin mail`, addrs[1], embeddedEtcd(filepath.Join(dir, "data"), addrs[2], addrs[3]), smtpAddr, addrs[1]))
	return runCorefile(t, dir, corefile, addrs[0], addrs[1])
}

// zoneBlock is a Corefile serving example.org on dnsPort with the registry.
func zoneBlock(dnsPort, serverLines, registryLines string) string {
	return fmt.Sprintf(`example.org:%s {
    bind 127.0.0.1
    errors
%s
    registry {
        ns ns1.example.org 127.0.0.1
%s
    }
}
`, dnsPort, serverLines, registryLines)
}

// embeddedEtcd is the registry lines of an embedded etcd in data listening on client and peer.
func embeddedEtcd(data, client, peer string) string {
	return fmt.Sprintf("data %s\n        etcd_listen http://%s http://%s", data, client, peer)
}

// runCorefile starts ./coredns in dir with corefile, whose DNS listens on dnsAddr and API on
// apiAddr, and waits until the API answers. A wrap command (e.g. prlimit and its options)
// runs ./coredns if given.
func runCorefile(t *testing.T, dir, corefile, dnsAddr, apiAddr string, wrap ...string) *product {
	cf := filepath.Join(dir, "Corefile")
	if err := os.WriteFile(cf, []byte(corefile), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &product{t: t, log: &syncBuffer{}, dns: dnsAddr, api: "http://" + apiAddr, done: make(chan error, 1)}
	argv := append(wrap, binary(t), "-conf", cf)
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		// The embedded etcd's process closes etcd when its server dies; the test's directory is
		// removed only once it has.
		etcd := childPIDs(p.cmd.Process.Pid)
		p.cmd.Process.Kill()
		<-p.done
		for _, pid := range etcd {
			waitUntil(t, 30*time.Second, fmt.Sprintf("exit of the embedded etcd's process %d", pid), func() bool { return !alive(pid) })
		}
		if t.Failed() {
			t.Logf("coredns output:\n%s", p.log.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.api + "/connectivity-check")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("API did not come up: %v\n%s", err, p.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return p
}

// childPIDs are the processes pid started (the embedded etcd's), read from /proc.
func childPIDs(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, task := range tasks {
		b, _ := os.ReadFile(task)
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// alive reports whether process pid exists (and is not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, after, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(after, "Z")
}

func (p *product) call(path string, params url.Values, header http.Header) (int, string) {
	p.t.Helper()
	req, _ := http.NewRequest("GET", p.api+path+"?"+params.Encode(), nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("%s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (p *product) ok(path string, params url.Values) string {
	p.t.Helper()
	code, body := p.call(path, params, nil)
	if code != 200 {
		p.t.Fatalf("%s: %d %s", path, code, body)
	}
	return body
}

func (p *product) fails(path string, params url.Values, wantCode int, wantError string) {
	p.t.Helper()
	code, body := p.call(path, params, nil)
	var e struct{ Error string }
	json.Unmarshal([]byte(body), &e)
	if code != wantCode || e.Error != wantError {
		p.t.Fatalf("%s: %d %s, want %d with error %q", path, code, body, wantCode, wantError)
	}
}

func (p *product) query(net, qname string, qtype uint16) *dns.Msg {
	p.t.Helper()
	return dnstest.Ask(p.t, net, p.dns, qname, qtype)
}

var (
	linkRE  = regexp.MustCompile(`http://[^\s]+/verifyemail\?s=[0-9a-f-]{36}`)
	tokenRE = regexp.MustCompile(`(?m)^\s*([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\s*$`)
)

// renderedText opens url in headless Chromium and returns the page's DOM after rendering,
// with tags removed: what a user who clicked the mailed link reads.
func renderedText(t *testing.T, link string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--dump-dom", link)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %s: %v", link, err)
	}
	text := regexp.MustCompile(`(?s)<head>.*</head>|<[^>]+>`).ReplaceAllString(string(out), " ")
	return strings.Join(strings.Fields(text), " ")
}

func TestGatewayLifecycle(t *testing.T) {
	if _, err := exec.LookPath("chromium"); err != nil {
		t.Fatal("chromium is required (make test installs Debian's chromium package)")
	}
	mb := &mailtest.Server{SMTPUTF8: true}
	p := startProduct(t, mb.Start(t, "none", nil))

	// Subscribe; the name resolves to the tunnel at once.
	var sub struct{ Name, Token string }
	json.Unmarshal([]byte(p.ok("/subscribe", url.Values{"name": {" Demo "}, "desc": {"Living room"}})), &sub)
	if sub.Name != "demo" || sub.Token == "" {
		t.Fatalf("subscribe returned %+v", sub)
	}
	token := sub.Token
	firstToken := token
	p.fails("/subscribe", url.Values{"name": {"demo"}}, 400, "UnavailableName")
	if r := p.query("udp", "demo.example.org.", dns.TypeA); len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.80" {
		t.Fatalf("tunnel A: %v", r)
	}

	// ACME challenge, two values at once, over UDP and TCP.
	p.ok("/dnsconfig", url.Values{"token": {token}, "challenge": {"base-value"}})
	p.ok("/dnsconfig", url.Values{"token": {token}, "challenge": {"wildcard-value"}})
	for _, net := range []string{"udp", "tcp"} {
		r := p.query(net, "_acme-challenge.demo.example.org.", dns.TypeTXT)
		var got []string
		for _, rr := range r.Answer {
			got = append(got, rr.(*dns.TXT).Txt...)
		}
		if len(got) != 2 || !strings.Contains(strings.Join(got, ","), "base-value") || !strings.Contains(strings.Join(got, ","), "wildcard-value") {
			t.Fatalf("%s TXT: %v", net, got)
		}
	}

	// Email verification through the mailed link, opened in a browser.
	p.ok("/setemail", url.Values{"token": {token}, "email": {"Owner@Example.net"}})
	m := mb.Next(t)
	link := linkRE.FindString(m.Data)
	if strings.Join(m.To, ",") != "owner@example.net" || link == "" {
		t.Fatalf("verification mail to %q without link:\n%s", m.To, m.Data)
	}
	if text := renderedText(t, link); !strings.Contains(text, "demo.example.org") || !strings.Contains(text, "owner@example.net") {
		t.Fatalf("success page reads %q", text)
	}
	if text := renderedText(t, link); !strings.Contains(strings.ToLower(text), "already used") && !strings.Contains(strings.ToLower(text), "unknown") {
		t.Fatalf("reused link page reads %q", text)
	}
	p.fails("/subscribe", url.Values{"name": {"demo"}, "email": {"owner@example.net"}}, 400, "UnavailableNameReclamationPossible")

	// Reclaim: the token arrives by mail; re-subscribe with it, switching to dynamic DNS.
	p.ok("/reclaim", url.Values{"name": {"demo"}})
	m = mb.Next(t)
	rt := tokenRE.FindStringSubmatch(m.Data)
	if strings.Join(m.To, ",") != "owner@example.net" || rt == nil {
		t.Fatalf("reclaim mail to %q without token:\n%s", m.To, m.Data)
	}
	p.fails("/subscribe", url.Values{"name": {"demo"}, "reclamationToken": {"00000000-0000-4000-8000-000000000000"}}, 400, "ReclamationTokenMismatch")
	json.Unmarshal([]byte(p.ok("/subscribe", url.Values{"name": {"demo"}, "reclamationToken": {strings.ToUpper(rt[1])}, "mode": {"1"}})), &sub)
	if sub.Token == "" || sub.Token == token {
		t.Fatalf("reclaim gave token %q", sub.Token)
	}
	p.fails("/info", url.Values{"token": {token}}, 400, "InvalidToken")
	// The reclamation token works until it expires (issue 10): submitting it again, as a user
	// does after a failed certificate step, rotates the API token again.
	reclaimed := sub.Token
	json.Unmarshal([]byte(p.ok("/subscribe", url.Values{"name": {"demo"}, "reclamationToken": {rt[1]}, "mode": {"1"}})), &sub)
	if sub.Token == "" || sub.Token == reclaimed {
		t.Fatalf("second reclaim gave token %q", sub.Token)
	}
	p.fails("/info", url.Values{"token": {reclaimed}}, 400, "InvalidToken")
	token = sub.Token

	// Dynamic DNS: a ping through the trusted proxy sets the address DNS answers.
	code, body := p.call("/ping", url.Values{"token": {token}}, http.Header{"X-Forwarded-For": {"203.0.113.7"}})
	if code != 200 {
		t.Fatalf("ping: %d %s", code, body)
	}
	if r := p.query("udp", "demo.example.org.", dns.TypeA); len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "203.0.113.7" {
		t.Fatalf("dynamic A after ping: %v", r)
	}

	var info map[string]any
	json.Unmarshal([]byte(p.ok("/info", url.Values{"token": {token}})), &info)
	if info["name"] != "demo" || info["email"] != "owner@example.net" || info["verified"] != true || info["mode"] != float64(1) || info["ip"] != "203.0.113.7" || info["description"] != "Living room" {
		t.Fatalf("info: %v", info)
	}

	// A verification that is revoked before the link is followed does nothing.
	p.ok("/setemail", url.Values{"token": {token}, "email": {"new@example.net"}})
	revoked := linkRE.FindString(mb.Next(t).Data)
	revokedID := revoked[strings.Index(revoked, "?s=")+3:]
	p.ok("/revokeemail", url.Values{"token": {token}})
	if code, _ := p.call("/verifyemail", url.Values{"s": {revokedID}}, nil); code != 400 {
		t.Fatalf("revoked link answered %d", code)
	}

	// Unsubscribe: the name is gone from DNS at once.
	p.ok("/unsubscribe", url.Values{"token": {token}})
	if r := p.query("tcp", "demo.example.org.", dns.TypeA); r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 {
		t.Fatalf("after unsubscribe: %v", r)
	}
	p.fails("/ping", url.Values{"token": {token}}, 400, "InvalidToken")

	// No secret reached the log.
	logs := p.log.String()
	for _, secret := range []string{firstToken, reclaimed, token, rt[1], link[strings.Index(link, "?s=")+3:], revokedID} {
		if strings.Contains(logs, secret) {
			t.Errorf("a secret appears in the log")
		}
	}

	// SIGTERM shuts down cleanly.
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
		p.done <- err
	case <-time.After(15 * time.Second):
		t.Error("no exit within 15s of SIGTERM")
	}
}

func jsonInto(body string, v any) error { return json.Unmarshal([]byte(body), v) }
