package api

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/coredns/coredns/plugin/pkg/reuseport"
)

// Listener is the API's HTTP or HTTPS listener. A reload hands it over instead of closing
// it: the new configuration's handler (and certificate, and connection caps) replace the old
// ones behind it, so no request is refused while the Corefile is reloaded.
type Listener struct {
	addr    net.Addr
	tls     bool
	conns   *ConnLimiter
	srv     *http.Server
	handler atomic.Pointer[http.Handler]
	cert    atomic.Pointer[tls.Certificate]
}

// Listen opens addr with SO_REUSEPORT, so that a reload switching between HTTP and HTTPS
// can open the new listener before the old one closes, and serves it; nothing is answered
// until Serve gives it a handler.
func Listen(addr string, withTLS bool, conns ConnLimits) (*Listener, error) {
	tcp, err := reuseport.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	l := &Listener{addr: tcp.Addr(), tls: withTLS, conns: LimitConns(tcp, conns, !withTLS)}
	var ln net.Listener = l.conns
	l.srv = &http.Server{
		Handler:           l,
		ConnState:         l.conns.ConnState,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		// TLS handshake failures and the like, without request details.
		ErrorLog: stdlog.New(io.Discard, "", 0),
	}
	if withTLS {
		ln = tls.NewListener(ln, &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return l.cert.Load(), nil },
		})
	}
	go func() {
		if err := l.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Errorf("API server on %s: %v", addr, err)
		}
	}()
	return l, nil
}

// Serve answers with h from now on, under cert (nil keeps the one before) and conns.
func (l *Listener) Serve(h http.Handler, cert *tls.Certificate, conns ConnLimits) {
	if cert != nil {
		l.cert.Store(cert)
	}
	l.handler.Store(&h)
	l.conns.SetLimits(conns)
}

// Addr is the address the listener is bound to.
func (l *Listener) Addr() net.Addr { return l.addr }

// Scheme is https or http.
func (l *Listener) Scheme() string {
	if l.tls {
		return "https"
	}
	return "http"
}

// Close stops the listener, letting requests in progress finish for a few seconds.
func (l *Listener) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l.srv.Shutdown(ctx)
}

func (l *Listener) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	(*l.handler.Load()).ServeHTTP(w, req)
}
