package api

import (
	"bytes"
	"context"
	"fmt"
	golog "log"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regdns/regdns/etcdstore"
	"github.com/regdns/regdns/etcdstore/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

// TestWriteLimit spends a name's write budget over the four endpoints that share it: beyond
// it, they answer 429 and change nothing, while pings that need no write, other names and
// reads go on.
func TestWriteLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.WriteLimit = RateLimit{Rate: 1.0 / 3600, Burst: 4} })
	token, other := e.subscribe(t, "demo"), e.subscribe(t, "other")
	e.ok(t, "/dnsconfig", "token", token, "challenge", "first")
	e.ok(t, "/setemail", "token", token, "email", "owner@example.org")
	e.ok(t, "/revokeemail", "token", token)
	e.ok(t, "/ping", "token", token, "ip", "198.51.99.7")

	before, rev := e.stored(t, "demo"), e.store.View().Revision()
	for _, call := range [][]string{
		{"/dnsconfig", "token", token, "challenge", "second"},
		{"/setemail", "token", token, "email", "owner@example.org"},
		{"/revokeemail", "token", token},
		{"/ping", "token", token, "ip", "198.51.99.8"},
	} {
		r := e.get(t, call[0], call[1:]...)
		limited(t, r, 3000, 3600)
		if !strings.Contains(r.body, "changing this name") {
			t.Errorf("%s: message %s does not say whose limit it is", call[0], r.body)
		}
	}
	if d := e.stored(t, "demo"); d.Challenges[0].Value != "first" || d.IPv4 != before.IPv4 || d.Email != before.Email || d.EmailVerified() != before.EmailVerified() || pendingVerification(d) != pendingVerification(before) || !d.LastPing.Equal(before.LastPing) {
		t.Errorf("refused changes were stored: %+v", d)
	}
	if n := len(e.smtp.Messages()); n != 1 {
		t.Errorf("%d mails sent, want only the first setemail's", n)
	}
	// A ping from the recorded address writes nothing, so the limit does not concern it.
	e.ok(t, "/ping", "token", token, "ip", "198.51.99.7")
	e.ok(t, "/info", "token", token)
	if got := e.store.View().Revision(); got != rev {
		t.Errorf("etcd revision moved from %d to %d while the name was limited", rev, got)
	}
	e.ok(t, "/dnsconfig", "token", other, "challenge", "unaffected")
}

// TestWriteLimitDefault changes one name as fast as it can: the default allows the ten
// changes a gateway makes when it sets up, then one a minute.
func TestWriteLimitDefault(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.WriteLimit = RateLimit{} })
	token := e.subscribe(t, "demo")
	allowed := 0
	for {
		r := e.get(t, "/dnsconfig", "token", token, "challenge", fmt.Sprint("c", allowed))
		if r.status == http.StatusTooManyRequests {
			limited(t, r, 1, 60)
			break
		}
		if r.status != http.StatusOK {
			t.Fatalf("dnsconfig %d: %d %s", allowed, r.status, r.body)
		}
		if allowed++; allowed > 100 {
			t.Fatal("no change limited")
		}
	}
	if allowed != 10 {
		t.Errorf("%d changes allowed before the first 429, want 10", allowed)
	}
}

// allOK makes n requests at once, the i-th to path on urls[i%len(urls)] with query(i), and
// fails the test unless every one answers 200.
func allOK(t *testing.T, urls []string, n int, path string, query func(i int) url.Values) {
	t.Helper()
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			u := urls[i%len(urls)] + path + "?" + query(i).Encode()
			<-start
			r, err := request(http.MethodGet, nil, u)
			if err != nil {
				t.Error(err)
			} else if r.status != http.StatusOK {
				t.Errorf("request %d: %d %s", i, r.status, r.body)
			}
		})
	}
	close(start)
	wg.Wait()
}

