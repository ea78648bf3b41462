package certtest

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"testing"
)

// TestSelfSignedServesTLS checks that a client trusting only the pool completes a handshake
// with a server using the certificate, by IP and by name.
func TestSelfSignedServesTLS(t *testing.T) {
	certFile, keyFile, pool := WriteSelfSigned(t, t.TempDir())
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("written files do not load: %v", err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("ok"))
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	for _, host := range []string{"127.0.0.1", "localhost"} {
		c, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", port), &tls.Config{RootCAs: pool, ServerName: host})
		if err != nil {
			t.Fatalf("handshake as %s: %v", host, err)
		}
		if b, _ := io.ReadAll(c); string(b) != "ok" {
			t.Errorf("read %q through TLS as %s", b, host)
		}
		c.Close()
	}
	other, _ := SelfSigned(t)
	if _, err := other.Leaf.Verify(x509.VerifyOptions{Roots: pool}); err == nil {
		t.Error("a second certificate is trusted by the first one's pool")
	}
}

// TestCAIssuesForMutualTLS checks that a server and a client with certificates issued by one
// CA complete a handshake in which each verifies the other against the CA's file only, and
// that a client without a certificate is refused.
func TestCAIssuesForMutualTLS(t *testing.T) {
	ca := NewCA(t, t.TempDir())
	caPEM, err := os.ReadFile(ca.File)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("the CA file holds no certificate")
	}
	load := func(certFile, keyFile string) tls.Certificate {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	server := load(ca.Issue(t, "server", x509.Certificate{
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}))
	client := load(ca.Issue(t, "client", x509.Certificate{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}))
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{server}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Write([]byte("ok"))
			c.Close()
		}
	}()
	read := func(certs []tls.Certificate) (string, error) {
		c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pool, Certificates: certs})
		if err != nil {
			return "", err
		}
		defer c.Close()
		b, err := io.ReadAll(c)
		return string(b), err
	}
	if got, err := read([]tls.Certificate{client}); err != nil || got != "ok" {
		t.Errorf("with the issued client certificate: %q, %v", got, err)
	}
	if got, err := read(nil); err == nil && got == "ok" {
		t.Error("a client without a certificate was served")
	}
}
