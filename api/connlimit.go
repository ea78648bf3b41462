package api

import (
	"container/list"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// ConnLimits bound the connections an API listener holds open; a cap of 0 admits no one.
type ConnLimits struct {
	// Total is how many connections the listener holds at once. At the cap, a new connection
	// closes the longest-idle keep-alive connection, or is refused if none is idle.
	Total int
	// PerClient is how many of them one client address (IPv6: one /64) may hold.
	PerClient int
	// Exempt are peers not capped per client: trusted proxies carry many clients.
	Exempt []netip.Prefix
}

// Canned answers of a refused connection, written without parsing the request: the API's
// errors, with the codes a gateway already reads.
var (
	refusedPerClient = cannedAnswer("429 Too Many Requests", &clientError{Code: "RateLimited", Message: "Too many connections from your address; reuse them."})
	refusedTotal     = cannedAnswer("503 Service Unavailable", &clientError{Code: "Busy", Message: "Too many connections; try again shortly."})
)

func cannedAnswer(status string, e *clientError) []byte {
	body, err := json.Marshal(e)
	if err != nil {
		panic(err) // a clientError always marshals
	}
	return fmt.Appendf(nil, "HTTP/1.1 %s\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", status, len(body), body)
}

// MaxRefusalsAnswering bounds the refused connections held open to be answered, each for at
// most refusalTimeout: beyond it a refused connection is closed at once, so that refusals
// cannot hold more descriptors than that.
const MaxRefusalsAnswering = 64

// refusalTimeout bounds how long a refused connection is held to be answered.
const refusalTimeout = time.Second

// ConnLimiter is a listener that enforces ConnLimits; give its ConnState to the http.Server
// serving it, which is how it knows the idle connections. Refused connections get a canned
// answer, or, under TLS, are closed at once: answering them would cost a handshake.
type ConnLimiter struct {
	net.Listener
	plain     bool
	answering chan struct{} // one per refused connection being answered

	mu       sync.Mutex
	limits   ConnLimits
	open     int
	byClient map[string]int
	idle     list.List // of *limitedConn, longest idle first
}

// LimitConns wraps the TCP listener ln; plain says whether it serves HTTP without TLS.
func LimitConns(ln net.Listener, limits ConnLimits, plain bool) *ConnLimiter {
	return &ConnLimiter{Listener: ln, plain: plain, answering: make(chan struct{}, MaxRefusalsAnswering), limits: limits, byClient: map[string]int{}}
}

// SetLimits changes the limits; connections already open stay.
func (l *ConnLimiter) SetLimits(limits ConnLimits) {
	l.mu.Lock()
	l.limits = limits
	l.mu.Unlock()
}

// limitedConn is an admitted connection; its fields other than Conn are guarded by l.mu.
type limitedConn struct {
	net.Conn
	l      *ConnLimiter
	client string // "" for an exempt peer
	idleAt *list.Element
	closed bool
}

// Accept returns the next connection within the limits, answering the others itself.
func (l *ConnLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if lc := l.admit(c); lc != nil {
			return lc, nil
		}
	}
}

// admit returns c as a limitedConn, or refuses it and returns nil.
func (l *ConnLimiter) admit(c net.Conn) *limitedConn {
	client := l.client(c)
	l.mu.Lock()
	var victim *limitedConn
	var refusal []byte
	reason := ""
	switch {
	case client != "" && l.byClient[client] >= l.limits.PerClient:
		refusal, reason = refusedPerClient, "client"
	case l.open >= l.limits.Total && l.idle.Len() == 0:
		refusal, reason = refusedTotal, "total"
	case l.open >= l.limits.Total:
		victim = l.idle.Front().Value.(*limitedConn)
		l.release(victim)
	}
	var lc *limitedConn
	if refusal == nil {
		lc = &limitedConn{Conn: c, l: l, client: client}
		l.open++
		if client != "" {
			l.byClient[client]++
		}
	}
	l.mu.Unlock()

	if victim != nil {
		connectionsShed.Inc()
		victim.Conn.Close()
	}
	if lc == nil {
		connectionsRefused.WithLabelValues(reason).Inc()
		l.refuse(c, refusal)
		return nil
	}
	connectionsOpen.Inc()
	return lc
}

// client is the per-client key of c's peer, "" if it is exempt or not an IP peer.
func (l *ConnLimiter) client(c net.Conn) string {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return ""
	}
	a := ap.Addr().Unmap().WithZone("")
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.limits.Exempt {
		if p.Contains(a) {
			return ""
		}
	}
	return clientKey(a)
}

// refuse answers c in the background if it is plain HTTP and fewer than MaxRefusalsAnswering
// are being answered, and closes it at once otherwise.
func (l *ConnLimiter) refuse(c net.Conn, answer []byte) {
	if l.plain {
		select {
		case l.answering <- struct{}{}:
			go func() {
				defer func() { <-l.answering }()
				answerRefused(c, answer)
			}()
			return
		default:
		}
	}
	c.Close()
}

// answerRefused writes answer once the request has begun to arrive (an HTTP client drops an
// answer that comes before its request: Go's calls it unsolicited), then shuts down writing
// and reads until the client closes, since closing with the request unread would send a reset
// that can destroy the answer before the client reads it.
func answerRefused(c net.Conn, answer []byte) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(refusalTimeout))
	var buf [4096]byte
	if _, err := c.Read(buf[:]); err != nil {
		return
	}
	if _, err := c.Write(answer); err != nil {
		return
	}
	if tc, ok := c.(interface{ CloseWrite() error }); ok {
		tc.CloseWrite()
	}
	for {
		if _, err := c.Read(buf[:]); err != nil {
			return
		}
	}
}

// release gives back c's place, once; l.mu is held.
func (l *ConnLimiter) release(c *limitedConn) {
	if c.closed {
		return
	}
	c.closed = true
	if c.idleAt != nil {
		l.idle.Remove(c.idleAt)
		c.idleAt = nil
	}
	l.open--
	if c.client != "" {
		if l.byClient[c.client]--; l.byClient[c.client] == 0 {
			delete(l.byClient, c.client)
		}
	}
	connectionsOpen.Dec()
}

// ConnState is the http.Server hook that tells the limiter which connections are idle.
func (l *ConnLimiter) ConnState(c net.Conn, state http.ConnState) {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = tc.NetConn()
	}
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if lc.closed {
		return
	}
	switch {
	case state == http.StateIdle && lc.idleAt == nil:
		lc.idleAt = l.idle.PushBack(lc)
	case state != http.StateIdle && lc.idleAt != nil:
		l.idle.Remove(lc.idleAt)
		lc.idleAt = nil
	}
}

func (c *limitedConn) Close() error {
	c.l.mu.Lock()
	c.l.release(c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}
