package registry

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/regdns/regdns/etcdstore"
	"github.com/regdns/regdns/plugin/registry/kitetest"
)

// A disabled name answers NXDOMAIN (its challenge name too), its PageKite signatures are
// rejected, it is left out of zone transfers, and the expiry sweeper leaves it taken while
// it deletes an unpinged name that is not disabled. Enabled again, it resolves.
func TestDisabledNameHidden(t *testing.T) {
	s := startServerWith(t, "transfer {\n to *\n }", "expire 1s 1s")
	tok := s.subscribe("banned", nil)
	s.subscribe("idle", nil)
	kite := kitetest.Signed(tok, "banned", "example.org.")
	if r := s.query("udp", kite, dns.TypeA); len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != kiteAccepted {
		t.Fatalf("kite signed with the token before disabling: %v", r)
	}
	ks := keyspaceOf(t)
	setDisabled(s, ks, "banned", true)
	for _, q := range []string{"banned.example.org.", "_acme-challenge.banned.example.org."} {
		if r := s.query("udp", q, dns.TypeTXT); r.Rcode != dns.RcodeNameError {
			t.Errorf("%s of a disabled name: rcode %s, want NXDOMAIN", q, dns.RcodeToString[r.Rcode])
		}
	}
	if r := s.query("udp", kite, dns.TypeA); len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != kiteRejected {
		t.Errorf("kite of a disabled name: %v, want %s", r.Answer, kiteRejected)
	}
	if code, body := s.get("/subscribe", url.Values{"name": {"banned"}}); code != 400 || !strings.Contains(body, "UnavailableName") {
		t.Errorf("subscribe to a disabled name: %d %s", code, body)
	}
	// Unpinged past expire and grace: idle is deleted, banned stays.
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := ks.Get(t.Context(), etcdstore.ByName("idle")); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("idle was not swept 15s after expire (1s) and grace (1s)")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := ks.Get(t.Context(), etcdstore.ByName("banned")); err != nil {
		t.Fatalf("the sweeper deleted the disabled name: %v", err)
	}
	m := new(dns.Msg)
	m.SetAxfr("example.org.")
	for _, rr := range s.exchange("tcp", m).Answer {
		if strings.HasPrefix(rr.Header().Name, "banned.") {
			t.Errorf("transfer holds the disabled name: %s", rr)
		}
	}
	setDisabled(s, ks, "banned", false)
	s.mustGet("/ping", url.Values{"token": {tok}})
	if r := s.query("udp", kite, dns.TypeA); len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != kiteAccepted {
		t.Errorf("kite of the enabled name: %v", r.Answer)
	}
}

// keyspaceOf opens the etcd keys of the test's server (registryBlock's prefix).
func keyspaceOf(t *testing.T) *etcdstore.Keyspace {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: testEtcd.Endpoints(), DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	resp, err := cli.Get(t.Context(), "/test-"+t.Name()+"-", clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(1))
	if err != nil || len(resp.Kvs) == 0 {
		t.Fatalf("no keys of %s: %v", t.Name(), err)
	}
	prefix, _, _ := strings.Cut(string(resp.Kvs[0].Key), "/names/")
	ks, err := etcdstore.Connect(etcdstore.Config{Endpoints: testEtcd.Endpoints(), Prefix: prefix + "/"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	return ks
}

// setDisabled disables or enables name, as regdnsctl does, and waits until s answers so.
func setDisabled(s *server, ks *etcdstore.Keyspace, name string, disabled bool) {
	t := s.t
	t.Helper()
	if _, err := ks.Update(t.Context(), etcdstore.ByName(name), func(d *etcdstore.Record) error {
		if disabled {
			d.Disable("test", time.Now())
		} else {
			d.Enable(time.Now())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The server's view follows through its watch: wait for DNS to show the change.
	deadline := time.Now().Add(10 * time.Second)
	for (s.query("udp", name+".example.org.", dns.TypeA).Rcode == dns.RcodeNameError) != disabled {
		if time.Now().After(deadline) {
			t.Fatalf("%s disabled=%v: DNS did not follow within 10s", name, disabled)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