// TestConcurrentDNSConfig sets 64 challenges of one name at once, through one replica and
// through two sharing etcd: every request succeeds and the record keeps the newest values.
func TestConcurrentDNSConfig(t *testing.T) {
	for _, tt := range []struct {
		name     string
		replicas int
		keep     int
	}{
		{"one replica keeps all", 1, 64},
		{"one replica keeps two", 1, 2},
		{"two replicas keep all", 2, 64},
	} {
		t.Run(tt.name, func(t *testing.T) {
			prefix := fmt.Sprintf("/api-test/%d/", prefixes.Add(1))
			var urls []string
			var envs []*env
			for range tt.replicas {
				e := newEnvOn(t, openStoreAt(t, testEtcd, prefix), func(c *Config) { c.ChallengeKeep = tt.keep })
				urls, envs = append(urls, e.url), append(envs, e)
			}
			token := envs[0].subscribe(t, "demo")
			for _, e := range envs {
				eventually(t, "every replica sees the name", func() bool { _, ok := e.store.LookupToken(token); return ok })
			}
			const n = 64
			allOK(t, urls, n, "/dnsconfig", func(i int) url.Values {
				return url.Values{"token": {token}, "challenge": {fmt.Sprint("c", i)}}
			})

			d := envs[0].stored(t, "demo")
			var got []string
			for _, c := range d.Challenges {
				got = append(got, c.Value)
			}
			// Values kept are distinct ones sent, all of them if the name keeps that many.
			var sent []string
			for i := range n {
				sent = append(sent, fmt.Sprint("c", i))
			}
			slices.Sort(sent)
			kept := slices.Sorted(slices.Values(got))
			if len(slices.Compact(slices.Clone(kept))) != min(n, tt.keep) || !isSubset(kept, sent) {
				t.Fatalf("stored %v, want %d distinct values of those sent", got, min(n, tt.keep))
			}
			for i, e := range envs {
				eventually(t, fmt.Sprintf("replica %d serves the stored values", i), func() bool {
					v, ok := e.store.View().Lookup("demo")
					return ok && slices.Equal(v.LiveChallenges(time.Now(), 0), got)
				})
			}
		})
	}
}

// isSubset reports whether every element of sorted a is in sorted b.
func isSubset(a, b []string) bool {
	for _, v := range a {
		if _, ok := slices.BinarySearch(b, v); !ok {
			return false
		}
	}
	return true
}

// eventually polls cond every 10ms for up to 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: %s", what)
		}
	}
}

func TestRepeatLog(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	l := newRepeatLog(100*time.Millisecond, func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(format, args...))
	})
	logged := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(lines)
	}
	for range 1000 {
		l.print("/dnsconfig: etcd is down")
	}
	l.print("/ping: etcd is down")
	if got := logged(); !slices.Equal(got, []string{"/dnsconfig: etcd is down", "/ping: etcd is down"}) {
		t.Errorf("logged at once: %q", got)
	}
	eventually(t, "the repeats are told", func() bool { return len(logged()) == 3 })
	if got := logged()[2]; got != "/dnsconfig: etcd is down (999 more times in 100ms)" {
		t.Errorf("summary %q", got)
	}
	l.print("/dnsconfig: etcd is down")
	if got := logged(); len(got) != 4 {
		t.Errorf("the line was not logged again after its window: %q", got)
	}

	// Distinct lines beyond maxRepeatLines are counted together.
	time.Sleep(150 * time.Millisecond)
	before := len(logged())
	for i := range maxRepeatLines + 500 {
		l.print(fmt.Sprint("error ", i))
	}
	if got := len(logged()) - before; got != maxRepeatLines {
		t.Errorf("%d distinct lines logged at once, want %d", got, maxRepeatLines)
	}
	eventually(t, "the lines not logged are counted", func() bool {
		return slices.Contains(logged(), "500 more errors in 100ms, not logged")
	})
}

// TestStoreDownLogsOnce fails many requests the same way at once: the log gets one line.
func TestStoreDownLogsOnce(t *testing.T) {
	etcd, stopEtcd := etcdtest.StartStoppable(t)
	e := newEnvOn(t, openStore(t, etcd), nil)
	const n = 20
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = e.subscribe(t, fmt.Sprint("gw", i))
	}
	var logs bytes.Buffer
	golog.SetOutput(&logs)
	defer golog.SetOutput(os.Stderr)
	stopEtcd()

	var wg sync.WaitGroup
	for _, token := range tokens {
		wg.Go(func() {
			r, err := request(http.MethodGet, nil, e.url+"/dnsconfig?challenge=x&token="+token)
			if err != nil || r.status != http.StatusNotImplemented {
				t.Errorf("dnsconfig with etcd down: %v %d %s", err, r.status, r.body)
			}
		})
	}
	wg.Wait()
	golog.SetOutput(os.Stderr)
	var errorLines []string
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "[ERROR]") {
			errorLines = append(errorLines, line)
		}
	}
	if len(errorLines) != 1 {
		t.Errorf("%d error lines for %d identical failures, want 1:\n%s", len(errorLines), n, strings.Join(errorLines, ""))
	}
}

