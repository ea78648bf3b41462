package api

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/regdns/regdns/etcdstore/certtest"
)

// limitedServer is an HTTP server on a ConnLimiter over real loopback TCP. /hold blocks until
// release is closed; every other path answers 200 at once.
type limitedServer struct {
	l       *ConnLimiter
	addr    string
	release chan struct{}
	tls     *tls.Config // the clients' configuration, nil for plain HTTP
}

// startLimited serves plain HTTP, or HTTPS with a self-signed certificate.
func startLimited(t *testing.T, network, addr string, limits ConnLimits, withTLS bool) *limitedServer {
	t.Helper()
	tcp, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("cannot listen on %s %s: %v", network, addr, err)
	}
	s := &limitedServer{l: LimitConns(tcp, limits, !withTLS), addr: tcp.Addr().String(), release: make(chan struct{})}
	var ln net.Listener = s.l
	if withTLS {
		cert, pool := certtest.SelfSigned(t)
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})
		s.tls = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/hold" {
				<-s.release
			}
			io.WriteString(w, "ok")
		}),
		ConnState: s.l.ConnState,
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		select {
		case <-s.release:
		default:
			close(s.release)
		}
		srv.Close()
	})
	return s
}

// client is one keep-alive connection from a chosen local address.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func (s *limitedServer) dial(t *testing.T, from string) *client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", s.addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", from, err)
	}
	if s.tls != nil {
		c = tls.Client(c, s.tls)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, conn: c, r: bufio.NewReader(c)}
}

// send writes a GET of path, keeping the connection open.
func (c *client) send(path string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, "GET "+path+" HTTP/1.1\r\nHost: api\r\n\r\n"); err != nil {
		c.t.Fatalf("send %s: %v", path, err)
	}
}

// response reads the next response: its status and error code ("" for a non-JSON body).
func (c *client) response() (int, string, http.Header) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		c.t.Fatalf("reading response: %v", err)
	}
	defer resp.Body.Close()
	var e struct{ Error string }
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &e)
	return resp.StatusCode, e.Error, resp.Header
}

// get sends a request and reads its answer.
func (c *client) get(path string) (int, string, http.Header) {
	c.t.Helper()
	c.send(path)
	return c.response()
}

// closedByServer reports whether the server closed the connection (EOF or reset) within 10 s.
func (c *client) closedByServer() bool {
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := c.r.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// metricValue is the value of a counter or gauge.
func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		t.Fatal(err)
	}
	return pb.GetCounter().GetValue() + pb.GetGauge().GetValue()
}

func (l *ConnLimiter) counts() (open, idle int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open, l.idle.Len()
}

func TestConnLimiterPerClient(t *testing.T) {
	s := startLimited(t, "tcp4", "127.0.0.1:0", ConnLimits{Total: 100, PerClient: 2}, false)
	refused := metricValue(t, connectionsRefused.WithLabelValues("client"))
	var held []*client
	for range 2 {
		c := s.dial(t, "127.0.0.1")
		if code, _, _ := c.get("/"); code != 200 {
			t.Fatalf("connection within the cap: %d", code)
		}
		held = append(held, c)
	}
	over := s.dial(t, "127.0.0.1")
	over.send("/")
	code, errCode, h := over.response()
	if code != http.StatusTooManyRequests || errCode != "RateLimited" || h.Get("Retry-After") != "1" {
		t.Errorf("third connection from one address: %d %q Retry-After %q, want 429 RateLimited 1", code, errCode, h.Get("Retry-After"))
	}
	if !over.closedByServer() {
		t.Error("refused connection left open")
	}
	if got := metricValue(t, connectionsRefused.WithLabelValues("client")) - refused; got != 1 {
		t.Errorf("refused{cap=client} rose by %v, want 1", got)
	}
	if code, _, _ := s.dial(t, "127.0.0.2").get("/"); code != 200 {
		t.Errorf("another address: %d, want 200", code)
	}
	for _, c := range held {
		if code, _, _ := c.get("/"); code != 200 {
			t.Errorf("held connection after the refusal: %d", code)
		}
	}
	held[0].conn.Close()
	eventually(t, "the closed connection's place", func() bool { open, _ := s.l.counts(); return open == 2 })
	if code, _, _ := s.dial(t, "127.0.0.1").get("/"); code != 200 {
		t.Errorf("after one closed: %d, want 200", code)
	}
}

