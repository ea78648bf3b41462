package certtest

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
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
