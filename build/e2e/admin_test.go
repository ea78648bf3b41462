package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/regdns/regdns/plugin/dnstest"
	"github.com/regdns/regdns/plugin/registry/kitetest"
)

// TestAdminWhileServing runs regdnsctl's admin commands against a running ./coredns with the
// embedded etcd (reached through its owner-only socket) and checks that DNS, PageKite
// authentication and the API reflect each change, as soon as the server's view shows it (its
// watch of the embedded etcd, a child process reached through its socket, applies a change
// within milliseconds; the test allows 2 s and logs how long it took): a disabled name answers NXDOMAIN
// over UDP and TCP and its token 400 NameDisabled while the name stays taken; a rotated
// token replaces the old one for the API and for PageKite signatures; a deleted name is free.
func TestAdminWhileServing(t *testing.T) {
	addrs := dnstest.FreeAddrs(t, 2)
	dir := t.TempDir()
	_, dnsPort, _ := net.SplitHostPort(addrs[0])
	corefile := zoneBlock(dnsPort, "", fmt.Sprintf(`        api %s
        data %s
        tunnel 192.0.2.80`, addrs[1], filepath.Join(dir, "data")))
	p := runCorefile(t, dir, corefile, addrs[0], addrs[1])
	conf := filepath.Join(dir, "Corefile")
	ctl := func(want int, args ...string) string {
		t.Helper()
		code, out := regdnsctl(t, conf, args...)
		if code != want {
			t.Fatalf("regdnsctl %v: exit %d, want %d:\n%s", args, code, want, out)
		}
		if !strings.Contains(out, "using the running server's embedded etcd") {
			t.Errorf("regdnsctl %v did not go through the running server:\n%s", args, out)
		}
		return out
	}
	subscribe := func(name string) string {
		t.Helper()
		var r struct{ Token string }
		if err := jsonInto(p.ok("/subscribe", url.Values{"name": {name}}), &r); err != nil || r.Token == "" {
			t.Fatalf("subscribe %s: %v", name, err)
		}
		return r.Token
	}
	rcode := func(net, qname string) int { return p.query(net, qname, dns.TypeA).Rcode }
	// visible waits until DNS shows the change regdnsctl just made; what is checked after it
	// comes from the same etcd transaction, so the view has all of it.
	visible := func(what string, cond func() bool) {
		t.Helper()
		start := time.Now()
		waitUntil(t, 2*time.Second, what, cond)
		t.Logf("%s after %s", what, time.Since(start).Round(time.Millisecond))
	}
	kite := func(secret string) string {
		t.Helper()
		r := p.query("udp", kitetest.Signed(secret, "gw", "example.org."), dns.TypeA)
		if len(r.Answer) != 1 {
			t.Fatalf("kite query: %v", r)
		}
		return r.Answer[0].(*dns.A).A.String()
	}

	token := subscribe("gw")
	if got := kite(token); got != kiteOK {
		t.Fatalf("kite signed with the token: %s", got)
	}

	// Disable: NXDOMAIN at once, over both transports; the token is refused; the name stays taken.
	ctl(0, "names", "disable", "gw", "--reason", "abuse report 17")
	visible("NXDOMAIN for the disabled name", func() bool { return rcode("udp", "gw.example.org.") == dns.RcodeNameError })
	for _, network := range []string{"udp", "tcp"} {
		if got := rcode(network, "gw.example.org."); got != dns.RcodeNameError {
			t.Errorf("disabled name over %s: %s, want NXDOMAIN", network, dns.RcodeToString[got])
		}
	}
	if got := kite(token); got != kiteNo {
		t.Errorf("kite of a disabled name: %s", got)
	}
	p.fails("/info", url.Values{"token": {token}}, 400, "NameDisabled")
	p.fails("/subscribe", url.Values{"name": {"gw"}}, 400, "UnavailableName")
	if out := ctl(0, "names", "show", "gw"); !strings.Contains(out, "abuse report 17") || strings.Contains(out, token) {
		t.Errorf("names show of the disabled name:\n%s", out)
	}
	ctl(0, "names", "enable", "gw")
	visible("an answer for the enabled name", func() bool { return rcode("udp", "gw.example.org.") == dns.RcodeSuccess })
	if got := rcode("udp", "gw.example.org."); got != dns.RcodeSuccess {
		t.Errorf("enabled name: %s", dns.RcodeToString[got])
	}
	p.ok("/info", url.Values{"token": {token}})

	// Rotate: the old token fails for the API and PageKite, the new one works for both.
	var rotated struct{ Token string }
	if err := json.Unmarshal([]byte(jsonPart(ctl(0, "token", "rotate", "gw", "--json"))), &rotated); err != nil || rotated.Token == "" {
		t.Fatalf("token rotate --json: %v", err)
	}
	visible("the new token's kite accepted", func() bool { return kite(rotated.Token) == kiteOK })
	p.fails("/info", url.Values{"token": {token}}, 400, "InvalidToken")
	p.ok("/ping", url.Values{"token": {rotated.Token}})
	if got := kite(token); got != kiteNo {
		t.Errorf("kite signed with the old token: %s", got)
	}
	if got := kite(rotated.Token); got != kiteOK {
		t.Errorf("kite signed with the new token: %s", got)
	}

	// Email, then delete: the name is free for /subscribe, and nothing is left behind.
	ctl(0, "email", "set", "gw", "owner@example.org", "--verified")
	var info struct {
		Email    string
		Verified bool
	}
	visible("the email in /info", func() bool {
		err := jsonInto(p.ok("/info", url.Values{"token": {rotated.Token}}), &info)
		return err == nil && info.Email == "owner@example.org"
	})
	if !info.Verified {
		t.Errorf("/info after email set --verified: %+v", info)
	}
	ctl(0, "names", "delete", "gw")
	visible("NXDOMAIN for the deleted name", func() bool { return rcode("udp", "gw.example.org.") == dns.RcodeNameError })
	if got := rcode("udp", "gw.example.org."); got != dns.RcodeNameError {
		t.Errorf("deleted name: %s", dns.RcodeToString[got])
	}
	p.fails("/info", url.Values{"token": {rotated.Token}}, 400, "InvalidToken")
	subscribe("gw")
	ctl(0, "check")
	if out := ctl(0, "stats"); !strings.Contains(out, "names: 1 (tunnel 1, dynamic 0)") {
		t.Errorf("stats:\n%s", out)
	}
	ctl(3, "names", "show", "nobody")

	// Backup while serving; restore refuses to run until the server stops, then takes the
	// zone back to the backup with a SOA serial above the one served.
	backup := filepath.Join(dir, "backup.db")
	ctl(0, "backup", backup)
	subscribe("later")
	served := p.query("udp", "example.org.", dns.TypeSOA).Answer[0].(*dns.SOA).Serial
	if code, out := regdnsctl(t, conf, "restore", backup); code != 2 || !strings.Contains(out, "stop it first") {
		t.Fatalf("restore while serving: exit %d:\n%s", code, out)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := <-p.done
	p.done <- err // for the cleanup
	if code, out := regdnsctl(t, conf, "restore", backup); code != 0 || !strings.Contains(out, "restored ") {
		t.Fatalf("restore: exit %d:\n%s", code, out)
	}
	p = runCorefile(t, dir, corefile, addrs[0], addrs[1])
	soa := p.query("udp", "example.org.", dns.TypeSOA).Answer[0].(*dns.SOA).Serial
	if int32(soa-served) <= 0 {
		t.Errorf("SOA serial %d after the restore, %d served before: it went back", soa, served)
	}
	if got := rcode("udp", "gw.example.org."); got != dns.RcodeSuccess {
		t.Errorf("name of the backup after the restore: %s", dns.RcodeToString[got])
	}
	if got := rcode("udp", "later.example.org."); got != dns.RcodeNameError {
		t.Errorf("name registered after the backup still there after the restore: %s", dns.RcodeToString[got])
	}
	t.Logf("SOA serial %d before the restore, %d after", served, soa)
}

// jsonPart is the JSON object in out, which also holds regdnsctl's notes on stderr.
func jsonPart(out string) string {
	if i := strings.Index(out, "{"); i >= 0 {
		return out[i:]
	}
	return out
}
