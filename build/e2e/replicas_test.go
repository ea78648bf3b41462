package e2e

import (
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
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/regdns/regdns/etcdstore"
	"github.com/regdns/regdns/plugin/dnstest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Several ./coredns replicas share one 3-member etcd cluster. Each etcd member runs in its own
// process (this test binary, re-executed; see init) so that stopping the leader is a real crash
// (SIGKILL) followed by an election: an in-process embed.Etcd.Close hands leadership over first.

// Raft timing of the members: elections finish within about a second, yet a heartbeat is not
// missed on a loaded 2-core machine.
const (
	memberTickMs     = 50
	memberElectionMs = 500
)

// etcdMemberEnv holds the JSON memberConfig of the etcd member that the test binary runs
// instead of the tests.
const etcdMemberEnv = "REGDNS_TEST_ETCD_MEMBER"

type memberConfig struct {
	Name, Dir, ClientURL, PeerURL, InitialCluster string
}

func init() {
	if v := os.Getenv(etcdMemberEnv); v != "" {
		os.Exit(runEtcdMember(v))
	}
}

func runEtcdMember(v string) int {
	var mc memberConfig
	if err := json.Unmarshal([]byte(v), &mc); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	curl, err := url.Parse(mc.ClientURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	purl, err := url.Parse(mc.PeerURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = mc.Name, mc.Dir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*curl}, []url.URL{*curl}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*purl}, []url.URL{*purl}
	cfg.InitialCluster, cfg.InitialClusterToken = mc.InitialCluster, "regdns-replicas"
	cfg.TickMs, cfg.ElectionMs = memberTickMs, memberElectionMs
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.New(zapcore.NewCore(
		zapcore.NewConsoleEncoder(zap.NewProductionEncoderConfig()), os.Stderr, zap.WarnLevel)))
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The test holds stdin open: EOF means it is gone, and the member must not outlive it.
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	fmt.Fprintln(os.Stderr, <-e.Err())
	return 1
}

// etcdMember is one member process of the test cluster.
type etcdMember struct {
	cfg    memberConfig
	log    *syncBuffer
	cmd    *exec.Cmd
	exited chan struct{}
}

func (m *etcdMember) endpoint() string { return m.cfg.ClientURL }

// start runs the member (again, on the same data directory after a kill).
func (m *etcdMember) start(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(m.cfg)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), etcdMemberEnv+"="+string(cfg))
	cmd.Stdout, cmd.Stderr = m.log, m.log
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	m.cmd, m.exited = cmd, exited
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		stdin.Close()
	})
}

// kill crashes the member.
func (m *etcdMember) kill() {
	m.cmd.Process.Kill()
	<-m.exited
}

// startCluster starts three members on free loopback ports and waits until they have a leader.
func startCluster(t *testing.T) ([]*etcdMember, *clientv3.Client) {
	addrs := dnstest.FreeAddrs(t, 6)
	var members []*etcdMember
	var initial []string
	for i := range 3 {
		m := &etcdMember{log: &syncBuffer{}, cfg: memberConfig{
			Name:      fmt.Sprintf("m%d", i+1),
			Dir:       filepath.Join(t.TempDir(), "etcd"),
			ClientURL: "http://" + addrs[2*i],
			PeerURL:   "http://" + addrs[2*i+1],
		}}
		members = append(members, m)
		initial = append(initial, m.cfg.Name+"="+m.cfg.PeerURL)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, m := range members {
				t.Logf("etcd %s output:\n%s", m.cfg.Name, m.log.String())
			}
		}
	})
	for _, m := range members {
		// All at once: a new member waits for its peers before it serves.
		m.cfg.InitialCluster = strings.Join(initial, ",")
		m.start(t)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints(members), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	waitUntil(t, 30*time.Second, "a 3-member etcd cluster with a leader", func() bool {
		return leaderOf(cli, members) != nil && healthy(cli, members) == 3
	})
	return members, cli
}

func endpoints(members []*etcdMember) []string {
	var out []string
	for _, m := range members {
		out = append(out, m.endpoint())
	}
	return out
}

