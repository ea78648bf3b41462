package registry

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/miekg/dns"

	"github.com/regdns/regdns/etcdstore"
	"github.com/regdns/regdns/plugin/dnstest"
)

// Reloading the Corefile keeps the zone and never refuses an API request or a DNS query.
func TestReloadKeepsServing(t *testing.T) {
	s := startServer(t, "")
	tok := s.subscribe("keep", nil)
	body := s.inst.Caddyfile().Body()

	ctx, cancel := context.WithCancel(context.Background())
	var apiOK, apiFail, dnsOK, dnsFail atomic.Int64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		client := &http.Client{Timeout: 5 * time.Second}
		for ctx.Err() == nil {
			resp, err := client.Get(s.api + "/ping?token=" + url.QueryEscape(tok))
			if err != nil || resp.StatusCode != 200 {
				apiFail.Add(1)
				if err == nil {
					resp.Body.Close()
				}
				continue
			}
			resp.Body.Close()
			apiOK.Add(1)
		}
	}()
	go func() {
		defer wg.Done()
		c := &dns.Client{Timeout: 2 * time.Second}
		m := new(dns.Msg)
		m.SetQuestion("keep.example.org.", dns.TypeA)
		for ctx.Err() == nil {
			r, _, err := c.Exchange(m, s.udp)
			if err != nil || len(r.Answer) != 1 {
				dnsFail.Add(1)
				continue
			}
			dnsOK.Add(1)
		}
	}()

	inst := s.inst
	for range 3 {
		time.Sleep(100 * time.Millisecond)
		next, err := inst.Restart(corefile(body))
		if err != nil {
			t.Fatalf("reload: %v", err)
		}
		inst = next
	}
	time.Sleep(100 * time.Millisecond)
	cancel()
	wg.Wait()
	s.inst = inst

	if apiFail.Load() != 0 || dnsFail.Load() != 0 || apiOK.Load() == 0 || dnsOK.Load() == 0 {
		t.Errorf("across 3 reloads: API %d ok / %d failed, DNS %d ok / %d failed; want no failure",
			apiOK.Load(), apiFail.Load(), dnsOK.Load(), dnsFail.Load())
	}
	if r := s.query("udp", "keep.example.org.", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("name lost across reloads: %v", r)
	}
	s.mustGet("/info", url.Values{"token": {tok}})
}

// A broken Corefile on reload leaves the running configuration in place.
func TestBadReloadKeepsOldConfig(t *testing.T) {
	s := startServer(t, "")
	tok := s.subscribe("stay", nil)
	bad := "example.org:0 {\n registry {\n nonsense here\n }\n}\n"
	if _, err := s.inst.Restart(corefile(bad)); err == nil {
		t.Fatal("reload with a broken Corefile succeeded")
	}
	s.mustGet("/ping", url.Values{"token": {tok}})
	if r := s.query("udp", "stay.example.org.", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("after failed reload: %v", r)
	}
}

// With etcd gone, DNS answers every name it knew and the API fails fast with 501; both
// recover when etcd returns, without a restart.
func TestEtcdDownAndBack(t *testing.T) {
	dir := t.TempDir()
	ports := dnstest.FreeAddrs(t, 2)
	ecfg := etcdstore.EmbeddedConfig{Dir: dir, ClientURL: "http://" + ports[0], PeerURL: "http://" + ports[1], Fast: true}
	e, err := etcdstore.StartEmbedded(ecfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { e.Close() }()
	cf := fmt.Sprintf("example.org:0 {\n bind 127.0.0.1\n registry {\n etcd http://%s\n etcd_timeout 500ms\n api 127.0.0.1:0\n data %s\n tunnel 198.51.100.1\n }\n}\n", ports[0], t.TempDir())
	startMu.Lock()
	inst, err := caddy.Start(corefile(cf))
	startMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, inst: inst, udp: inst.Servers()[0].LocalAddr().String(), tcp: inst.Servers()[0].Addr().String()}
	s.api = "http://" + apiAddr(t, "127.0.0.1:0")
	t.Cleanup(s.stop)

	tok := s.subscribe("before", nil)
	e.Close()

	if r := s.query("udp", "before.example.org.", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("etcd down: known name not answered: %v", r)
	}
	if r := s.query("tcp", "unknown.example.org.", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Errorf("etcd down: unknown name rcode %s", dns.RcodeToString[r.Rcode])
	}
	start := time.Now()
	code, body := s.get("/dnsconfig", url.Values{"token": {tok}, "challenge": {"down"}})
	if code != 501 || time.Since(start) > 3*time.Second {
		t.Errorf("etcd down: /dnsconfig gave %d %s after %s; want 501 within 3s", code, body, time.Since(start))
	}

	e, err = etcdstore.StartEmbedded(ecfg)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, _ := s.get("/dnsconfig", url.Values{"token": {tok}, "challenge": {"back"}})
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("API did not recover after etcd came back (last %d)", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.subscribe("after", nil)
	if r := s.query("udp", "after.example.org.", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("name written after recovery not answered: %v", r)
	}
}
