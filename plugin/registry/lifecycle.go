package registry

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/regdns/regdns/api"
	"github.com/regdns/regdns/api/geoip"
	"github.com/regdns/regdns/etcdstore"
)

// loadWait is how long startup waits for the zone to load before serving SERVFAIL meanwhile.
const loadWait = 10 * time.Second

var (
	embeds    shared[embeddedEtcd]
	stores    shared[*etcdstore.Store]
	listeners shared[*api.Listener]
)

// running is what start acquired and stop gives back.
type running struct {
	storeKey string
	apiKey   string
	geo      *geoip.DB
	api      http.Handler
	conns    api.ConnLimits
	cert     *tls.Certificate   // nil: plain HTTP
	cancel   context.CancelFunc // stops the NOTIFY and expiry loops
}

// start runs at OnStartup: it acquires etcd and the view (kept across reloads), then puts
// this instance's API behind the shared listener.
func (r *Registry) start() error {
	run := &running{storeKey: r.cfg.storeKey(), apiKey: r.cfg.APIAddr}
	store, err := stores.acquire(run.storeKey, r.openStore)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			stores.release(run.storeKey)
			if run.geo != nil {
				run.geo.Close()
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), loadWait)
	defer cancel()
	if err := store.View().WaitLoaded(ctx); err != nil {
		log.Warningf("zone not loaded from etcd within %s; answering SERVFAIL until it is", loadWait)
	}
	r.view.Store(store.View())

	apiCfg := r.cfg.APIConfig(r.zone)
	if run.conns, err = r.apiConnLimits(); err != nil {
		return err
	}
	if apiCfg.Mailer, err = r.mailer(); err != nil {
		return err
	}
	if r.cfg.GeoIP != "" {
		if run.geo, err = geoip.Open(r.cfg.GeoIP); err != nil {
			return fmt.Errorf("geoip: %w", err)
		}
		apiCfg.Locator = run.geo
		r.geo.Store(run.geo)
	}
	if run.api, err = api.New(store, apiCfg); err != nil {
		return err
	}
	var cert *tls.Certificate
	if r.cfg.APICert != "" {
		c, err := tls.LoadX509KeyPair(r.cfg.APICert, r.cfg.APIKey)
		if err != nil {
			return fmt.Errorf("api_tls: %w", err)
		}
		cert, run.apiKey = &c, run.apiKey+"|tls"
		run.cert = cert
	}
	ln, err := listeners.acquire(run.apiKey, func() (*api.Listener, func(), error) { return listenAPI(r.cfg.APIAddr, cert != nil, run.conns) })
	if err != nil {
		return fmt.Errorf("api listener: %w", err)
	}
	ln.Serve(run.api, cert, run.conns)
	log.Infof("API listening on %s://%s", ln.Scheme(), ln.Addr())
	var nctx context.Context
	nctx, run.cancel = context.WithCancel(context.Background())
	if r.xfer != nil {
		go r.notifyChanges(nctx, store.View())
	}
	if r.cfg.Expire > 0 {
		go r.sweepExpired(nctx, store)
	}
	r.run, ok = run, true
	return nil
}

// restartFailed puts this instance's API back after a reload that started and then failed.
func (r *Registry) restartFailed() error {
	if r.run == nil {
		return nil
	}
	ln, err := listeners.acquire(r.run.apiKey, func() (*api.Listener, func(), error) {
		return listenAPI(r.cfg.APIAddr, r.run.cert != nil, r.run.conns)
	})
	if err != nil {
		return err
	}
	defer listeners.release(r.run.apiKey)
	ln.Serve(r.run.api, r.run.cert, r.run.conns)
	return nil
}

// stop runs at OnShutdown (after a reload's new instance started, or at exit). The view
// stays readable, so queries still in flight are answered from its last state.
func (r *Registry) stop() error {
	if r.run == nil {
		return nil
	}
	r.run.cancel()
	listeners.release(r.run.apiKey)
	stores.release(r.run.storeKey)
	if r.run.geo != nil {
		r.run.geo.Close()
	}
	r.run = nil
	return nil
}

// apiConnLimits are the API listener's connection caps under this process's open-file limit.
func (r *Registry) apiConnLimits() (api.ConnLimits, error) {
	nofile, err := openFileLimit()
	if err != nil {
		return api.ConnLimits{}, fmt.Errorf("open file limit: %w", err)
	}
	limits, lowered := r.cfg.apiConnLimits(nofile)
	if lowered {
		log.Warningf("api_max_connections %d lowered to %d: the open file limit (ulimit -n) is %d", r.cfg.APIMaxConns, limits.Total, nofile)
	}
	log.Infof("API connections capped at %d in total and %d per client address (open file limit %d)", limits.Total, limits.PerClient, nofile)
	return limits, nil
}