func TestConnLimiterShedsIdle(t *testing.T) {
	shedsIdle(t, startLimited(t, "tcp4", "127.0.0.1:0", ConnLimits{Total: 2, PerClient: 10}, false))
}

// Under TLS the server sees its own tls.Conn, which the limiter unwraps to know idle ones.
func TestConnLimiterShedsIdleOverTLS(t *testing.T) {
	shedsIdle(t, startLimited(t, "tcp4", "127.0.0.1:0", ConnLimits{Total: 2, PerClient: 10}, true))
}

func shedsIdle(t *testing.T, s *limitedServer) {
	shed := metricValue(t, connectionsShed)
	oldest, newer := s.dial(t, "127.0.0.1"), s.dial(t, "127.0.0.2")
	oldest.get("/")
	eventually(t, "the first connection idle", func() bool { _, idle := s.l.counts(); return idle == 1 })
	newer.get("/")
	eventually(t, "both connections idle", func() bool { _, idle := s.l.counts(); return idle == 2 })

	if code, _, _ := s.dial(t, "127.0.0.3").get("/"); code != 200 {
		t.Fatalf("connection at the total cap with idle ones open: %d, want 200", code)
	}
	if !oldest.closedByServer() {
		t.Error("the longest-idle connection was not closed")
	}
	if code, _, _ := newer.get("/"); code != 200 {
		t.Errorf("the newer idle connection: %d, want it kept and answered", code)
	}
	if got := metricValue(t, connectionsShed) - shed; got != 1 {
		t.Errorf("shed rose by %v, want 1", got)
	}
}

func TestConnLimiterTotalWhenBusy(t *testing.T) {
	s := startLimited(t, "tcp4", "127.0.0.1:0", ConnLimits{Total: 2, PerClient: 10}, false)
	refused := metricValue(t, connectionsRefused.WithLabelValues("total"))
	opened := metricValue(t, connectionsOpen)
	var busy []*client
	for _, from := range []string{"127.0.0.1", "127.0.0.2"} {
		c := s.dial(t, from)
		c.send("/hold")
		busy = append(busy, c)
	}
	eventually(t, "two requests in progress", func() bool { open, idle := s.l.counts(); return open == 2 && idle == 0 })
	if got := metricValue(t, connectionsOpen) - opened; got != 2 {
		t.Errorf("open connections gauge rose by %v, want 2", got)
	}
	start := time.Now()
	code, errCode, _ := s.dial(t, "127.0.0.3").get("/")
	if code != http.StatusServiceUnavailable || errCode != "Busy" || time.Since(start) > 2*time.Second {
		t.Errorf("connection beyond the total with none idle: %d %q after %s, want 503 Busy at once", code, errCode, time.Since(start))
	}
	if got := metricValue(t, connectionsRefused.WithLabelValues("total")) - refused; got != 1 {
		t.Errorf("refused{cap=total} rose by %v, want 1", got)
	}
	close(s.release)
	for _, c := range busy {
		if code, _, _ := c.response(); code != 200 {
			t.Errorf("held request: %d", code)
		}
		c.conn.Close()
	}
	eventually(t, "the gauge back down", func() bool { return metricValue(t, connectionsOpen) == opened })
}

