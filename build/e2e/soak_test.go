package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/regdns/regdns/etcdstore"
	"github.com/regdns/regdns/plugin/dnstest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// The soak test runs mixed API traffic and DNS queries against two ./coredns replicas sharing an
// etcd (in this process) while, on a schedule, etcd is stopped and started again and a replica
// is SIGKILLed and restarted. At the end every acknowledged write must be served by both
// replicas and the consistency check must find nothing; DNS must have answered every query to a
// replica that was up, and never without a name its view already held.
// REGDNS_SOAK sets the duration (a Go duration; default 40s).

// Phases of the schedule, for counting what happened during the faults.
const (
	phaseSteady = iota
	phaseEtcdDown
	phaseEtcdBack // from etcd's start until both replicas serve writes and see each other's
	phaseReplicaDown
	phases
)

var phaseNames = [phases]string{"steady", "etcd down", "etcd back, catching up", "a replica down"}

const (
	soakEtcdDown = 4 * time.Second
	// soakRecovery bounds how long after etcd's return a replica may take to serve writes, and
	// its DNS to answer a name written through the other replica.
	soakRecovery = 60 * time.Second
)

// soakEtcd is the etcd the replicas share, stopped and started on the same data and ports.
type soakEtcd struct {
	cfg etcdstore.EmbeddedConfig
	mu  sync.Mutex
	e   *etcdstore.Embedded
}

func (s *soakEtcd) start(t *testing.T) {
	t.Helper()
	e, err := etcdstore.StartEmbedded(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.e = e
	s.mu.Unlock()
}

func (s *soakEtcd) stop() {
	s.mu.Lock()
	e := s.e
	s.e = nil
	s.mu.Unlock()
	if e != nil {
		e.Close()
	}
}

// soakReplica is one ./coredns; gen changes whenever it goes down or up, so that a query or
// call that overlapped a deliberate kill or restart is told apart.
type soakReplica struct {
	dir, corefile, dnsAddr, apiAddr, api string
	mu                                   sync.Mutex
	p                                    *product
	logs                                 []*syncBuffer // of every process it ran
	up                                   bool
	gen                                  uint64
}

func (r *soakReplica) start(t *testing.T) {
	t.Helper()
	p := startServing(t, r.dir, r.corefile, r.dnsAddr, r.apiAddr)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.p, r.up = p, true
	r.logs = append(r.logs, p.log)
	r.gen++
}

func (r *soakReplica) kill() {
	r.mu.Lock()
	r.up = false
	r.gen++
	p := r.p
	r.mu.Unlock()
	killHard(p)
}

func (r *soakReplica) state() (bool, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.up, r.gen
}

// live runs fn and reports whether r was up, without a kill or restart, all along.
func (r *soakReplica) live(fn func()) bool {
	up, gen := r.state()
	fn()
	up2, gen2 := r.state()
	return up && up2 && gen == gen2
}

// soakWrite is one write call: its value and whether it was acknowledged (200). A write that
// was not may or may not have happened (etcd stopped or the replica died under it).
type soakWrite struct {
	value string
	acked bool
}

// soakName is an acknowledged name, with every write made to it in order (each name is written
// by one goroutine).
type soakName struct {
	name, token string
	rev         atomic.Int64 // etcd revision that created it; 0 until known, -1 if never asked for
	gone        atomic.Bool  // an unsubscribe was sent: no longer asked for
	challenges  []soakWrite
	pings       []soakWrite
	unsub       string // "", "acked", or "unknown" (sent, not acknowledged)
}

// soakPool holds the acknowledged names, in order, for the DNS loops and the final check.
type soakPool struct {
	mu    sync.Mutex
	names []*soakName
}

func (p *soakPool) add(n *soakName) {
	p.mu.Lock()
	p.names = append(p.names, n)
	p.mu.Unlock()
}

func (p *soakPool) all() []*soakName {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.names)
}

