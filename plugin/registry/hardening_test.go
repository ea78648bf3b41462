package registry

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/regdns/regdns/etcdstore/certtest"
)

// Names not pinged for `expire` stop resolving; a ping revives them; after the grace period
// they are deleted and free to register again.
func TestExpiry(t *testing.T) {
	s := startServer(t, "expire 1s 1s")
	tok := s.subscribe("sleepy", nil)
	if r := s.query("udp", "sleepy.example.org.", dns.TypeA); len(r.Answer) != 1 {
		t.Fatalf("fresh name: %v", r)
	}
	time.Sleep(1200 * time.Millisecond)
	if r := s.query("udp", "sleepy.example.org.", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Fatalf("expired name still answered: %v", r)
	}
	if code, body := s.get("/subscribe", url.Values{"name": {"sleepy"}}); code != 400 {
		t.Fatalf("an expired name in its grace period could be taken: %d %s", code, body)
	}
	s.mustGet("/ping", url.Values{"token": {tok}})
	if r := s.query("udp", "sleepy.example.org.", dns.TypeA); len(r.Answer) != 1 {
		t.Fatalf("ping did not revive the name: %v", r)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := s.get("/subscribe", url.Values{"name": {"sleepy"}})
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("name not freed 10s after expiry (1s) and grace (1s)")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code, _ := s.get("/info", url.Values{"token": {tok}}); code != 400 {
		t.Errorf("the expired name's old token still works: %d", code)
	}
}

func TestAPIOverTLS(t *testing.T) {
	certFile, keyFile, pool := certtest.WriteSelfSigned(t, t.TempDir())
	startServer(t, "api_tls "+certFile+" "+keyFile)
	addr := apiAddr(t, "127.0.0.1:0")
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
	resp, err := client.Get("https://" + addr + "/connectivity-check")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "OK" {
		t.Errorf("https: %d %q", resp.StatusCode, b)
	}
	if resp, err := http.Get("http://" + addr + "/connectivity-check"); err == nil && resp.StatusCode == 200 {
		t.Error("plain HTTP answered 200 on the TLS listener")
	}
}

// tlsKeepAlive opens a TLS connection to addr and gets /connectivity-check on it, keeping it open.
func tlsKeepAlive(addr string, pool *x509.CertPool) (*tls.Conn, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool})
	if err != nil {
		return nil, err
	}
	if err := tlsGet(c); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func tlsGet(c *tls.Conn) error {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "GET /connectivity-check HTTP/1.1\r\nHost: api\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// The connection caps hold over TLS, where a refused connection is closed before the
// handshake, and a reload changes them on the listener it keeps, with the connections it holds.
func TestConnectionCapsOverTLSAndReload(t *testing.T) {
	certFile, keyFile, pool := certtest.WriteSelfSigned(t, t.TempDir())
	s := startServer(t, "api_tls "+certFile+" "+keyFile+"\n api_max_connections 100 1")
	addr := apiAddr(t, "127.0.0.1:0")
	held, err := tlsKeepAlive(addr, pool)
	if err != nil {
		t.Fatalf("first connection: %v", err)
	}
	defer held.Close()
	if c, err := tlsKeepAlive(addr, pool); err == nil {
		c.Close()
		t.Fatal("second connection from one address served beyond a per-client cap of 1")
	}

	body := strings.Replace(string(s.inst.Caddyfile().Body()), "api_max_connections 100 1", "api_max_connections 100 2", 1)
	next, err := s.inst.Restart(corefile(body))
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	s.inst = next
	second, err := tlsKeepAlive(addr, pool)
	if err != nil {
		t.Fatalf("second connection after the reload raised the cap to 2: %v", err)
	}
	defer second.Close()
	if err := tlsGet(held); err != nil {
		t.Errorf("the connection held across the reload: %v", err)
	}
	if c, err := tlsKeepAlive(addr, pool); err == nil {
		c.Close()
		t.Error("third connection served beyond the reloaded cap of 2: the held one was not counted")
	}
}

// With api_max_concurrent 1, a request arriving while another is stuck gets 503 at once.
func TestAPIConcurrencyLimit(t *testing.T) {
	// An SMTP server that accepts and never speaks holds /setemail for the mail timeout.
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	go func() {
		for {
			c, err := hole.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	defer hole.Close()
	s := startServer(t, "api_max_concurrent 1\n smtp "+hole.Addr().String()+" none")
	tok := s.subscribe("busy", nil)
	stuck := make(chan int)
	go func() {
		code, _ := s.get("/setemail", url.Values{"token": {tok}, "email": {"a@example.net"}})
		stuck <- code
	}()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	resp, err := http.Get(s.api + "/connectivity-check")
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Error string }
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || body.Error != "Busy" || resp.Header.Get("Retry-After") == "" || time.Since(start) > time.Second {
		t.Errorf("second request: %d %q after %s; want 503 Busy with Retry-After at once", resp.StatusCode, body.Error, time.Since(start))
	}
	hole.Close()
	for _, c := range held {
		c.Close()
	}
	if code := <-stuck; code != 501 {
		t.Errorf("setemail with a dead SMTP server: %d, want 501", code)
	}
}