// storeKey identifies the etcd and prefix this block reads, to share them across blocks and reloads.
func (c Config) storeKey() string {
	e := c.Etcd
	if len(e.Endpoints) == 0 {
		return strings.Join([]string{c.embeddedKey(), e.Prefix}, "|")
	}
	return strings.Join([]string{strings.Join(e.Endpoints, ","), e.Prefix, e.Username, e.Password, e.CertFile, e.KeyFile, e.CAFile, e.Timeout.String()}, "|")
}

// embeddedKey identifies the embedded etcd a block runs, shared by blocks of any prefix. The
// quota is not part of it: a reload that changes it keeps the running etcd (one data
// directory takes one etcd), so a new quota takes a restart.
func (c Config) embeddedKey() string {
	return strings.Join([]string{"embedded", c.DataDir, c.Embedded.ClientURL, c.Embedded.PeerURL}, "|")
}

func (r *Registry) openStore() (*etcdstore.Store, func(), error) {
	ecfg := r.cfg.Etcd
	ecfg.Log = log
	release := func() {}
	if len(ecfg.Endpoints) == 0 {
		ec := r.cfg.Embedded
		ec.Dir, ec.Log = etcdstore.EmbeddedDir(r.cfg.DataDir), log
		key := r.cfg.embeddedKey()
		e, err := embeds.acquire(key, func() (embeddedEtcd, func(), error) {
			if err := os.MkdirAll(r.cfg.DataDir, 0o700); err != nil {
				return nil, nil, err
			}
			e, err := startEmbedded(ec, r.cfg.EtcdInline)
			if err != nil {
				return nil, nil, err
			}
			if ec.ClientURL != "" {
				log.Warningf("embedded etcd also serves %s without authentication (etcd_listen): any local process can read every API token there", ec.ClientURL)
			}
			log.Infof("embedded etcd serving %s with data in %s", strings.Join(e.Endpoints(), ","), ec.Dir)
			return e, e.Close, nil
		})
		if err != nil {
			return nil, nil, err
		}
		// In this process, the store calls the member directly; in a child process, through
		// its socket, as any client.
		ecfg.Endpoints = e.Endpoints()
		ecfg.Local, _ = e.(*etcdstore.Embedded)
		ecfg.EmbeddedProcess = ecfg.Local == nil
		release = func() { embeds.release(key) }
	}
	s, err := etcdstore.Open(context.Background(), ecfg)
	if err != nil {
		release()
		return nil, nil, err
	}
	return s, func() { s.Close(); release() }, nil
}

// embeddedEtcd is the embedded etcd of a data directory: an *etcdstore.Embedded in this
// process, or an *etcdstore.EmbeddedProcess.
type embeddedEtcd interface {
	Endpoints() []string
	Close()
}

// startEmbedded runs the embedded etcd in a child process when the binary allows it (the
// server's does: build/main.go) and inline is false, so that its heap is not the DNS
// process's; else in this one.
func startEmbedded(ec etcdstore.EmbeddedConfig, inline bool) (embeddedEtcd, error) {
	if etcdstore.EmbeddedProcessEnabled() && !inline {
		p, err := etcdstore.StartEmbeddedProcess(ec)
		if err != nil {
			return nil, err
		}
		log.Infof("embedded etcd runs in process %d", p.PID())
		return p, nil
	}
	e, err := etcdstore.StartEmbedded(ec)
	if err != nil {
		return nil, err
	}
	return e, nil
}

func (r *Registry) mailer() (api.Mailer, error) {
	if r.cfg.SMTP.Addr != "" {
		m := r.cfg.SMTP
		return &m, nil
	}
	dir := filepath.Join(r.cfg.DataDir, "mail")
	log.Warningf("no smtp server configured: mail is NOT sent, each message is written to %s", dir)
	return &api.DirMailer{Dir: dir}, nil
}

// listenAPI opens the API's listener as a shared resource.
func listenAPI(addr string, withTLS bool, conns api.ConnLimits) (*api.Listener, func(), error) {
	l, err := api.Listen(addr, withTLS, conns)
	if err != nil {
		return nil, nil, err
	}
	return l, l.Close, nil
}