// pick returns a random name whose creation revision is known and that no unsubscribe touched.
func (p *soakPool) pick(rng *rand.Rand) *soakName {
	p.mu.Lock()
	names := p.names
	p.mu.Unlock()
	for range 5 {
		if len(names) == 0 {
			return nil
		}
		if n := names[rng.IntN(len(names))]; n.rev.Load() > 0 && !n.gone.Load() {
			return n
		}
	}
	return nil
}

// fillRevisions reads from etcd the revision that created each name of the pool, which tells
// whether a replica's view (its SOA serial) already holds it. A fresh client after each error
// reconnects at once when etcd is back.
func (p *soakPool) fillRevisions(endpoint string, stop <-chan struct{}) {
	var cli *clientv3.Client
	defer func() {
		if cli != nil {
			cli.Close()
		}
	}()
	done := 0 // names before this one are filled
	for {
		select {
		case <-stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
		var err error
		if cli == nil {
			if cli, err = clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: time.Second, Logger: zap.NewNop()}); err != nil {
				cli = nil
				continue
			}
		}
		names := p.all()
		for ; done < len(names) && err == nil; done++ {
			n := names[done]
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			var resp *clientv3.GetResponse
			resp, err = cli.Get(ctx, etcdstore.DefaultPrefix+"names/"+n.name)
			cancel()
			switch {
			case err != nil:
				cli.Close()
				cli = nil
				done-- // again next time
			case len(resp.Kvs) == 1:
				n.rev.Store(resp.Kvs[0].CreateRevision)
			default:
				n.rev.Store(-1) // already unsubscribed
			}
		}
	}
}

// soakStats counts what the load saw.
type soakStats struct {
	mu         sync.Mutex
	dnsSent    [phases]int
	dnsAnswer  [phases]int
	dnsStale   [phases]int // NXDOMAIN from a view that had not reached the name's revision yet
	dnsWrong   [phases]int // any other wrong answer
	downSent   int         // DNS queries that overlapped a deliberate kill or restart of their replica
	downAnswer int
	api        [phases]map[string]int
	apiDown    map[string]int
	writes     map[string]int // acknowledged writes by endpoint
	problems   []string       // unexpected results (the first 20)
	problemN   int
}

func (s *soakStats) problem(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.problemN++
	if len(s.problems) < 20 {
		s.problems = append(s.problems, fmt.Sprintf(format, args...))
	}
}

