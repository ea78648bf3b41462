package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/regdns/regdns/build/regdnsctl/origdbtest"
	"github.com/regdns/regdns/plugin/dnstest"
)

// A real PageKite frontend (Debian's pagekite) authenticates kites against ./coredns with
// --authdomain: it resolves the signed query through the system resolver (gethostbyname_ex on
// port 53), so the test runs inside a network namespace of its own whose resolv.conf points at
// ./coredns on 127.0.0.1:53.

// pkNamespaceEnv marks the run of this test binary inside the namespace; its value is the name.
const pkNamespaceEnv = "REGDNS_PAGEKITE_NETNS"

// The frontend's verdicts on our answers, as pagekite reads them (see plugin/registry/pagekite.go).
const (
	pkAccepted = "255.255.254.255"
	pkRejected = "255.255.255.1"
	// pkAcceptedQuota is pkAccepted read as a 32-bit quota, which the frontend reports to the backend.
	pkAcceptedQuota = "quota_bw=4294967039"
)

func TestPageKiteTunnel(t *testing.T) {
	if os.Getenv(pkNamespaceEnv) != "" {
		pageKiteInNamespace(t)
		return
	}
	for _, tool := range []string{"ip", "pagekite"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required (make test installs Debian's iproute2 and pagekite packages): %v", tool, err)
		}
	}
	ns := fmt.Sprintf("regdns-pk-%08x", rand.Uint32())
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s\n(the test needs root and network namespaces)", strings.Join(args, " "), err, out)
		}
	}
	_, statErr := os.Stat("/etc/netns")
	ip("netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
		}
		os.RemoveAll(filepath.Join("/etc/netns", ns))
		if errors.Is(statErr, os.ErrNotExist) {
			os.Remove("/etc/netns") // only if this test created it, and only if empty
		}
	})
	// ip netns exec bind-mounts /etc/netns/NS/resolv.conf over /etc/resolv.conf.
	if err := os.MkdirAll(filepath.Join("/etc/netns", ns), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("/etc/netns", ns, "resolv.conf"), []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, self,
		"-test.run=^TestPageKiteTunnel$", "-test.v", "-test.count=1", "-test.timeout=90s")
	cmd.Env = append(os.Environ(), pkNamespaceEnv+"="+ns, "COREDNS_BINARY="+binary(t), "REGDNSCTL_BINARY="+ctlBinary(t))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	t.Logf("run inside network namespace %s:\n%s", ns, out)
	if err != nil {
		t.Fatalf("test inside the namespace failed: %v", err)
	}
	// A run that matched no test also exits 0.
	if !strings.Contains(string(out), "--- PASS: TestPageKiteTunnel") {
		t.Fatal("the test did not run inside the namespace")
	}
}

