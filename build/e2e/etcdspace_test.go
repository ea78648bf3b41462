package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/regdns/regdns/etcdstore"
	"github.com/regdns/regdns/plugin/dnstest"
)

// spaceName is a name the NOSPACE test writes, with its last acknowledged challenge and the
// values sent after it (which a 501 that timed out, rather than was refused, may have stored).
type spaceName struct {
	name, token string
	acked       string
	after       []string
}

// TestEtcdNoSpaceRecovers runs ./coredns with the default (closed) embedded etcd and a 2 MiB
// quota, and rewrites challenges of many names until etcd raises NOSPACE: the API answers
// 501 while it lasts, the embedded etcd compacts, defragments and disarms by itself, writes
// succeed again, no acknowledged write is lost, and DNS answers every query throughout.
func TestEtcdNoSpaceRecovers(t *testing.T) {
	addrs := dnstest.FreeAddrs(t, 3)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	_, dnsPort, _ := net.SplitHostPort(addrs[0])
	metrics := "http://" + addrs[2] + "/metrics"
	p := startServing(t, dir, zoneBlock(dnsPort, "    prometheus "+addrs[2], fmt.Sprintf(`        api %s
        data %s
        etcd_quota 2MiB
        client_limit off
        tunnel %s`, addrs[1], data, faultTunnel)), addrs[0], addrs[1])

	// Records of about 1.5 KiB (a long description, two long challenges): each write adds
	// about that much history, so a few thousand fill the quota.
	desc := strings.Repeat("é", 256)
	var names []*spaceName
	for i := range 200 {
		var sub struct{ Token string }
		name := fmt.Sprintf("full%d", i)
		if err := jsonInto(p.ok("/subscribe", url.Values{"name": {name}, "desc": {desc}}), &sub); err != nil {
			t.Fatal(err)
		}
		names = append(names, &spaceName{name: name, token: sub.Token})
	}

	stop := make(chan struct{})
	var full atomic.Bool // between the first 501 and the recovery
	var queries, unanswered, duringFull atomic.Int64
	var probe sync.WaitGroup
	probe.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			queries.Add(1)
			if full.Load() {
				duringFull.Add(1)
			}
			r, err := dnstest.Exchange("udp", addrs[0], "full0.example.org.", dns.TypeA)
			if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
				unanswered.Add(1)
			}
		}
	})

	var (
		mu        sync.Mutex
		codes     = map[int]int{}
		firstFull time.Time // the first 501
		recovered time.Duration
	)
	deadline := time.Now().Add(2 * time.Minute)
	client := &http.Client{Timeout: 10 * time.Second}
	var writers sync.WaitGroup
	for w := range 8 {
		writers.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				mu.Lock()
				done := recovered > 0
				mu.Unlock()
				if done {
					return
				}
				n := names[(w+8*i)%len(names)]
				value := fmt.Sprintf("%s-%d-%d-%s", n.name, w, i, strings.Repeat("c", 200))
				code, body, err := faultCall(client, p.api, "/dnsconfig", url.Values{"token": {n.token}, "challenge": {value}}, nil)
				mu.Lock()
				switch {
				case err != nil:
					t.Errorf("/dnsconfig: %v", err)
				case code == http.StatusOK:
					n.acked, n.after = value, nil
					if !firstFull.IsZero() && recovered == 0 && promMetric(t, metrics, "coredns_registry_etcd_nospace_recoveries_total") >= 1 {
						recovered = time.Since(firstFull)
						full.Store(false)
					}
				case code == http.StatusNotImplemented && errorCode(body) == "InternalError":
					n.after = append(n.after, value)
					if firstFull.IsZero() {
						firstFull = time.Now()
						full.Store(true)
					}
				case code == http.StatusTooManyRequests:
					// A per-name write limit, where there is one, refuses some writes: not stored.
				default:
					t.Errorf("/dnsconfig: %d %s", code, body)
				}
				codes[code]++
				mu.Unlock()
			}
		})
	}
	writers.Wait()
	close(stop)
	probe.Wait()
	t.Logf("API answers by status: %v; first 501 to the first 200 after the recovery: %v; DNS: %d of %d queries unanswered, %d of them during NOSPACE",
		codes, recovered, unanswered.Load(), queries.Load(), duringFull.Load())
	if firstFull.IsZero() || recovered == 0 {
		t.Fatalf("NOSPACE (first 501 at %v) and recovery (%v) not both seen within 2 minutes", firstFull, recovered)
	}
	if unanswered.Load() > 0 || duringFull.Load() < 5 {
		t.Errorf("DNS left %d of %d queries unanswered, %d asked during NOSPACE (want at least 5)", unanswered.Load(), queries.Load(), duringFull.Load())
	}

	for _, n := range names {
		if n.acked == "" {
			continue
		}
		var info struct {
			DNSChallenges []string `json:"dns_challenges"`
		}
		if err := jsonInto(p.ok("/info", url.Values{"token": {n.token}}), &info); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(info.DNSChallenges, n.acked) && !slices.ContainsFunc(info.DNSChallenges, func(v string) bool { return slices.Contains(n.after, v) }) {
			t.Errorf("%s lost its acknowledged challenge", n.name)
		}
	}
	if got := promMetric(t, metrics, `coredns_registry_etcd_quota_bytes{endpoint="embedded"}`); got != 2<<20 {
		t.Errorf("quota metric %v, want %d", got, 2<<20)
	}
	if got := strings.Count(p.log.String(), "reached its quota"); got < 1 || got > int(promMetric(t, metrics, "coredns_registry_etcd_nospace_recoveries_total"))+1 {
		t.Errorf("NOSPACE logged %d times, want once per event", got)
	}
	// The running server's embedded etcd, through its socket, holds a consistent store.
	endpoint, err := etcdstore.LocalEndpoint(data)
	if err != nil {
		t.Fatal(err)
	}
	if problems := storeProblems(t, endpoint); len(problems) > 0 {
		t.Errorf("consistency check: %v", problems)
	}
	backupThroughSocket(t, endpoint, filepath.Join(dir, "backup.db"))
}

// backupThroughSocket takes a snapshot of a running server's embedded etcd with etcdctl, as
// the README tells operators to, and checks that only its owner can read it: it holds every
// API token.
func backupThroughSocket(t *testing.T, endpoint, path string) {
	t.Helper()
	if _, err := exec.LookPath("etcdctl"); err != nil {
		t.Fatal("etcdctl is required (make test installs Debian's etcd-client package)")
	}
	cmd := exec.Command("etcdctl", "--endpoints", endpoint, "snapshot", "save", path)
	cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("etcdctl snapshot save: %v\n%s", err, out)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() == 0 || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("snapshot %s: %d bytes, mode %v; want data readable by its owner only", path, fi.Size(), fi.Mode())
	}
}