func TestSoak(t *testing.T) {
	duration := 40 * time.Second
	if v := os.Getenv("REGDNS_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("REGDNS_SOAK=%q: %v", v, err)
		}
		duration = d
	}
	dir := t.TempDir()
	addrs := dnstest.FreeAddrs(t, 6)
	etcd := &soakEtcd{cfg: etcdstore.EmbeddedConfig{Dir: filepath.Join(dir, "etcd"),
		ClientURL: "http://" + addrs[0], PeerURL: "http://" + addrs[1], Fast: true}}
	etcd.start(t)
	t.Cleanup(etcd.stop)
	var replicas []*soakReplica
	for i := range 2 {
		dnsAddr, apiAddr := addrs[2+2*i], addrs[3+2*i]
		_, dnsPort, _ := net.SplitHostPort(dnsAddr)
		r := &soakReplica{dir: filepath.Join(dir, fmt.Sprintf("replica%d", i)), dnsAddr: dnsAddr, apiAddr: apiAddr, api: "http://" + apiAddr,
			corefile: zoneBlock(dnsPort, "", fmt.Sprintf(`        api %s
        etcd %s
        etcd_timeout 1s
        client_limit off
        write_limit off
        allow_private_addresses
        tunnel %s`, apiAddr, etcd.cfg.ClientURL, faultTunnel))}
		if err := os.MkdirAll(r.dir, 0o700); err != nil {
			t.Fatal(err)
		}
		r.start(t)
		replicas = append(replicas, r)
	}

	began := time.Now()
	at := func() string { return fmt.Sprintf("%.1fs", time.Since(began).Seconds()) }
	var phase atomic.Int32
	stats := &soakStats{apiDown: map[string]int{}, writes: map[string]int{}}
	for i := range stats.api {
		stats.api[i] = map[string]int{}
	}
	pool := &soakPool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// Registered after the replicas' first cleanups, so it runs before them: the load stops first.
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	})
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	wg.Go(func() { pool.fillRevisions(etcd.cfg.ClientURL, stop) })

	// Gateways: subscribe, dnsconfig, ping, info and unsubscribe, each call to either replica,
	// about 25 calls/s each while etcd answers.
	// No keep-alive: Go's transport sends a GET again, on a new connection, when a reused one
	// breaks before the answer, so a call the killed replica had applied could come back as
	// "connection refused" from the retry and be taken for one never sent (a CI run saw a
	// challenge served that the test believed refused). A new connection per call is refused
	// only when nothing was sent.
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for g := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			var mine []*soakName
			// call makes one API call; refused reports a connection that was never made, so
			// nothing was sent.
			call := func(path string, params url.Values) (code int, body string, refused bool) {
				r := replicas[rng.IntN(len(replicas))]
				ph := phase.Load()
				var err error
				live := r.live(func() { code, body, err = faultCall(client, r.api, path, params, nil) })
				key := fmt.Sprint(code)
				switch {
				case err != nil:
					key = "connection error"
				case code == 400:
					key = "400 " + errorCode(body)
				}
				stats.mu.Lock()
				if live {
					stats.api[ph][key]++
				} else {
					stats.apiDown[key]++
				}
				if code == 200 && path != "/info" {
					stats.writes[path]++
				}
				stats.mu.Unlock()
				// Every call is about a name in a known state: a 400 would mean a lost write.
				if code == 400 || code == 429 || (code >= 500 && code != 501 && code != 503) || (err != nil && live) {
					stats.problem("%s %s (%s, replica up): %s %v", at(), path, phaseNames[ph], key, err)
				}
				return code, body, errors.Is(err, syscall.ECONNREFUSED)
			}
			for i := 0; !stopped(); i++ {
				time.Sleep(40 * time.Millisecond)
				live := slices.DeleteFunc(slices.Clone(mine), func(n *soakName) bool { return n.unsub != "" })
				if len(live) < 3 || rng.Float64() < 0.2 {
					n := &soakName{name: fmt.Sprintf("s%d-%d", g, i)}
					code, body, _ := call("/subscribe", url.Values{"name": {n.name}})
					var sub struct{ Token string }
					if code == 200 && jsonInto(body, &sub) == nil && sub.Token != "" {
						n.token = sub.Token
						mine = append(mine, n)
						pool.add(n)
					}
					// Otherwise the name may or may not exist: it is not used again.
					continue
				}
				n := live[rng.IntN(len(live))]
				tok := url.Values{"token": {n.token}}
				switch x := rng.Float64(); {
				case x < 0.35:
					v := fmt.Sprintf("c-%s-%d", n.name, i)
					code, _, refused := call("/dnsconfig", url.Values{"token": tok["token"], "challenge": {v}})
					if !refused {
						n.challenges = append(n.challenges, soakWrite{v, code == 200})
					}
				case x < 0.65:
					v := fmt.Sprintf("10.%d.%d.%d", g, i>>8&255, i&255)
					code, _, refused := call("/ping", url.Values{"token": tok["token"], "ip": {v}})
					if !refused {
						n.pings = append(n.pings, soakWrite{v, code == 200})
					}
				case x < 0.92:
					code, body, _ := call("/info", tok)
					var info struct{ Name string }
					if code == 200 && (jsonInto(body, &info) != nil || info.Name != n.name) {
						stats.problem("%s /info of %s: another record", at(), n.name)
					}
				default:
					n.gone.Store(true) // before the call: the DNS loops stop asking for it
					code, _, refused := call("/unsubscribe", tok)
					switch {
					case code == 200:
						n.unsub = "acked"
					case !refused:
						n.unsub = "unknown"
					default:
						n.gone.Store(false)
					}
				}
			}
		})
	}

	// DNS: 2 loops per replica, each 62 times a second the zone's SOA and then the A of a
	// registered name (or the SOA alone while there is none): about 500 queries/s in all. The
	// SOA serial is the revision of the replica's view, so it tells whether the view already
	// held the name when its A was asked.
	for i := range 4 {
		r := replicas[i%2]
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 2))
			tick := time.NewTicker(16 * time.Millisecond)
			defer tick.Stop()
			for !stopped() {
				<-tick.C
				n := pool.pick(rng)
				ph := phase.Load()
				var soa, a *dns.Msg
				var soaErr, aErr error
				live := r.live(func() {
					soa, soaErr = dnstest.Exchange("udp", r.dnsAddr, "example.org.", dns.TypeSOA)
					if n != nil {
						a, aErr = dnstest.Exchange("udp", r.dnsAddr, n.name+".example.org.", dns.TypeA)
					}
				})
				sent, answered := 1, 0
				if soaErr == nil {
					answered++
				}
				if n != nil {
					sent++
					if aErr == nil {
						answered++
					}
				}
				verdict := ""
				switch {
				case soaErr != nil || aErr != nil:
					verdict = fmt.Sprintf("no answer: %v %v", soaErr, aErr)
				case soa.Rcode != dns.RcodeSuccess || len(soa.Answer) != 1:
					verdict = "wrong SOA: " + dns.RcodeToString[soa.Rcode]
				case n == nil || n.gone.Load() || slices.Equal(rdata(a, dns.TypeA), []string{faultTunnel}):
				case a.Rcode == dns.RcodeNameError && int64(soa.Answer[0].(*dns.SOA).Serial) < n.rev.Load():
					verdict = "stale"
				default:
					verdict = fmt.Sprintf("wrong A: %s %v (view serial %d, name created at %d)",
						dns.RcodeToString[a.Rcode], a.Answer, soa.Answer[0].(*dns.SOA).Serial, n.rev.Load())
				}
				stats.mu.Lock()
				switch {
				case !live:
					stats.downSent += sent
					stats.downAnswer += answered
				case verdict == "stale":
					stats.dnsStale[ph]++
				case verdict != "" && answered == sent:
					stats.dnsWrong[ph]++
				}
				if live {
					stats.dnsSent[ph] += sent
					stats.dnsAnswer[ph] += answered
				}
				stats.mu.Unlock()
				if live && verdict != "" && verdict != "stale" {
					stats.problem("%s DNS to replica %d (%s): %s", at(), i%2, phaseNames[ph], verdict)
				}
			}
		})
	}

	// measureRecovery measures, after etcd's return, how long replica via takes to acknowledge a
	// subscribe and then the other replica's DNS to answer that name.
	measureRecovery := func(outage, via int, back time.Time) (api, dnsToo time.Duration, err error) {
		r, other := replicas[via], replicas[1-via]
		deadline := back.Add(soakRecovery)
		var n *soakName
		for attempt := 0; n == nil; attempt++ {
			if time.Now().After(deadline) {
				return 0, 0, fmt.Errorf("replica %d acknowledged no subscribe within %s of etcd's return", via, soakRecovery)
			}
			// A new name each time: an attempt that failed may still have created its name.
			name := fmt.Sprintf("probe%d-%d-%d", outage, via, attempt)
			code, body, _ := faultCall(client, r.api, "/subscribe", url.Values{"name": {name}}, nil)
			var sub struct{ Token string }
			if code == 200 && jsonInto(body, &sub) == nil && sub.Token != "" {
				n = &soakName{name: name, token: sub.Token}
				pool.add(n)
			} else {
				time.Sleep(100 * time.Millisecond)
			}
		}
		api = time.Since(back)
		for {
			m, err := dnstest.Exchange("udp", other.dnsAddr, n.name+".example.org.", dns.TypeA)
			if err == nil && slices.Equal(rdata(m, dns.TypeA), []string{faultTunnel}) {
				return api, time.Since(back), nil
			}
			if time.Now().After(deadline) {
				return api, 0, fmt.Errorf("replica %d's DNS did not answer a name written through replica %d within %s of etcd's return", 1-via, via, soakRecovery)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// The faults, one at a time.
	end := began.Add(duration)
	var kills, checks, dangling int
	var timeline, recoveries []string
	var closeTook []time.Duration
	check := func(when string) {
		problems := storeProblems(t, etcd.cfg.ClientURL)
		checks++
		dangling += len(problems)
		if len(problems) > 0 {
			t.Errorf("consistency check %s: %d problems:\n%s", when, len(problems), strings.Join(problems, "\n"))
		}
	}
	// Each round has both faults; the duration is checked between rounds, so the soak may
	// overrun it by up to one round (about 20 s).
	for outage := 0; outage == 0 || time.Now().Before(end); outage++ {
		time.Sleep(3 * time.Second)
		// etcd stops: its Close waits for the replicas' watch streams (about 5 s, while etcd
		// still answers some requests), then it stays down for soakEtcdDown.
		phase.Store(phaseEtcdDown)
		timeline = append(timeline, at()+" etcd stopping")
		t0 := time.Now()
		etcd.stop()
		closeTook = append(closeTook, time.Since(t0).Round(100*time.Millisecond))
		time.Sleep(soakEtcdDown)
		etcd.start(t)
		back := time.Now()
		timeline = append(timeline, at()+" etcd started")
		phase.Store(phaseEtcdBack)
		var rwg sync.WaitGroup
		for via := range replicas {
			rwg.Go(func() {
				api, dnsToo, err := measureRecovery(outage, via, back)
				if err != nil {
					stats.problem("%s after etcd outage %d: %v", at(), outage+1, err)
					return
				}
				stats.mu.Lock()
				recoveries = append(recoveries, fmt.Sprintf("outage %d: replica %d writes after %s, replica %d answers them after %s",
					outage+1, via, api.Round(10*time.Millisecond), 1-via, dnsToo.Round(10*time.Millisecond)))
				stats.mu.Unlock()
			})
		}
		rwg.Wait()
		phase.Store(phaseSteady)
		check(fmt.Sprintf("after etcd outage %d", outage+1))
		time.Sleep(3 * time.Second)
		r := replicas[outage%2]
		phase.Store(phaseReplicaDown)
		timeline = append(timeline, fmt.Sprintf("%s replica %d killed", at(), outage%2))
		r.kill()
		// Keep-alive connections to the dead process are gone; a call must not try them.
		client.CloseIdleConnections()
		kills++
		time.Sleep(time.Second)
		r.start(t)
		timeline = append(timeline, fmt.Sprintf("%s replica %d serving again", at(), outage%2))
		phase.Store(phaseSteady)
	}
	close(stop)
	wg.Wait()
	ran := time.Since(began)
	check("at the end")

	// Every acknowledged write, through both replicas; a replica's watch may still be catching
	// up, so failures are checked again for a while before they count as lost.
	all := pool.all()
	pending := all
	var failures []string
	var checked, unknown, passes int
	deadline := time.Now().Add(30 * time.Second)
	for len(pending) > 0 && (passes == 0 || time.Now().Before(deadline)) {
		if passes > 0 {
			time.Sleep(2 * time.Second)
		}
		var mu sync.Mutex
		var next []*soakName
		failures = nil
		work := make(chan *soakName)
		var vg sync.WaitGroup
		for range 8 {
			vg.Go(func() {
				for n := range work {
					f, c, u := verifySoakName(n, replicas)
					mu.Lock()
					if passes == 0 {
						checked, unknown = checked+c, unknown+u
					}
					if len(f) > 0 {
						next = append(next, n)
						failures = append(failures, f...)
					}
					mu.Unlock()
				}
			})
		}
		for _, n := range pending {
			work <- n
		}
		close(work)
		vg.Wait()
		pending = next
		passes++
	}
	lost := len(failures)
	slices.Sort(failures)

	// The report.
	stats.mu.Lock()
	defer stats.mu.Unlock()
	acked := len(all) - stats.writes["/subscribe"] // the probes
	for _, n := range stats.writes {
		acked += n
	}
	t.Logf("soak of %s (REGDNS_SOAK %s): %d etcd outages (%s stopped after a Close that took %v), %d replica kills",
		ran.Round(time.Second), duration, len(closeTook), soakEtcdDown, closeTook, kills)
	t.Logf("timeline: %s", strings.Join(timeline, "; "))
	t.Logf("recovery after etcd's return:\n  %s", strings.Join(recoveries, "\n  "))
	t.Logf("acknowledged writes: %d (subscribe %d + %d recovery probes, dnsconfig %d, ping %d, unsubscribe %d); "+
		"%d checks of their effects through both replicas, %d names of unknown outcome skipped; lost: %d (after %d passes)",
		acked, stats.writes["/subscribe"], len(all)-stats.writes["/subscribe"], stats.writes["/dnsconfig"], stats.writes["/ping"],
		stats.writes["/unsubscribe"], checked, unknown, lost, passes)
	t.Logf("consistency checks: %d, dangling keys: %d", checks, dangling)
	t.Logf("%-32s %8s %8s %8s %6s %6s", "DNS queries to replicas up", "sent", "answered", "%", "stale", "wrong")
	var sent, answered, stale, wrong, fsent, fanswered, fstale, fwrong int
	for ph := range phases {
		t.Logf("  %-30s %8d %8d %8s %6d %6d", phaseNames[ph], stats.dnsSent[ph], stats.dnsAnswer[ph], percent(stats.dnsAnswer[ph], stats.dnsSent[ph]), stats.dnsStale[ph], stats.dnsWrong[ph])
		sent, answered, stale, wrong = sent+stats.dnsSent[ph], answered+stats.dnsAnswer[ph], stale+stats.dnsStale[ph], wrong+stats.dnsWrong[ph]
		if ph != phaseSteady {
			fsent, fanswered, fstale, fwrong = fsent+stats.dnsSent[ph], fanswered+stats.dnsAnswer[ph], fstale+stats.dnsStale[ph], fwrong+stats.dnsWrong[ph]
		}
	}
	t.Logf("  %-30s %8d %8d %8s %6d %6d", "during faults", fsent, fanswered, percent(fanswered, fsent), fstale, fwrong)
	t.Logf("  %-30s %8d %8d %8s %6d %6d", "total", sent, answered, percent(answered, sent), stale, wrong)
	t.Logf("  (stale: NXDOMAIN for a name created after the revision the replica's view had reached)")
	t.Logf("DNS queries overlapping a replica's kill or restart (not counted above): %d sent, %d answered", stats.downSent, stats.downAnswer)
	t.Logf("API status mix of calls to replicas up:")
	for ph := range phases {
		t.Logf("  %-30s %s", phaseNames[ph], statusMix(stats.api[ph]))
	}
	t.Logf("  %-30s %s", "overlapping a kill or restart", statusMix(stats.apiDown))
	// The causes the replicas logged for their 501s (errors name the endpoint, never a token).
	causes := map[string]int{}
	for _, r := range replicas {
		for _, l := range r.logs {
			for line := range strings.Lines(l.String()) {
				if _, cause, ok := strings.Cut(strings.TrimSpace(line), "[ERROR] plugin/registry: "); ok {
					causes[cause]++
				}
			}
		}
	}
	t.Logf("errors the replicas logged: %s", statusMix(causes))

	if lost > 0 {
		t.Errorf("%d acknowledged writes lost:\n%s", lost, strings.Join(failures[:min(len(failures), 30)], "\n"))
	}
	if answered != sent || wrong > 0 {
		t.Errorf("DNS to replicas up: %d of %d answered, %d wrong", answered, sent, wrong)
	}
	if stats.problemN > 0 {
		t.Errorf("%d unexpected results, the first:\n%s", stats.problemN, strings.Join(stats.problems, "\n"))
	}
	if acked == 0 || sent == 0 || kills == 0 {
		t.Errorf("no soak: %d acknowledged writes, %d queries, %d kills", acked, sent, kills)
	}
}

// verifySoakName checks the effects of n's acknowledged writes through both replicas' API and
// DNS. It returns one line per lost write (naming no token), how many checks it made, and 1 if
// n's outcome is unknown (its unsubscribe was sent but not acknowledged).
func verifySoakName(n *soakName, replicas []*soakReplica) (lost []string, checks, unknown int) {
	if n.unsub == "unknown" {
		return nil, 0, 1
	}
	client := &http.Client{Timeout: 20 * time.Second}
	fqdn := n.name + ".example.org."
	for i, r := range replicas {
		code, body, err := faultCall(client, r.api, "/info", url.Values{"token": {n.token}}, nil)
		if err != nil {
			return []string{fmt.Sprintf("%s on replica %d: /info: %v", n.name, i, err)}, checks, 0
		}
		a, aerr := dnstest.Exchange("udp", r.dnsAddr, fqdn, dns.TypeA)
		txt, terr := dnstest.Exchange("udp", r.dnsAddr, "_acme-challenge."+fqdn, dns.TypeTXT)
		if aerr != nil || terr != nil {
			return []string{fmt.Sprintf("%s on replica %d: DNS: %v %v", n.name, i, aerr, terr)}, checks, 0
		}
		checks++
		if n.unsub == "acked" {
			if code != 400 || errorCode(body) != "InvalidToken" || a.Rcode != dns.RcodeNameError {
				lost = append(lost, fmt.Sprintf("%s on replica %d: unsubscribed, yet /info %d, DNS %s", n.name, i, code, dns.RcodeToString[a.Rcode]))
			}
			continue
		}
		var info struct {
			Name       string
			IP         string
			Challenges []string `json:"dns_challenges"`
		}
		if code != 200 || jsonInto(body, &info) != nil || info.Name != n.name {
			lost = append(lost, fmt.Sprintf("%s on replica %d: subscribed, yet /info %d %s", n.name, i, code, errorCode(body)))
			continue
		}
		if got := rdata(a, dns.TypeA); !slices.Equal(got, []string{faultTunnel}) {
			lost = append(lost, fmt.Sprintf("%s on replica %d: subscribed, yet A %s %v", n.name, i, dns.RcodeToString[a.Rcode], got))
		}
		served := txtValues(txt.Answer)
		slices.Sort(info.Challenges)
		if !slices.Equal(served, info.Challenges) {
			lost = append(lost, fmt.Sprintf("%s on replica %d: DNS serves challenges %v, /info has %v", n.name, i, served, info.Challenges))
		}
		for _, v := range served {
			if !slices.ContainsFunc(n.challenges, func(w soakWrite) bool { return w.value == v }) {
				lost = append(lost, fmt.Sprintf("%s on replica %d: serves challenge %s that was never sent", n.name, i, v))
			}
		}
		// The last acknowledged challenge is served unless two later calls, not acknowledged,
		// may have pushed it out (two are kept).
		if last, later := lastAcked(n.challenges); last != "" && len(later) < 2 {
			checks++
			if !slices.Contains(served, last) {
				lost = append(lost, fmt.Sprintf("%s on replica %d: acknowledged challenge %s not served (%v)", n.name, i, last, served))
			}
		}
		// The address is the last acknowledged ping's, or that of a later one not acknowledged.
		if last, later := lastAcked(n.pings); last != "" {
			checks++
			if info.IP != last && !slices.Contains(later, info.IP) {
				lost = append(lost, fmt.Sprintf("%s on replica %d: address %s, the acknowledged ping set %s", n.name, i, info.IP, last))
			}
		}
	}
	return lost, checks, 0
}

// lastAcked returns the value of the last acknowledged write and the values sent after it.
func lastAcked(ws []soakWrite) (string, []string) {
	for i := len(ws) - 1; i >= 0; i-- {
		if ws[i].acked {
			var later []string
			for _, w := range ws[i+1:] {
				later = append(later, w.value)
			}
			return ws[i].value, later
		}
	}
	return "", nil
}

func percent(n, of int) string {
	if of == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", 100*float64(n)/float64(of))
}

// statusMix renders status counts in a stable order.
func statusMix(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s: %d", k, v))
	}
	slices.Sort(parts)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