// history is what etcd's history holds of the writes under a prefix between two revisions.
type history struct {
	writes  map[string]int // by key
	bytes   int            // stored per revision: its 17-byte key and the encoded key-value
	records int            // writes of records (names/...)
}

// historyOf reads every write under prefix after rev from up to rev to.
func historyOf(t *testing.T, cli *clientv3.Client, prefix string, from, to int64) history {
	t.Helper()
	h := history{writes: map[string]int{}}
	if to <= from {
		return h
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for resp := range cli.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(from+1)) {
		if err := resp.Err(); err != nil {
			t.Fatal(err)
		}
		for _, ev := range resp.Events {
			if ev.Kv.ModRevision > to {
				return h
			}
			key := string(ev.Kv.Key)
			h.writes[key]++
			h.bytes += 17 + proto.Size(ev.Kv)
			if strings.HasPrefix(key, prefix+"names/") {
				h.records++
			}
			if ev.Kv.ModRevision == to {
				return h
			}
		}
	}
	t.Fatal("watch ended early")
	return h
}

// setUpGateway gives a name what a gateway in the field has: a verified email and the two
// ACME challenges of a certificate for name and *.name.
func setUpGateway(t *testing.T, e *env, name string) string {
	t.Helper()
	token := e.subscribe(t, name)
	for _, c := range []string{"Xq3-b_KPv0Jt2nqF5uYjLx8m1w4cQ6rZ9sAeHdG7iTo", "Yq3-b_KPv0Jt2nqF5uYjLx8m1w4cQ6rZ9sAeHdG7iTo"} {
		e.ok(t, "/dnsconfig", "token", token, "challenge", c)
	}
	if _, err := e.store.Update(t.Context(), etcdstore.ByName(name), func(d *etcdstore.Record) error {
		d.Email = "owner-of-" + name + "@example.org"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return token
}

// TestPingDay compresses a day of hourly pings from many gateways at the default
// ping_granularity into seconds (an hour lasts dayScale's fraction of it, and so does the
// granularity): each gateway costs etcd at most a write per granularity, and the last ping
// is known to within it.
func TestPingDay(t *testing.T) {
	const (
		gateways = 40
		dayScale = 14400 // an hour lasts 250ms
		hour     = time.Hour / dayScale
	)
	granularity := DefaultPingGranularity / dayScale
	prefix := fmt.Sprintf("/api-test/%d/", prefixes.Add(1))
	e := newEnvOn(t, openStoreAt(t, testEtcd, prefix), func(c *Config) { c.PingGranularity = granularity })
	tokens := make([]string, gateways)
	for i := range tokens {
		tokens[i] = setUpGateway(t, e, fmt.Sprint("gw", i))
	}
	from := e.store.View().Revision()
	start := time.Now()
	lastPing := make([]time.Time, gateways)
	var wg sync.WaitGroup
	for g, token := range tokens {
		wg.Go(func() {
			for h := 1; h <= 24; h++ {
				time.Sleep(time.Until(start.Add(time.Duration(h) * hour)))
				lastPing[g] = time.Now()
				r, err := request(http.MethodGet, nil, e.url+"/ping?token="+token)
				if err != nil || r.status != http.StatusOK {
					t.Errorf("gateway %d, hour %d: %v %d %s", g, h, err, r.status, r.body)
					return
				}
			}
		})
	}
	wg.Wait()
	day := time.Since(start)
	h := historyOf(t, e.store.Client(), prefix, from, e.store.View().Revision())

	most := int(day/granularity) + 1
	for g := range gateways {
		name := fmt.Sprint("gw", g)
		writes := h.writes[prefix+"names/"+name]
		if writes < 2 || writes > most {
			t.Errorf("%s: %d writes in a day, want 2 to %d", name, writes, most)
		}
		if d := e.stored(t, name); lastPing[g].Sub(d.LastPing) > granularity {
			t.Errorf("%s: last ping recorded %v, %v before the last ping", name, d.LastPing, lastPing[g].Sub(d.LastPing))
		}
	}
	if h.records != sum(h.writes) {
		t.Errorf("pings wrote keys other than records: %v", h.writes)
	}
	perGateway := h.bytes / gateways
	t.Logf("a day of hourly pings at ping_granularity %v: %d writes of %d gateways, %d bytes of etcd history (%d per gateway-day, %d per write)",
		DefaultPingGranularity, h.records, gateways, h.bytes, perGateway, h.bytes/max(h.records, 1))
	if perGateway > 5*1024 {
		t.Errorf("%d bytes of history per gateway-day, want at most 5 KiB", perGateway)
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// TestWriteFlood has many tokens change their names as fast as they can, by /dnsconfig and
// by /ping from ever new addresses, at the default write limit: each name gets its burst of
// changes and then 429s, and etcd's database grows by no more than those changes.
func TestWriteFlood(t *testing.T) {
	const (
		tokens  = 50
		flood   = 3 * time.Second
		dbBound = 2 << 20 // bytes the database may grow by
	)
	etcd := etcdtest.Start(t)
	prefix := fmt.Sprintf("/api-test/%d/", prefixes.Add(1))
	e := newEnvOn(t, openStoreAt(t, etcd, prefix), func(c *Config) {
		c.WriteLimit = RateLimit{}
		c.AllowPrivateAddrs = true
	})
	names := make([]string, tokens)
	for i := range names {
		names[i] = fmt.Sprint("flood", i)
		setUpGateway(t, e, names[i])
	}
	dbBefore, from := dbSize(t, etcd), e.store.View().Revision()

	var mu sync.Mutex
	statuses := map[int]int{}
	deadline := time.Now().Add(flood)
	var wg sync.WaitGroup
	for _, name := range names {
		token := e.stored(t, name).Token
		for _, path := range []string{"/dnsconfig?challenge=c%d-%d&token=", "/ping?ip=10.0.%d.%d&token="} {
			wg.Go(func() {
				for n := 0; time.Now().Before(deadline); n++ {
					r, err := request(http.MethodGet, nil, e.url+fmt.Sprintf(path, n/250%250, n%250)+token)
					if err != nil {
						t.Errorf("%s: %v", name, err)
						return
					}
					mu.Lock()
					statuses[r.status]++
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	h := historyOf(t, e.store.Client(), prefix, from, e.store.View().Revision())
	growth := dbSize(t, etcd) - dbBefore

	t.Logf("%d tokens flooding for %v: %v requests by status; %d writes accepted (%.1f per name, %.2f/s per name); history %d bytes; database grew by %d bytes",
		tokens, flood, statuses, h.records, float64(h.records)/tokens, float64(h.records)/tokens/flood.Seconds(), h.bytes, growth)
	if statuses[http.StatusTooManyRequests] == 0 {
		t.Error("no request was limited")
	}
	for status := range statuses {
		if status != http.StatusOK && status != http.StatusTooManyRequests {
			t.Errorf("%d requests answered %d", statuses[status], status)
		}
	}
	// setUpGateway's two /dnsconfig took their share of the burst.
	least := defaultWriteLimit.Burst - 2
	most := least + int(flood.Seconds()*defaultWriteLimit.Rate) + 1
	for _, name := range names {
		if n := h.writes[prefix+"names/"+name]; n < least || n > most {
			t.Errorf("%s: %d writes, want %d to %d", name, n, least, most)
		}
	}
	if growth > dbBound {
		t.Errorf("the database grew by %d bytes, want at most %d", growth, dbBound)
	}
}

// dbSize is the size of e's database.
func dbSize(t *testing.T, e *etcdstore.Embedded) int64 {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: e.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	st, err := cli.Status(t.Context(), e.Endpoints()[0])
	if err != nil {
		t.Fatal(err)
	}
	return st.DbSize
}

// pendingVerification is the hash of d's pending verification id, "" when none is pending.
func pendingVerification(d *etcdstore.Record) string {
	h, _ := d.Verification()
	return h
}