// leaderOf returns the member that says it is the leader, or nil.
func leaderOf(cli *clientv3.Client, members []*etcdMember) *etcdMember {
	for _, m := range members {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := cli.Status(ctx, m.endpoint())
		cancel()
		if err == nil && st.Leader != 0 && st.Leader == st.Header.MemberId {
			return m
		}
	}
	return nil
}

// healthy counts the members that answer a linearizable read.
func healthy(cli *clientv3.Client, members []*etcdMember) int {
	n := 0
	for _, m := range members {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{m.endpoint()}, DialTimeout: time.Second, Logger: zap.NewNop()})
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if _, err := c.Get(ctx, "health"); err == nil {
			n++
		}
		cancel()
		c.Close()
	}
	return n
}

// replica is one ./coredns of the zone.
type replica struct {
	*product
	name, dir, corefile string
}

func startReplica(t *testing.T, name, host string, members []*etcdMember) *replica {
	dnsAddr, apiAddr := dnstest.FreeHostAddr(t, host), dnstest.FreeHostAddr(t, host)
	_, dnsPort, _ := net.SplitHostPort(dnsAddr)
	dir := t.TempDir()
	corefile := fmt.Sprintf(`example.org:%s {
    bind %s
    errors
    registry {
        api %s
        data %s
        etcd %s
        etcd_prefix /replicas/
        etcd_timeout 1s
        ns ns1.example.org 127.0.0.1
        tunnel 192.0.2.80
        trusted_proxy 127.0.0.0/8
    }
}
`, dnsPort, host, apiAddr, filepath.Join(dir, "data"), strings.Join(endpoints(members), " "))
	return &replica{product: runCorefile(t, dir, corefile, dnsAddr, apiAddr), name: name, dir: dir, corefile: corefile}
}

// restart kills the replica and starts it again on the same Corefile.
func (r *replica) restart(t *testing.T) {
	r.cmd.Process.Kill()
	err := <-r.done
	r.done <- err // for runCorefile's cleanup
	r.product = runCorefile(t, r.dir, r.corefile, r.dns, strings.TrimPrefix(r.api, "http://"))
}

// callers hands out a distinct gateway address per subscription: the API's per-address rate
// limit would otherwise refuse this many /subscribe from one address. Through trusted_proxy
// the address is also the name's A record (mode=1), so each name has its own answer.
var callers atomic.Uint32

func nextCaller() string {
	n := callers.Add(1)
	return fmt.Sprintf("198.18.%d.%d", n/250, n%250+1)
}

var apiClient = &http.Client{Timeout: 20 * time.Second}

// apiGet calls the API as caller (X-Real-IP; none if "") without failing the test, so that
// goroutines can use it.
func apiGet(base, path string, params url.Values, caller string) (int, string, error) {
	h := http.Header{}
	if caller != "" {
		h.Set("X-Real-IP", caller)
	}
	return faultCall(apiClient, base, path, params, h)
}

// subscribeFrom subscribes name in dynamic-DNS mode from caller and returns its token.
func subscribeFrom(t *testing.T, r *replica, name, caller string) string {
	t.Helper()
	code, body, err := apiGet(r.api, "/subscribe", url.Values{"name": {name}, "mode": {"1"}}, caller)
	var sub struct{ Token string }
	if err != nil || code != 200 || jsonInto(body, &sub) != nil || sub.Token == "" {
		t.Fatalf("subscribe %s on %s: %d %s %v", name, r.name, code, errorCode(body), err)
	}
	return sub.Token
}

// answers reports whether addr answers qname with exactly the values want (A addresses or TXT
// strings).
func answers(addr, qname string, qtype uint16, want ...string) bool {
	r, err := dnstest.Exchange("udp", addr, qname, qtype)
	if err != nil || r.Rcode != dns.RcodeSuccess {
		return false
	}
	var got []string
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			got = append(got, rr.A.String())
		case *dns.TXT:
			got = append(got, rr.Txt...)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	return slices.Equal(got, want)
}

// propagation waits until addr answers as want and returns how long after start it did.
func propagation(t *testing.T, start time.Time, addr, qname string, qtype uint16, want ...string) time.Duration {
	t.Helper()
	for !answers(addr, qname, qtype, want...) {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("%s %s on %s not %v within 5s", qname, dns.TypeToString[qtype], addr, want)
		}
		time.Sleep(200 * time.Microsecond)
	}
	return time.Since(start)
}

