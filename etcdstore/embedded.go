package etcdstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
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
	etcd *embed.Etcd
	log  *quietOnClose
}

// EmbeddedConfig says where the embedded etcd keeps its data and listens.
type EmbeddedConfig struct {
	Dir string
	// ClientURL and PeerURL are the loopback URLs it listens on, e.g. http://127.0.0.1:23790;
	// port 0 picks a free one.
	ClientURL, PeerURL string
	// Fast shortens heartbeats and elections and skips fsync: for tests only.
	Fast bool
}

// Default URLs of the embedded etcd: fixed, so a restart finds its own data and peers.
const (
	DefaultEmbeddedClientURL = "http://127.0.0.1:23790"
	DefaultEmbeddedPeerURL   = "http://127.0.0.1:23800"
)

// StartEmbedded starts an etcd server and waits until it serves.
func StartEmbedded(c EmbeddedConfig) (*Embedded, error) {
	if c.ClientURL == "" {
		c.ClientURL = DefaultEmbeddedClientURL
	}
	if c.PeerURL == "" {
		c.PeerURL = DefaultEmbeddedPeerURL
	}
	curl, err := url.Parse(c.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd client url: %w", err)
	}
	purl, err := url.Parse(c.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd peer url: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name = "registry"
	cfg.Dir = c.Dir
	cfg.ListenClientUrls = []url.URL{*curl}
	cfg.AdvertiseClientUrls = []url.URL{*curl}
	cfg.ListenPeerUrls = []url.URL{*purl}
	cfg.AdvertisePeerUrls = []url.URL{*purl}
	cfg.InitialCluster = cfg.Name + "=" + purl.String()
	cfg.LogLevel = "error"
	quiet := &quietOnClose{w: os.Stderr}
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.New(zapcore.NewCore(
		zapcore.NewConsoleEncoder(zap.NewProductionEncoderConfig()), quiet, zap.ErrorLevel)))
	// Keep a day of history for watches that fall behind; older revisions are compacted.
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "24h"
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
	return &Embedded{etcd: e, log: quiet}, nil
}

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

// Endpoints are the client URLs to give Open.
func (e *Embedded) Endpoints() []string {
	var out []string
	for _, l := range e.etcd.Clients {
		out = append(out, "http://"+l.Addr().String())
	}
	return out
}

// Close stops the server.
func (e *Embedded) Close() {
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
