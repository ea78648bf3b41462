package etcdstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// Errors a caller can act on; any other error means etcd could not be reached or answered badly.
var (
	// ErrNotFound: no record matches the name or secret.
	ErrNotFound = errors.New("not found")
	// ErrNameTaken: Create lost to an existing record of that name.
	ErrNameTaken = errors.New("name taken")
	// ErrSecretInUse: Create was given a token, reclamation token or verification id that
	// another record holds (an import of rows sharing a token, say).
	ErrSecretInUse = errors.New("a secret of the record is another record's")
	// ErrConflict: the record kept changing under an Update until its deadline, or a secret it
	// set is another record's; nothing was written.
	ErrConflict = errors.New("too many concurrent changes")
	// ErrDamaged: the selected record is not valid JSON (DeleteDamaged removes it).
	ErrDamaged = errors.New("record is damaged")
)

// DefaultTimeout bounds every etcd call when the Corefile sets no timeout.
const DefaultTimeout = 2 * time.Second

// Config says how to reach etcd.
type Config struct {
	Endpoints []string
	Username  string
	Password  string
	// CertFile, KeyFile and CAFile enable TLS to etcd; any may be empty.
	CertFile, KeyFile, CAFile string
	Prefix                    string
	Timeout                   time.Duration
	// Local is the embedded member serving Endpoints, when this process runs it: the store
	// then calls it directly rather than through a connection, and full loads of the view
	// read its store, without encoding the zone for a client.
	Local *Embedded
	// EmbeddedProcess says Endpoints are those of an EmbeddedProcess this process runs: its
	// database figures and alarms come from the child (published as endpoint "embedded"), so
	// the store does not read them again from the endpoints' status.
	EmbeddedProcess bool
	// Log hears when etcd is lost and when it returns; nil discards it.
	Log Logger
}

// Store reads and writes registry data in etcd and keeps a View of the zone current.
type Store struct {
	Keyspace
	// stopHealth ends the reachability checks.
	stopHealth context.CancelFunc
	healthDone chan struct{}
}

// Keyspace is the registry's keys in etcd, read and written through a client: what operator
// tools (the checker, the importer, regdnsctl) need, without loading the zone. A Store is a
// Keyspace with a View, and both write records through the same guarded transactions.
type Keyspace struct {
	cli     *clientv3.Client
	keys    keys
	timeout time.Duration
	// local is the embedded member serving cli, when this process runs it.
	local *Embedded
	// queue puts the changes of one name made through this Keyspace in line (queue.go).
	queue *nameQueue
	// view is the Store's View, nil in a bare Keyspace: writes then read records from etcd
	// and return without waiting for a view to show them.
	view *View
}

// Connect opens a Keyspace on cfg's etcd, without loading a View or starting a watch.
func Connect(cfg Config) (*Keyspace, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	cli, err := cfg.client()
	if err != nil {
		return nil, err
	}
	return &Keyspace{cli: cli, keys: newKeys(cfg.Prefix), timeout: cfg.Timeout, local: cfg.Local, queue: newNameQueue()}, nil
}

// client is a client of the embedded member in this process, or one dialled to cfg's endpoints.
func (cfg Config) client() (*clientv3.Client, error) {
	if cfg.Local != nil {
		return cfg.Local.client(), nil
	}
	return dial(cfg)
}

// Client is the etcd client, for tools and tests that read keys themselves.
func (ks *Keyspace) Client() *clientv3.Client { return ks.cli }

// Close closes the client.
func (ks *Keyspace) Close() error { return ks.cli.Close() }

func (ks *Keyspace) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, ks.timeout)
}

// Open connects to etcd and starts loading the View and following changes in the background.
// It does not wait for etcd: View().WaitLoaded says when the View holds the whole zone, so a
// server started while etcd is down can serve as soon as etcd answers.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	ks, err := Connect(cfg)
	if err != nil {
		return nil, err
	}
	s := &Store{Keyspace: *ks}
	s.view = newView(&s.Keyspace)
	if err := s.view.start(ctx); err != nil {
		s.cli.Close()
		return nil, err
	}
	s.startHealth(cfg)
	return s, nil
}

// startHealth follows whether etcd answers and, for an external cluster, its members' status.
func (s *Store) startHealth(cfg Config) {
	h := &health{cli: s.cli, probeKey: s.keys.names(), timeout: s.timeout, log: loggerOrDiscard(cfg.Log), view: s.view}
	if cfg.Local == nil && !cfg.EmbeddedProcess {
		h.endpoints = cfg.Endpoints
	}
	var ctx context.Context
	ctx, s.stopHealth = context.WithCancel(context.Background())
	s.healthDone = make(chan struct{})
	go func() {
		defer close(s.healthDone)
		h.run(ctx)
	}()
}

// dial connects a client to cfg's endpoints.
func dial(cfg Config) (*clientv3.Client, error) {
	tlsCfg, err := cfg.tls()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            cfg.Endpoints,
		Username:             cfg.Username,
		Password:             cfg.Password,
		TLS:                  tlsCfg,
		DialTimeout:          cfg.Timeout,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: cfg.Timeout,
		// gRPC's default reconnect backoff grows to two minutes: after an etcd outage the API
		// would answer 501, and the view stay stale, long after etcd is back. Retry every second at most.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: cfg.Timeout,
		})},
		Logger: zap.NewNop(),
	})
	if err != nil {
		// A missing or rejected client certificate shows up only as a timeout here.
		return nil, fmt.Errorf("etcd client for %s: %w (with TLS, check the client certificate and CA)", strings.Join(cfg.Endpoints, ","), err)
	}
	return cli, nil
}

func (cfg Config) tls() (*tls.Config, error) {
	if cfg.CertFile == "" && cfg.KeyFile == "" && cfg.CAFile == "" {
		return nil, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CertFile != "" || cfg.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("etcd client certificate: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("etcd CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd CA %s: no certificate found", cfg.CAFile)
		}
		t.RootCAs = pool
	}
	return t, nil
}

// LookupToken returns the record the local View holds for the API token, without asking etcd: it
// may be behind etcd by the watch latency, so use it only where that is harmless.
func (s *Store) LookupToken(token string) (Record, bool) { return s.view.LookupToken(token) }

// View is the in-memory copy of the zone that DNS answers from.
func (s *Store) View() *View { return s.view }

// Close stops following changes and closes the client. The View keeps answering from the
// state it last had.
func (s *Store) Close() error {
	s.stopHealth()
	<-s.healthDone
	s.view.stop()
	return s.cli.Close()
}
