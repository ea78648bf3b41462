package etcdstore

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regdns/regdns/etcdstore/certtest"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
)

// tlsPrefix is the key prefix the registry user may read and write.
const tlsPrefix = "/regdns/"

// pki is a CA and the certificates it issued, as PEM files.
type pki struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

// newPKI writes a CA, a server certificate for 127.0.0.1 and a client certificate to a
// temporary directory.
func newPKI(t *testing.T) pki {
	t.Helper()
	ca := certtest.NewCA(t, t.TempDir())
	p := pki{ca: ca.File}
	// etcd's gRPC gateway dials the server with the server's own certificate, so it must
	// also be good for client auth when the server demands client certificates.
	p.serverCert, p.serverKey = ca.Issue(t, "server", x509.Certificate{
		Subject:     pkix.Name{CommonName: "etcd"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	})
	// etcd takes a client certificate's common name as the user when a request carries no
	// token; this one names no etcd user, so only the password can authenticate.
	p.clientCert, p.clientKey = ca.Issue(t, "client", x509.Certificate{
		Subject:     pkix.Name{CommonName: "regdns-client"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return p
}

// tlsEtcd is an etcd that demands client certificates and has auth enabled, with the user
// registry allowed to read and write tlsPrefix and the user outsider only /other/.
type tlsEtcd struct {
	url              string
	pki              pki
	password         string // of registry
	outsiderPassword string
}

// config is what an operator writes with etcd_tls and etcd_auth for the user registry.
func (e tlsEtcd) config() Config {
	return Config{
		Endpoints: []string{e.url},
		CertFile:  e.pki.clientCert, KeyFile: e.pki.clientKey, CAFile: e.pki.ca,
		Username: "registry", Password: e.password,
		Prefix: tlsPrefix,
		// Generous for a loaded CI machine: opening authenticates, which costs a bcrypt hash.
		Timeout: 5 * time.Second,
	}
}

func startTLSEtcd(t *testing.T) tlsEtcd {
	t.Helper()
	p := newPKI(t)
	cfg := embed.NewConfig()
	cfg.Name = "tls"
	cfg.Dir = t.TempDir()
	// Port 0 lets the kernel pick free ports, with no window for another process to take them.
	curl := url.URL{Scheme: "https", Host: "127.0.0.1:0"}
	purl := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{curl}, []url.URL{curl}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{purl}, []url.URL{purl}
	cfg.InitialCluster = cfg.Name + "=" + purl.String()
	cfg.ClientTLSInfo = transport.TLSInfo{
		CertFile: p.serverCert, KeyFile: p.serverKey, TrustedCAFile: p.ca,
		ClientCertAuth: true,
	}
	cfg.TickMs, cfg.ElectionMs = 10, 50
	cfg.UnsafeNoFsync = true
	// The cheapest password hash keeps each authentication fast under the race detector.
	cfg.BcryptCost = uint(bcrypt.MinCost)
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("etcd did not become ready in 30s")
	}
	te := tlsEtcd{
		url:              "https://" + e.Clients[0].Addr().String(),
		pki:              p,
		password:         rand.Text(),
		outsiderPassword: rand.Text(),
	}

	// Set up users while auth is still off; the client certificate alone gets in.
	tlsCfg, err := Config{CertFile: p.clientCert, KeyFile: p.clientKey, CAFile: p.ca}.tls()
	if err != nil {
		t.Fatal(err)
	}
	root, err := clientv3.New(clientv3.Config{
		Endpoints: []string{te.url}, TLS: tlsCfg, DialTimeout: 10 * time.Second, Logger: zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	steps := []func() error{
		func() error { _, err := root.UserAdd(ctx, "root", rand.Text()); return err },
		func() error { _, err := root.UserGrantRole(ctx, "root", "root"); return err },
	}
	for _, u := range []struct{ user, password, prefix string }{
		{"registry", te.password, tlsPrefix},
		{"outsider", te.outsiderPassword, "/other/"},
	} {
		steps = append(steps,
			func() error { _, err := root.RoleAdd(ctx, u.user); return err },
			func() error {
				_, err := root.RoleGrantPermission(ctx, u.user, u.prefix, clientv3.GetPrefixRangeEnd(u.prefix),
					clientv3.PermissionType(clientv3.PermReadWrite))
				return err
			},
			func() error { _, err := root.UserAdd(ctx, u.user, u.password); return err },
			func() error { _, err := root.UserGrantRole(ctx, u.user, u.user); return err },
		)
	}
	steps = append(steps, func() error { _, err := root.AuthEnable(ctx); return err })
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("setting up etcd auth: %v", err)
		}
	}
	return te
}

// firstError is the error of opening a store with cfg or, since Open may connect lazily,
// of the store's first read.
func firstError(t *testing.T, cfg Config) error {
	t.Helper()
	s, err := Open(t.Context(), cfg)
	if err != nil {
		return err
	}
	t.Cleanup(func() { s.Close() })
	_, err = s.Get(t.Context(), ByName("alpha"))
	return err
}

func TestTLSAuth(t *testing.T) {
	t.Parallel()
	e := startTLSEtcd(t)

	t.Run("store works", func(t *testing.T) {
		t.Parallel()
		s := openConfig(t, e.config())
		replica := openConfig(t, e.config())
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if err := replica.View().WaitLoaded(ctx); err != nil {
			t.Fatalf("WaitLoaded: %v", err)
		}

		d := newRecord("alpha")
		if err := s.Create(t.Context(), d); err != nil {
			t.Fatalf("Create: %v", err)
		}
		if got, err := s.Get(t.Context(), ByToken(d.Token)); err != nil || got.Name != "alpha" {
			t.Fatalf("Get by token = %q, %v", got.Name, err)
		}
		eventually(t, 10*time.Second, "replica's view never showed alpha", func() bool {
			_, ok := replica.View().Lookup("alpha")
			return ok
		})

		if _, err := s.Update(t.Context(), ByName("alpha"), func(d *Record) error {
			d.Description = "updated"
			return nil
		}); err != nil {
			t.Fatalf("Update: %v", err)
		}
		eventually(t, 10*time.Second, "replica's view never showed the update", func() bool {
			got, ok := replica.View().Lookup("alpha")
			return ok && got.Description == "updated"
		})
		assertConsistent(t, s)

		if _, err := s.Delete(t.Context(), ByToken(d.Token), nil); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		eventually(t, 10*time.Second, "replica's view still shows alpha after Delete", func() bool {
			_, ok := replica.View().Lookup("alpha")
			return !ok
		})
		if _, err := s.Get(t.Context(), ByName("alpha")); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get after Delete = %v, want ErrNotFound", err)
		}
		assertConsistent(t, s)
	})

	t.Run("wrong password", func(t *testing.T) {
		t.Parallel()
		cfg := e.config()
		cfg.Password = rand.Text()
		err := firstError(t, cfg)
		if err == nil || isSentinel(err) || !errors.Is(err, rpctypes.ErrAuthFailed) {
			t.Errorf("with a wrong password: %v, want etcd's authentication failure", err)
		}
	})

	t.Run("no client certificate", func(t *testing.T) {
		t.Parallel()
		cfg := e.config()
		cfg.CertFile, cfg.KeyFile = "", ""
		// The handshake is refused, so the client waits out its whole timeout.
		cfg.Timeout = time.Second
		if err := firstError(t, cfg); err == nil || isSentinel(err) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("without a client certificate: %v, want an etcd error", err)
		}
	})

	t.Run("no permission on the prefix", func(t *testing.T) {
		t.Parallel()
		cfg := e.config()
		cfg.Username, cfg.Password = "outsider", e.outsiderPassword
		s := openConfig(t, cfg)
		if err := s.Create(t.Context(), newRecord("beta")); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("Create without permission = %v, want permission denied", err)
		}
		// A denied read must not pass for a name that is free.
		if _, err := s.Get(t.Context(), ByName("beta")); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("Get without permission = %v, want permission denied", err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		if err := s.View().WaitLoaded(ctx); err == nil {
			t.Error("view loaded without read permission")
		}
		if _, err := s.Check(t.Context()); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("Check without permission = %v, want permission denied", err)
		}
		registry := openConfig(t, e.config())
		if _, err := registry.Get(t.Context(), ByName("beta")); !errors.Is(err, ErrNotFound) {
			t.Errorf("the denied Create left a record: Get = %v", err)
		}
	})
}

// TestTLSCANotPEM pins that a CA file in the wrong format, such as DER, stops Open with an
// error naming the CA rather than leaving every call to fail on an unknown authority.
func TestTLSCANotPEM(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	b, err := os.ReadFile(p.ca)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	der := filepath.Join(t.TempDir(), "ca.der")
	if err := os.WriteFile(der, block.Bytes, 0o600); err != nil {
		t.Fatal(err)
	}
	var s *Store
	s, err = Open(t.Context(), Config{
		Endpoints: []string{"https://127.0.0.1:1"},
		CertFile:  p.clientCert, KeyFile: p.clientKey, CAFile: der,
	})
	if err == nil {
		s.Close()
		t.Fatal("Open accepted a CA file that is not PEM")
	}
	if !strings.Contains(err.Error(), "CA") || !strings.Contains(err.Error(), der) {
		t.Errorf("Open error %q does not name the CA file", err)
	}
}
