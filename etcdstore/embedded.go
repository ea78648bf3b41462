package etcdstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.etcd.io/etcd/server/v3/etcdserver/txn"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Embedded is an etcd server running inside this process, for single-machine setups and tests.
type Embedded struct {
	etcd   *embed.Etcd
	log    *quietOnClose
	tcp    string // the TCP client URL actually served, or ""
	socket string // the Unix socket's path
	upkeep *upkeep
}

// EmbeddedConfig says where the embedded etcd keeps its data, what it listens on and how it
// keeps its database small.
type EmbeddedConfig struct {
	Dir string
	// ClientURL, when set, is a TCP URL such as http://127.0.0.1:23790 on which the embedded
	// etcd also serves clients, without authentication: any process that can reach it can
	// read every API token and rewrite the zone. Empty (the default): clients reach it only
	// through the Unix socket LocalEndpoint names, which only the process owner can open.
	// Port 0 picks a free one.
	ClientURL string
	// PeerURL is the loopback address of the raft listener a member must have, e.g.
	// https://127.0.0.1:0 (the default; port 0 picks a free one). It is always served over TLS
	// demanding a client certificate from a CA whose key is discarded at start, so nothing can
	// talk to it; the scheme given is ignored.
	PeerURL string
	// QuotaBytes is the database size beyond which etcd refuses writes (its NOSPACE alarm);
	// 0 means etcd's default, 2 GiB.
	QuotaBytes int64
	// History is how long past revisions are kept for watches that fall behind; 0 means
	// 5 minutes.
	History time.Duration
	// Log receives the few events an operator must see (NOSPACE handled); nil discards them.
	Log Logger `json:"-"`
	// Fast shortens heartbeats and elections and skips fsync: for tests only.
	Fast bool
}

// Defaults of the embedded etcd's database bounds.
const (
	// defaultQuotaBytes is etcd's own default quota, 2 GiB.
	defaultQuotaBytes = 2 << 30
	// defaultHistory is long enough for the view's watch, which follows in-process, to
	// catch up after any pause short of a restart (which reloads anyway).
	defaultHistory = 5 * time.Minute
)

// defaultPeerURL is the embedded etcd's raft listener unless set otherwise: a free
// loopback port, closed to every client by TLS (see EmbeddedConfig.PeerURL).
const defaultPeerURL = "https://127.0.0.1:0"

// socketName is the file, in the embedded etcd's directory, of its client socket.
const socketName = "client.sock"

// EmbeddedDir is where the registry keeps its embedded etcd under its data directory.
func EmbeddedDir(dataDir string) string { return filepath.Join(dataDir, "etcd") }

// LocalEndpoint is the client endpoint of the embedded etcd of the registry whose data
// directory (the Corefile's `data`) is dataDir, for tools on the same machine run as the
// server's user: a unix:// URL that etcd clients (clientv3, etcdctl --endpoints) accept. It
// fails if no server is listening there.
func LocalEndpoint(dataDir string) (string, error) {
	path, err := filepath.Abs(filepath.Join(EmbeddedDir(dataDir), socketName))
	if err != nil {
		return "", err
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Type() != fs.ModeSocket {
		return "", fmt.Errorf("no embedded etcd socket at %s: is the server running with data %s, as this user?", path, dataDir)
	}
	return "unix://" + path, nil
}

// StartEmbedded starts an etcd server and waits until it serves.
func StartEmbedded(c EmbeddedConfig) (*Embedded, error) {
	cfg, socket, err := embedConfig(&c)
	if err != nil {
		return nil, err
	}
	quiet := &quietOnClose{w: os.Stderr}
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.New(zapcore.NewCore(
		zapcore.NewConsoleEncoder(zap.NewProductionEncoderConfig()), quiet, zap.ErrorLevel)))
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd in %s: %w", c.Dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-time.After(30 * time.Second):
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s did not become ready in 30s", c.Dir)
	}
	// The directory is the process owner's alone already; the socket's own mode says so too.
	if err := os.Chmod(socket, 0o600); err != nil {
		e.Close()
		return nil, fmt.Errorf("embedded etcd socket: %w", err)
	}
	em := &Embedded{etcd: e, log: quiet, socket: socket}
	for _, l := range e.Clients {
		if l.Addr().Network() == "tcp" {
			em.tcp = "http://" + l.Addr().String()
		}
	}
	em.upkeep = startUpkeep(e.Server, c)
	return em, nil
}