func durationStats(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	p99 := s[(len(s)*99+99)/100-1]
	return fmt.Sprintf("n=%d median %s p99 %s max %s", len(s), s[len(s)/2].Round(10*time.Microsecond),
		p99.Round(10*time.Microsecond), s[len(s)-1].Round(10*time.Microsecond))
}

func soa(t *testing.T, r *replica) uint32 {
	t.Helper()
	m, err := dnstest.Exchange("udp", r.dns, "example.org.", dns.TypeSOA)
	if err != nil || len(m.Answer) != 1 {
		t.Fatalf("SOA on %s: %v %v", r.name, m, err)
	}
	return m.Answer[0].(*dns.SOA).Serial
}

// waitSameSerial waits until every replica serves the same SOA serial: all caught up.
func waitSameSerial(t *testing.T, rs ...*replica) {
	t.Helper()
	waitUntil(t, 10*time.Second, "the same SOA serial on every replica", func() bool {
		for _, r := range rs[1:] {
			if soa(t, r) != soa(t, rs[0]) {
				return false
			}
		}
		return true
	})
}

// written is a name the test subscribed, with the answers it should have.
type written struct {
	name, token, addr string
	challenges        []string
}

func TestReplicas(t *testing.T) {
	members, cli := startCluster(t)
	a := startReplica(t, "A", "127.0.0.2", members)
	b := startReplica(t, "B", "127.0.0.3", members)
	replicas := []*replica{a, b}
	var names []*written

	// Propagation: a name subscribed through A resolves on B; a challenge set through B is
	// served by A. Each delay runs from the API's 200 to the other replica's first answer.
	var toB, toA []time.Duration
	for i := range 100 {
		w := &written{name: fmt.Sprintf("prop%d", i), addr: nextCaller()}
		w.token = subscribeFrom(t, a, w.name, w.addr)
		start := time.Now()
		qname := w.name + ".example.org."
		if !answers(a.dns, qname, dns.TypeA, w.addr) {
			t.Fatalf("%s does not answer %s at once after its 200", a.name, w.name)
		}
		toB = append(toB, propagation(t, start, b.dns, qname, dns.TypeA, w.addr))

		c := fmt.Sprintf("challenge-%d", i)
		if code, body, err := apiGet(b.api, "/dnsconfig", url.Values{"token": {w.token}, "challenge": {c}}, ""); code != 200 {
			t.Fatalf("dnsconfig %s on B: %d %s %v", w.name, code, errorCode(body), err)
		}
		start = time.Now()
		w.challenges = []string{c}
		qname = "_acme-challenge." + qname
		if !answers(b.dns, qname, dns.TypeTXT, c) {
			t.Fatalf("%s does not serve the challenge of %s at once after its 200", b.name, w.name)
		}
		toA = append(toA, propagation(t, start, a.dns, qname, dns.TypeTXT, c))
		names = append(names, w)
	}
	t.Logf("propagation A->B (/subscribe): %s", durationStats(toB))
	t.Logf("propagation B->A (/dnsconfig): %s", durationStats(toA))
	t.Logf("propagation both: %s", durationStats(append(toB, toA...)))

	// The same name subscribed through both replicas at the same instant: exactly one wins, and
	// its token works on both.
	for i := range 20 {
		name := fmt.Sprintf("race%d", i)
		type result struct {
			code       int
			body, addr string
			err        error
		}
		var res [2]result
		var ready, done sync.WaitGroup
		barrier := make(chan struct{})
		for j, r := range replicas {
			ready.Add(1)
			done.Add(1)
			go func() {
				defer done.Done()
				res[j].addr = nextCaller()
				ready.Done()
				<-barrier
				res[j].code, res[j].body, res[j].err = apiGet(r.api, "/subscribe", url.Values{"name": {name}, "mode": {"1"}}, res[j].addr)
			}()
		}
		ready.Wait()
		close(barrier)
		done.Wait()
		win := slices.IndexFunc(res[:], func(r result) bool { return r.code == 200 })
		lose := 1 - win
		if win < 0 || res[lose].code != 400 || errorCode(res[lose].body) != "UnavailableName" {
			t.Fatalf("%s through both: A %d %s %v, B %d %s %v", name, res[0].code, errorCode(res[0].body), res[0].err,
				res[1].code, errorCode(res[1].body), res[1].err)
		}
		var sub struct{ Token string }
		jsonInto(res[win].body, &sub)
		for _, r := range replicas {
			var info struct{ Name, IP string }
			code, body, err := apiGet(r.api, "/info", url.Values{"token": {sub.Token}}, "")
			if code != 200 || jsonInto(body, &info) != nil || info.Name != name || info.IP != res[win].addr {
				t.Fatalf("info of %s (won on %s) on %s: %d %s %v", name, replicas[win].name, r.name, code, errorCode(body), err)
			}
		}
		names = append(names, &written{name: name, token: sub.Token, addr: res[win].addr})
	}

	// Crash the etcd leader during a stream of subscriptions through both replicas: every 200
	// is kept, every other answer is a 501, and DNS never stops answering.
	leader := leaderOf(cli, members)
	if leader == nil {
		t.Fatal("no etcd leader")
	}
	type attempt struct {
		name, caller, token string
		replica             int
		code                int
		errCode             string
		err                 error
		at, took            time.Duration
	}
	var (
		mu       sync.Mutex
		attempts []attempt
		dnsFails []string
		dnsMax   time.Duration
		wg       sync.WaitGroup
	)
	begin := time.Now()
	stop := begin.Add(6 * time.Second)
	// Eight writers keep eight requests in flight through the election; the pause between
	// requests bounds the number of names the checks below go through.
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := replicas[g%2]
			for i := 0; time.Now().Before(stop); i++ {
				at := attempt{name: fmt.Sprintf("crash%d-%d", g, i), caller: nextCaller(), replica: g % 2, at: time.Since(begin)}
				code, body, err := apiGet(r.api, "/subscribe", url.Values{"name": {at.name}, "mode": {"1"}}, at.caller)
				at.took = time.Since(begin) - at.at
				at.code, at.err = code, err
				var sub struct{ Token string }
				if code == 200 && jsonInto(body, &sub) == nil {
					at.token = sub.Token
				} else {
					at.errCode = errorCode(body)
				}
				mu.Lock()
				attempts = append(attempts, at)
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		w := names[0]
		for time.Now().Before(stop.Add(time.Second)) {
			for _, r := range replicas {
				start := time.Now()
				ok := answers(r.dns, w.name+".example.org.", dns.TypeA, w.addr)
				took := time.Since(start)
				mu.Lock()
				dnsMax = max(dnsMax, took)
				if !ok {
					dnsFails = append(dnsFails, fmt.Sprintf("%s at %s", r.name, time.Since(begin).Round(time.Millisecond)))
				}
				mu.Unlock()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	time.Sleep(time.Second)
	killedAt := time.Since(begin)
	leader.kill()
	others := slices.DeleteFunc(slices.Clone(members), func(m *etcdMember) bool { return m == leader })
	waitUntil(t, 10*time.Second, "a new etcd leader", func() bool { return leaderOf(cli, others) != nil })
	elected := time.Since(begin) - killedAt
	wg.Wait()
	t.Logf("killed etcd leader %s at %s; a new leader was elected %s later", leader.cfg.Name,
		killedAt.Round(time.Millisecond), elected.Round(time.Millisecond))

	var ok, failed int
	var first501, last501, maxTook time.Duration
	for _, at := range attempts {
		maxTook = max(maxTook, at.took)
		switch {
		case at.code == 200 && at.token != "":
			ok++
			names = append(names, &written{name: at.name, token: at.token, addr: at.caller})
		case at.code == 501:
			if failed == 0 {
				first501 = at.at
			}
			failed++
			last501 = max(last501, at.at+at.took)
		default:
			t.Errorf("%s on %s: %d %s %v, want 200 or 501", at.name, replicas[at.replica].name, at.code, at.errCode, at.err)
		}
	}
	t.Logf("during the leader crash: %d requests, %d 200, %d 501 (between %s and %s), slowest answer %s",
		len(attempts), ok, failed, first501.Round(time.Millisecond), last501.Round(time.Millisecond), maxTook.Round(time.Millisecond))
	t.Logf("DNS during the crash: %d unanswered or wrong, slowest answer %s", len(dnsFails), dnsMax.Round(time.Microsecond))
	if len(dnsFails) > 0 {
		t.Errorf("DNS did not answer during the leader crash: %v", dnsFails)
	}
	// Writes resume once the two remaining members have elected a leader.
	if !slices.ContainsFunc(attempts, func(at attempt) bool { return at.code == 200 && at.at > max(killedAt, last501) }) {
		t.Error("no subscription succeeded after the leader crash")
	}

	// Every 200 is in etcd (/info with its token) and in both replicas' DNS.
	waitSameSerial(t, a, b)
	committed501 := 0
	for _, at := range attempts {
		if at.code != 200 {
			if m, err := dnstest.Exchange("udp", a.dns, at.name+".example.org.", dns.TypeA); err == nil && m.Rcode == dns.RcodeSuccess {
				committed501++
			}
			continue
		}
		for _, r := range replicas {
			var info struct{ Name string }
			code, body, err := apiGet(r.api, "/info", url.Values{"token": {at.token}}, "")
			if code != 200 || jsonInto(body, &info) != nil || info.Name != at.name {
				t.Errorf("%s got 200 on %s but /info on %s: %d %s %v", at.name, replicas[at.replica].name, r.name, code, errorCode(body), err)
			}
			if !answers(r.dns, at.name+".example.org.", dns.TypeA, at.caller) {
				t.Errorf("%s got 200 on %s but %s does not answer it", at.name, replicas[at.replica].name, r.name)
			}
		}
	}
	t.Logf("%d of the %d names that got 501 were written nonetheless", committed501, failed)

	// The crashed member rejoins from its data directory; the data is consistent.
	leader.start(t)
	waitUntil(t, 30*time.Second, "all 3 etcd members healthy again", func() bool { return healthy(cli, members) == 3 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := etcdstore.Open(ctx, etcdstore.Config{Endpoints: endpoints(members), Prefix: "/replicas/", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	problems, err := st.Check(ctx)
	if err != nil || len(problems) > 0 {
		t.Errorf("consistency check: %v\n%s", err, strings.Join(problems, "\n"))
	}

	// A restarted replica loads the zone and answers exactly as the other one.
	a.restart(t)
	waitSameSerial(t, a, b)
	t.Logf("after restarting A: both serve serial %d, %d names", soa(t, a), len(names))
	for _, w := range append(names, &written{name: "never-subscribed"}) {
		for _, q := range []struct {
			name  string
			qtype uint16
		}{{w.name + ".example.org.", dns.TypeA}, {"_acme-challenge." + w.name + ".example.org.", dns.TypeTXT}} {
			ma, erra := dnstest.Exchange("udp", a.dns, q.name, q.qtype)
			mb, errb := dnstest.Exchange("udp", b.dns, q.name, q.qtype)
			if erra != nil || errb != nil {
				t.Fatalf("%s: A %v, B %v", q.name, erra, errb)
			}
			if ma.Rcode != mb.Rcode || !slices.Equal(sortedRRs(ma.Answer), sortedRRs(mb.Answer)) || !slices.Equal(sortedRRs(ma.Ns), sortedRRs(mb.Ns)) {
				t.Errorf("%s %s: A %s %v, B %s %v", q.name, dns.TypeToString[q.qtype],
					dns.RcodeToString[ma.Rcode], ma.Answer, dns.RcodeToString[mb.Rcode], mb.Answer)
			}
		}
		if w.addr != "" && !answers(a.dns, w.name+".example.org.", dns.TypeA, w.addr) {
			t.Errorf("restarted A: %s is not %s", w.name, w.addr)
		}
		if len(w.challenges) > 0 && !answers(a.dns, "_acme-challenge."+w.name+".example.org.", dns.TypeTXT, w.challenges...) {
			t.Errorf("restarted A: challenge of %s is not %v", w.name, w.challenges)
		}
	}
}