func TestConnLimiterExemptsTrustedProxies(t *testing.T) {
	s := startLimited(t, "tcp4", "127.0.0.1:0", ConnLimits{Total: 10, PerClient: 1, Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, false)
	for i := range 3 {
		if code, _, _ := s.dial(t, "127.0.0.1").get("/"); code != 200 {
			t.Errorf("connection %d from the trusted proxy: %d, want 200", i, code)
		}
	}
	s.dial(t, "127.0.0.2").get("/")
	if code, _, _ := s.dial(t, "127.0.0.2").get("/"); code != http.StatusTooManyRequests {
		t.Errorf("second connection from an untrusted address: %d, want 429", code)
	}
}

// An IPv6 host holds a /64, so its connections count under the prefix.
func TestConnLimiterIPv6(t *testing.T) {
	s := startLimited(t, "tcp6", "[::1]:0", ConnLimits{Total: 10, PerClient: 1}, false)
	if code, _, _ := s.dial(t, "::1").get("/"); code != 200 {
		t.Fatalf("first connection: %d", code)
	}
	s.l.mu.Lock()
	n := s.l.byClient["::/64"]
	s.l.mu.Unlock()
	if n != 1 {
		t.Errorf("connections counted under ::/64: %d, want 1", n)
	}
	if code, _, _ := s.dial(t, "::1").get("/"); code != http.StatusTooManyRequests {
		t.Errorf("second connection from the /64: %d, want 429", code)
	}
}

// Under TLS a refused connection is closed without a byte: a canned answer would need a handshake.
func TestConnLimiterTLSClosesAtOnce(t *testing.T) {
	tcp, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := LimitConns(tcp, ConnLimits{Total: 1, PerClient: 1}, false)
	defer l.Close()
	go func() {
		for {
			if _, err := l.Accept(); err != nil {
				return
			}
		}
	}()
	first, err := net.Dial("tcp", tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := net.Dial("tcp", tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(second); len(b) != 0 || err != nil {
		t.Errorf("refused TLS connection: read %q, %v; want EOF with nothing", b, err)
	}
}

// Go's HTTP client, which drops an answer that arrives before its request is written, reads
// every canned refusal as the response, never as a closed or reset connection, with as many
// refused at once as MaxRefusalsAnswering allows.
func TestConnLimiterRefusalReadByHTTPClient(t *testing.T) {
	s := startLimited(t, "tcp4", "127.0.0.1:0", ConnLimits{Total: 100, PerClient: 1}, false)
	s.dial(t, "127.0.0.1").get("/")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	outcomes := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range MaxRefusalsAnswering / 2 {
		wg.Go(func() {
			for range 20 {
				resp, err := client.Get("http://" + s.addr + "/?padding=" + strings.Repeat("x", 6000))
				mu.Lock()
				if err != nil {
					outcomes["error: "+errors.Unwrap(err).Error()]++
				} else {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					outcomes[resp.Status]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if want := MaxRefusalsAnswering / 2 * 20; outcomes["429 Too Many Requests"] != want {
		t.Errorf("%d refused requests: %v, want all 429", want, outcomes)
	}
}

// Refused connections held open without a request are answered by at most
// MaxRefusalsAnswering goroutines, each for at most refusalTimeout; beyond that a refused
// connection is closed at once.
func TestConnLimiterBoundsRefusalsAnswering(t *testing.T) {
	s := startLimited(t, "tcp4", "127.0.0.1:0", ConnLimits{Total: 100, PerClient: 1}, false)
	s.dial(t, "127.0.0.1").get("/")
	for range MaxRefusalsAnswering {
		s.dial(t, "127.0.0.1")
	}
	eventually(t, "every answering place taken", func() bool { return len(s.l.answering) == MaxRefusalsAnswering })
	start := time.Now()
	over := s.dial(t, "127.0.0.1")
	over.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(over.conn); len(b) != 0 || err != nil || time.Since(start) > refusalTimeout/2 {
		t.Errorf("refused connection beyond the answering bound: read %q, %v after %s; want closed at once", b, err, time.Since(start))
	}
	eventually(t, "silent refused connections released after the timeout", func() bool { return len(s.l.answering) == 0 })
	if code, _, _ := s.dial(t, "127.0.0.1").get("/"); code != http.StatusTooManyRequests {
		t.Errorf("refusal after the bound freed: %d, want 429", code)
	}
}