// embedConfig is etcd's configuration for c, with defaults filled in, and the socket's path.
func embedConfig(c *EmbeddedConfig) (*embed.Config, string, error) {
	if c.PeerURL == "" {
		c.PeerURL = defaultPeerURL
	}
	if c.QuotaBytes == 0 {
		c.QuotaBytes = defaultQuotaBytes
	}
	if c.History == 0 {
		c.History = defaultHistory
	}
	dir, err := filepath.Abs(c.Dir)
	if err != nil {
		return nil, "", err
	}
	// etcd creates its directory owner-only, but keeps the mode of one that exists: the
	// socket inside must not be reachable by others even for the instant before its chmod.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, "", err
	}
	socket := filepath.Join(dir, socketName)
	if len(socket) >= maxSocketPath {
		return nil, "", fmt.Errorf("embedded etcd socket path %s is longer than a Unix socket allows (%d bytes): use a shorter data directory", socket, maxSocketPath-1)
	}
	clientURLs := []url.URL{{Scheme: "unix", Path: socket}}
	if c.ClientURL != "" {
		curl, err := url.Parse(c.ClientURL)
		if err != nil {
			return nil, "", fmt.Errorf("embedded etcd client url: %w", err)
		}
		clientURLs = append(clientURLs, *curl)
	}
	purl, err := url.Parse(c.PeerURL)
	if err != nil {
		return nil, "", fmt.Errorf("embedded etcd peer url: %w", err)
	}
	purl.Scheme = "https"
	cfg := embed.NewConfig()
	cfg.Name = "registry"
	cfg.Dir = dir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = clientURLs, clientURLs
	cfg.ListenPeerUrls = []url.URL{*purl}
	cfg.AdvertisePeerUrls = []url.URL{*purl}
	cfg.InitialCluster = cfg.Name + "=" + purl.String()
	if cfg.PeerTLSInfo, err = closedPeerTLS(filepath.Join(dir, "peer-tls")); err != nil {
		return nil, "", fmt.Errorf("embedded etcd peer TLS: %w", err)
	}
	cfg.LogLevel = "error"
	cfg.QuotaBackendBytes = c.QuotaBytes
	// Compaction is the upkeep's (upkeep.go), which also defragments and answers NOSPACE.
	cfg.AutoCompactionRetention = "0"
	// etcd keeps the raft entries since its last snapshot in memory (and replays them from the
	// WAL at start), plus SnapshotCatchUpEntries after it for followers. The data itself is in
	// the backend, and an embedded member has no followers: the defaults (10,000 and 5,000)
	// only cost memory and start time, as much as the entries are large.
	cfg.SnapshotCount = embeddedSnapshotCount
	cfg.SnapshotCatchUpEntries = embeddedCatchUpEntries
	if c.Fast {
		cfg.TickMs, cfg.ElectionMs = 10, 50
		cfg.UnsafeNoFsync = true
	}
	return cfg, socket, nil
}

// maxSocketPath is the size of sun_path on Linux, terminating NUL included.
const maxSocketPath = 108

// The embedded member's raft log bounds: a snapshot every embeddedSnapshotCount entries,
// keeping embeddedCatchUpEntries before it.
const (
	embeddedSnapshotCount  = 2000
	embeddedCatchUpEntries = 500
)

// localChunk is how many keys one read of a local scan returns.
const localChunk = 2000

// scan hands fn every key under prefix, in key order, as of one revision, which it returns,
// read from the member's own store: what etcd's RangeStream does for a client, without
// encoding every key and value for the wire and decoding it again in the same process. The
// reads are the ones RangeStream makes (chunks at the first chunk's revision, not counting the
// rest of the range), from the applied state of this single member.
func (e *Embedded) scan(ctx context.Context, prefix string, fn func(*mvccpb.KeyValue)) (int64, error) {
	srv := e.etcd.Server
	r := &pb.RangeRequest{Key: []byte(prefix), RangeEnd: []byte(clientv3.GetPrefixRangeEnd(prefix)), Limit: localChunk}
	for {
		select {
		case <-srv.StopNotify():
			return 0, observe("range", errors.New("the embedded etcd stopped"))
		default:
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		resp, _, err := txn.Range(ctx, srv.Logger(), srv.KV(), r, false)
		if err != nil {
			return 0, observe("range", err)
		}
		if r.Revision == 0 {
			r.Revision = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			fn(kv)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return r.Revision, observe("range", nil)
		}
		r.Key = append(bytes.Clone(resp.Kvs[len(resp.Kvs)-1].Key), 0)
	}
}

// client is an etcd client that calls the member in this process directly (etcd's
// v3client): requests and watch events skip encoding, the loopback connection and decoding.
func (e *Embedded) client() *clientv3.Client { return v3client.New(e.etcd.Server) }

// Endpoints are the client URLs to give Open: the TCP one if ClientURL was set, then the socket.
func (e *Embedded) Endpoints() []string {
	var out []string
	if e.tcp != "" {
		out = append(out, e.tcp)
	}
	return append(out, "unix://"+e.socket)
}

// Close stops the upkeep and the server.
func (e *Embedded) Close() {
	e.upkeep.stop()
	e.log.closing.Store(true)
	e.etcd.Close()
}

// quietOnClose passes etcd's error log through until Close begins: etcd reports each of its
// listeners closing as an error, which on a deliberate shutdown is only noise.
type quietOnClose struct {
	w       io.Writer
	closing atomic.Bool
}

func (q *quietOnClose) Write(p []byte) (int, error) {
	if q.closing.Load() {
		return len(p), nil
	}
	return q.w.Write(p)
}

func (q *quietOnClose) Sync() error { return nil }