func pageKiteInNamespace(t *testing.T) {
	if b, err := os.ReadFile("/etc/resolv.conf"); err != nil || strings.TrimSpace(string(b)) != "nameserver 127.0.0.1" {
		t.Fatalf("resolv.conf in the namespace: %q, %v", b, err)
	}
	dir := t.TempDir()
	addrs := dnstest.FreeAddrs(t, 4)
	feAddr := addrs[3]
	_, fePort, _ := net.SplitHostPort(feAddr)
	// The log plugin records the frontend's authentication queries.
	corefile := fmt.Sprintf(`example.org:53 {
    bind 127.0.0.1
    errors
    log
    registry {
        api %s
        data %s
        etcd_listen http://%s http://%s
        ns ns1.example.org 127.0.0.1
        tunnel 127.0.0.1
    }
}
`, addrs[0], filepath.Join(dir, "data"), addrs[1], addrs[2])
	// A gateway of the original server, imported with its token (its kite secret).
	conf := filepath.Join(dir, "Corefile")
	if err := os.WriteFile(conf, []byte(corefile), 0o600); err != nil {
		t.Fatal(err)
	}
	const legacyToken = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
	importOriginal(t, conf, []origdbtest.Domain{{ID: 1, Name: "legacy.example.org.", AccountID: 1, Token: legacyToken,
		Timestamp: time.Now().Unix()}}, nil)
	p := runCorefile(t, dir, corefile, "127.0.0.1:53", addrs[0])

	var sub struct{ Token string }
	if err := jsonInto(p.ok("/subscribe", url.Values{"name": {"demo"}}), &sub); err != nil || sub.Token == "" {
		t.Fatalf("subscribe: %v", err)
	}
	token := sub.Token

	// The gateway's web server, behind the tunnel.
	var hits atomic.Int32
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprintf(w, "gateway page for %s%s", r.Host, r.URL.Path)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	_, httpPort, _ := net.SplitHostPort(l.Addr().String())

	fe := startDaemonProc(t, pagekite("--isfrontend", "--host=127.0.0.1", "--ports="+fePort, "--protos=http",
		"--authdomain=example.org", "--authfail_closed"), token)
	waitUntil(t, 15*time.Second, "frontend listening", func() bool {
		c, err := net.Dial("tcp", feAddr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	// through requests http://host/hello through the frontend.
	through := func(host string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+feAddr+"/hello", nil)
		req.Host = host
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// backend runs a pagekite backend for kite with secret, from an option file so that the
	// secret appears neither in the process list nor in pagekite's log of its arguments.
	backend := func(kite, secret string) *daemonProc {
		opt := filepath.Join(t.TempDir(), "backend.rc")
		line := fmt.Sprintf("service_on = http:%s:127.0.0.1:%s:%s\n", kite, httpPort, secret)
		if err := os.WriteFile(opt, []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		return startDaemonProc(t, pagekite("--nullui", "--frontend="+feAddr, "--optfile="+opt), token, secret)
	}
	// verdicts waits for the frontend's authentication queries for kite (as logged by ./coredns)
	// and returns them with our answer to each, asked again: the answer depends only on the name.
	verdicts := func(kite string, seen map[string]bool) map[string]string {
		t.Helper()
		re := regexp.MustCompile(`"A IN (\S+\.http\.` + regexp.QuoteMeta(kite) + `\.example\.org\.) udp`)
		out := map[string]string{}
		waitUntil(t, 10*time.Second, "authentication query for "+kite, func() bool {
			for _, m := range re.FindAllStringSubmatch(p.log.String(), -1) {
				if !seen[m[1]] {
					out[m[1]] = ""
				}
			}
			return len(out) > 0
		})
		for name := range out {
			r := p.query("udp", name, dns.TypeA)
			if len(r.Answer) != 1 || r.Answer[0].Header().Ttl != 0 {
				t.Fatalf("authentication answer for %s: %v", kite, r)
			}
			out[name] = r.Answer[0].(*dns.A).A.String()
			seen[name] = true
		}
		return out
	}
	seen := map[string]bool{}

	// A wrong secret for a registered name: the frontend asks, gets "rejected" and refuses the kite.
	bad := backend("demo.example.org", "00000000-0000-4000-8000-000000000000")
	bad.waitOutput(t, 30*time.Second, "err=Rejected; proto=http; reason=unauthorized; domain=demo.example.org")
	for name, v := range verdicts("demo.example.org", seen) {
		if v != pkRejected {
			t.Fatalf("wrong secret: %s answered %s, want %s", name, v, pkRejected)
		}
	}
	code, body := through("demo.example.org")
	// 503 is the frontend's own page for a name without a tunnel.
	if code != 503 || hits.Load() != 0 {
		t.Fatalf("wrong secret: request through the frontend got %d %q (%d reached the gateway), want 503", code, body, hits.Load())
	}
	t.Logf("wrong secret: answered %s, backend told \"Rejected ... reason=unauthorized\", request through the frontend got 503", pkRejected)
	bad.stop()

	// An unregistered name, signed with a real token (of another name).
	ghost := backend("ghost.example.org", token)
	ghost.waitOutput(t, 30*time.Second, "err=Rejected; proto=http; reason=unauthorized; domain=ghost.example.org")
	for name, v := range verdicts("ghost.example.org", seen) {
		if v != pkRejected {
			t.Fatalf("unregistered name: %s answered %s, want %s", name, v, pkRejected)
		}
	}
	code, body = through("ghost.example.org")
	// 503 is the frontend's own page for a name without a tunnel.
	if code != 503 || hits.Load() != 0 {
		t.Fatalf("unregistered name: request through the frontend got %d %q (%d reached the gateway), want 503", code, body, hits.Load())
	}
	t.Logf("unregistered name: answered %s, backend told \"Rejected ... reason=unauthorized\", request through the frontend got 503", pkRejected)
	ghost.stop()

	// The registered name with its token: accepted, and requests reach the gateway.
	good := backend("demo.example.org", token)
	good.waitOutput(t, 30*time.Second, pkAcceptedQuota)
	accepted := false
	for _, v := range verdicts("demo.example.org", seen) {
		accepted = accepted || v == pkAccepted
	}
	if !accepted {
		t.Fatalf("no authentication query of the good backend was answered %s", pkAccepted)
	}
	waitUntil(t, 15*time.Second, "request through the tunnel", func() bool {
		code, body = through("demo.example.org")
		return code == 200
	})
	if body != "gateway page for demo.example.org/hello" || hits.Load() != 1 {
		t.Fatalf("through the tunnel: %d %q (%d hits)", code, body, hits.Load())
	}
	t.Logf("token: answered %s, backend told %s, request through the tunnel got 200 from the gateway", pkAccepted, pkAcceptedQuota)

	// The imported name with the token it had on the original server: accepted too.
	legacy := backend("legacy.example.org", legacyToken)
	legacy.waitOutput(t, 30*time.Second, pkAcceptedQuota)
	accepted = false
	for _, v := range verdicts("legacy.example.org", seen) {
		accepted = accepted || v == pkAccepted
	}
	if !accepted {
		t.Fatalf("no authentication query of the imported name's backend was answered %s", pkAccepted)
	}
	waitUntil(t, 15*time.Second, "request through the imported name's tunnel", func() bool {
		code, body = through("legacy.example.org")
		return code == 200
	})
	if body != "gateway page for legacy.example.org/hello" {
		t.Fatalf("through the imported name's tunnel: %d %q", code, body)
	}
	t.Logf("imported token: answered %s, request through the tunnel got 200 from the gateway", pkAccepted)

	for _, d := range []*daemonProc{fe, bad, ghost, good, legacy} {
		if strings.Contains(d.out.String(), token) || strings.Contains(d.out.String(), legacyToken) {
			t.Error("a token appears in pagekite's output")
		}
	}
	if strings.Contains(p.log.String(), token) || strings.Contains(p.log.String(), legacyToken) {
		t.Error("a token appears in coredns's log")
	}
}

// pagekite returns a pagekite command without configuration files, logging to stdout unbuffered.
func pagekite(args ...string) *exec.Cmd {
	cmd := exec.Command("pagekite", append([]string{"--clean", "--nocrashreport", "--logfile=stdio"}, args...)...)
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1")
	return cmd
}

// daemonProc is a started child process in its own process group, whose output is kept.
type daemonProc struct {
	cmd     *exec.Cmd
	out     *syncBuffer
	done    chan struct{}
	stopped bool
}

// startDaemonProc starts cmd. It is stopped, with every process of its group (daemons that fork,
// like nsd, included), at the end of the test, or earlier by stop; if the test failed its output
// is logged, with secrets hidden.
func startDaemonProc(t *testing.T, cmd *exec.Cmd, secrets ...string) *daemonProc {
	t.Helper()
	d := &daemonProc{cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = d.out, d.out
	// Pdeathsig: nothing outlives a test binary that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", cmd.Path, err)
	}
	go func() { cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			text := d.out.String()
			for _, s := range secrets {
				text = strings.ReplaceAll(text, s, "<secret>")
			}
			t.Logf("%s output:\n%s", filepath.Base(cmd.Path), text)
		}
	})
	return d
}

// stop sends SIGTERM to the process group, SIGKILL after 10 s, and waits for the process.
func (d *daemonProc) stop() {
	if d.stopped {
		return
	}
	d.stopped = true
	pgid := d.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-d.done
	}
}

func (d *daemonProc) waitOutput(t *testing.T, timeout time.Duration, want string) {
	t.Helper()
	waitUntil(t, timeout, fmt.Sprintf("%q in %s's output", want, filepath.Base(d.cmd.Path)), func() bool {
		return strings.Contains(d.out.String(), want)
	})
}

// waitUntil polls cond every 100 ms and fails the test after timeout.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
