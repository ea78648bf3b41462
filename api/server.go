package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"text/template"
	"time"

	clog "github.com/coredns/coredns/plugin/pkg/log"
	"github.com/julienschmidt/httprouter"
	"github.com/regdns/regdns/etcdstore"
)

var log = clog.NewWithPlugin("registry")

// Store is what the API needs from storage; *etcdstore.Store satisfies it.
type Store interface {
	Create(ctx context.Context, d etcdstore.Record) error
	Get(ctx context.Context, sel etcdstore.Selector) (etcdstore.Record, error)
	Update(ctx context.Context, sel etcdstore.Selector, fn func(*etcdstore.Record) error) (etcdstore.Record, error)
	Delete(ctx context.Context, sel etcdstore.Selector, check func(*etcdstore.Record) error) (etcdstore.Record, error)
	// LookupToken is the record of an API token as this replica's view holds it (maybe slightly behind).
	LookupToken(token string) (etcdstore.Record, bool)
}

// Config holds the settings of a Server.
type Config struct {
	Zone           string         // e.g. "mydomain.org" (no trailing dot); names are <name>.<Zone>
	Reserved       []string       // operator's extra reserved names (besides builtinReserved, ns and ns<digits>)
	TrustedProxies []netip.Prefix // peers whose X-Real-IP / X-Forwarded-For are believed
	Locator        Locator        // nil: no GeoIP, continent left empty
	Mailer         Mailer         // required
	VerifyURL      string         // base of the verification link; default "https://api.<Zone>/verifyemail"
	Templates      Templates      // zero fields are filled from DefaultTemplates()
	ChallengeKeep  int            // challenge values kept per name; default 2 (minimum 2)
	VerifyTTL      time.Duration  // lifetime of a verification link; default 24h
	ReclaimTTL     time.Duration  // lifetime of a reclamation token; default 24h
	// PingGranularity is how precisely the last ping's time is kept: a ping from unchanged
	// addresses within it of the last recorded one writes nothing. Default
	// DefaultPingGranularity; keep it well under any expiry period.
	PingGranularity time.Duration

	// AllowPrivateAddrs accepts loopback, private, link-local and special-purpose addresses in
	// the ip and ipv6 parameters, for test setups on a LAN. Unspecified, multicast and
	// broadcast addresses are refused even then: they are never a gateway's address.
	AllowPrivateAddrs bool
	// ClientLimit bounds the requests per caller address (IPv6: per /64) to /subscribe,
	// /reclaim and /setemail together; default {Rate: 1, Burst: 20}; a negative Rate turns it off.
	ClientLimit RateLimit
	// MaxConcurrent bounds the requests in progress; beyond it, requests get 503 Busy at once
	// rather than queue behind a slow etcd. Default 256.
	MaxConcurrent int
	// MailLimit bounds the mails per name and, separately, per recipient mailbox (see
	// mailbox), so that no set of names can flood one mailbox; checked before anything is
	// stored. Mail the owner asks for (/setemail) and reclamation mail anyone can ask for
	// (/reclaim) have separate budgets, so that strangers cannot use up the owner's.
	// Default {Rate: 1.0 / 60, Burst: 10}: one person can set up ten gateways with one
	// mailbox at once, then one a minute. A negative Rate turns it off.
	MailLimit RateLimit
	// WriteLimit bounds the changes per name through /dnsconfig, /ping (those that write),
	// /setemail and /revokeemail together, so that no token turns the API into an etcd write
	// amplifier. Default {Rate: 1.0 / 60, Burst: 10}; a negative Rate turns it off.
	WriteLimit RateLimit
	// AuditOff stops the audit log, one INFO line per call that changes a name.
	AuditOff bool
}

// Defaults of Config.
const (
	defaultChallengeKeep = 2
	defaultVerifyTTL     = 24 * time.Hour
	defaultReclaimTTL    = 24 * time.Hour
	defaultMaxConcurrent = 256
)

// DefaultPingGranularity is Config.PingGranularity's default: gateways ping hourly, so each
// costs etcd one write in this time, yet the last ping is known to within it.
const DefaultPingGranularity = 6 * time.Hour

// Server answers the registration API.
type Server struct {
	store           Store
	zone            string
	reserved        map[string]bool
	trustedProxies  []netip.Prefix
	locator         Locator
	mailer          Mailer
	verifyURL       string
	challengeKeep   int
	verifyTTL       time.Duration
	reclaimTTL      time.Duration
	pingGranularity time.Duration
	allowPrivate    bool
	clientLimit     *limiter // nil: off
	mailLimit       *limiter // nil: off
	writeLimit      *limiter // nil: off
	errorLog        *repeatLog
	slots           chan struct{} // one per request in progress
	audit           bool

	verifySubject, verifyBody   *template.Template
	reclaimSubject, reclaimBody *template.Template
	successPage, errorPage      *htmltemplate.Template

	router *httprouter.Router
}

// New checks cfg, fills in its defaults and returns a Server storing into store.
func New(store Store, cfg Config) (*Server, error) {
	if store == nil {
		return nil, errors.New("api: no store")
	}
	if cfg.Mailer == nil {
		return nil, errors.New("api: no mailer")
	}
	if cfg.MaxConcurrent < 0 {
		return nil, fmt.Errorf("api: negative max concurrent requests %d", cfg.MaxConcurrent)
	}
	zone := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(cfg.Zone), "."))
	if zone == "" || len(zone) > 251 {
		return nil, fmt.Errorf("api: invalid zone %q", cfg.Zone)
	}
	s := &Server{
		store:           store,
		zone:            zone,
		reserved:        reservedNames(cfg.Reserved),
		trustedProxies:  cfg.TrustedProxies,
		locator:         cfg.Locator,
		mailer:          cfg.Mailer,
		verifyURL:       orDefault(cfg.VerifyURL, "https://api."+zone+"/verifyemail"),
		challengeKeep:   orDefault(cfg.ChallengeKeep, defaultChallengeKeep),
		verifyTTL:       orDefault(cfg.VerifyTTL, defaultVerifyTTL),
		reclaimTTL:      orDefault(cfg.ReclaimTTL, defaultReclaimTTL),
		pingGranularity: orDefault(cfg.PingGranularity, DefaultPingGranularity),
		allowPrivate:    cfg.AllowPrivateAddrs,
		errorLog:        newRepeatLog(repeatWindow, log.Errorf),
		slots:           make(chan struct{}, orDefault(cfg.MaxConcurrent, defaultMaxConcurrent)),
		audit:           !cfg.AuditOff,
	}
	// Two values at once is what ACME needs to validate a name and its wildcard together.
	if s.challengeKeep < 2 {
		return nil, fmt.Errorf("api: challenge keep %d is below 2", s.challengeKeep)
	}
	if s.verifyTTL < 0 || s.reclaimTTL < 0 {
		return nil, errors.New("api: negative verification or reclamation lifetime")
	}
	// The link is built as verifyURL + "?s=" + id, so the base must be a plain absolute URL.
	if u, err := url.Parse(s.verifyURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("api: invalid verify URL %q", s.verifyURL)
	}
	var err error
	if s.clientLimit, err = newLimiter(cfg.ClientLimit, defaultClientLimit); err != nil {
		return nil, fmt.Errorf("api: client limit: %w", err)
	}
	if s.mailLimit, err = newLimiter(cfg.MailLimit, defaultMailLimit); err != nil {
		return nil, fmt.Errorf("api: mail limit: %w", err)
	}
	if s.writeLimit, err = newLimiter(cfg.WriteLimit, defaultWriteLimit); err != nil {
		return nil, fmt.Errorf("api: write limit: %w", err)
	}
	if err = s.parseTemplates(cfg.Templates); err != nil {
		return nil, err
	}
	s.router = s.routes()
	return s, nil
}

// orDefault returns v, or def if v is the zero value.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// endpoint is one route of the API.
type endpoint struct {
	handle func(w http.ResponseWriter, r *http.Request) error
	// cors lets browsers call it from the gateway's web UI.
	cors bool
	// page answers errors as an HTML page, for links a person clicks.
	page bool
	// limited counts it against the caller's ClientLimit: it creates names or sends mail.
	limited bool
	// changes names: each call is in the audit log.
	changes bool
}

func (s *Server) routes() *httprouter.Router {
	router := httprouter.New()
	for path, e := range map[string]endpoint{
		"/subscribe":          {handle: s.subscribe, cors: true, limited: true, changes: true},
		"/unsubscribe":        {handle: s.unsubscribe, cors: true, changes: true},
		"/reclaim":            {handle: s.reclaim, cors: true, limited: true, changes: true},
		"/ping":               {handle: s.ping, cors: true, changes: true},
		"/dnsconfig":          {handle: s.dnsconfig, cors: true, changes: true},
		"/info":               {handle: s.info, cors: true},
		"/setemail":           {handle: s.setEmail, cors: true, limited: true, changes: true},
		"/verifyemail":        {handle: s.verifyEmail, page: true, changes: true},
		"/revokeemail":        {handle: s.revokeEmail, cors: true, changes: true},
		"/connectivity-check": {handle: connectivityCheck, cors: true},
	} {
		router.GET(path, func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
			if e.cors {
				w.Header().Set("Access-Control-Allow-Origin", "*")
			}
			audited(r.Context()).changes = e.changes
			var err error
			if wait := s.limit(r, e.limited); wait > 0 {
				err = rateLimited(wait, "from your address")
			} else {
				err = e.handle(w, r)
			}
			if err != nil {
				s.writeError(w, r, err, e.page)
			}
		})
		if e.cors {
			router.OPTIONS(path, preflight)
		}
	}
	return router
}

// limit counts r against the ClientLimit of its caller if limited, and returns how long the
// caller has to wait if it is over.
func (s *Server) limit(r *http.Request, limited bool) time.Duration {
	if !limited {
		return 0
	}
	return s.clientLimit.allow(time.Now(), clientKey(s.caller(r)))
}

func preflight(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET")
	h.Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusNoContent)
}

// ServeHTTP routes r to its endpoint, then counts and logs it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	// Read before routing: the router rewrites the path of requests it redirects.
	path, caller := r.URL.Path, s.caller(r)
	// Unknown paths share one label so that scanners cannot grow the metric without bound.
	name := "other"
	if h, _, _ := s.router.Lookup(http.MethodGet, path); h != nil {
		name = strings.TrimPrefix(path, "/")
	}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	audit := &auditRecord{}
	if s.audit {
		r, audit = withAudit(r)
	}
	s.serveInSlot(rec, r)
	took := time.Since(start)
	audit.write(path, caller, rec.status)

	requests.WithLabelValues(name, strconv.Itoa(rec.status)).Inc()
	requestDuration.WithLabelValues(name).Observe(took.Seconds())
	// The query string holds the secrets, so only the path is logged; %q keeps it on one line.
	log.Debugf("%s %q %d %s %s", r.Method, path, rec.status, took.Round(time.Microsecond), caller)
}

// errBusy answers a request beyond MaxConcurrent.
var errBusy = &clientError{Code: "Busy", Message: "Too many requests in progress; try again shortly.", status: http.StatusServiceUnavailable, retryAfter: 1}

// serveInSlot routes r if fewer than MaxConcurrent requests are in progress, and answers 503
// Busy at once otherwise, so that a flood queues nothing behind a slow etcd.
func (s *Server) serveInSlot(w http.ResponseWriter, r *http.Request) {
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
		s.router.ServeHTTP(w, r)
	default:
		s.writeError(w, r, errBusy, false)
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (rec *statusRecorder) WriteHeader(code int) {
	rec.status = code
	rec.ResponseWriter.WriteHeader(code)
}

// clientError is a request the client has to change: a 400 (or status) with a code the
// gateway acts on, and a finer reason where the code is one the gateway must read unchanged.
type clientError struct {
	Code    string `json:"error"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message"`

	status     int // 0: 400
	retryAfter int // seconds; sent as Retry-After if not 0
}

func (e *clientError) Error() string { return e.Code + ": " + e.Message }

func badRequest(code, format string, args ...any) error {
	return &clientError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// unavailableName refuses a requested name. The gateway in the field reads an error
// containing "UnavailableName" as "this name cannot be had" and anything else as a failed
// certificate (and then retries the same name forever), so every refusal of a name carries
// that code, and reason says which refusal it is.
func unavailableName(reason, format string, args ...any) error {
	return &clientError{Code: "UnavailableName", Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// writeError answers a failed request. A change that kept losing to concurrent ones is a 503
// Busy, to be retried. Anything else but a clientError is logged (identical lines once per
// repeatWindow) and answered with a 501 that tells nothing, since it may come from etcd or the
// mail server.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error, page bool) {
	var ce *clientError
	switch {
	case errors.As(err, &ce):
	case errors.Is(err, etcdstore.ErrConflict):
		ce = &clientError{Code: "Busy", Message: "Too many changes of this name at once; try again shortly.", status: http.StatusServiceUnavailable, retryAfter: 1}
	default:
		s.errorLog.print(r.URL.Path + ": " + err.Error())
		ce = &clientError{Code: "InternalError", Message: "The request could not be completed; try again later.", status: http.StatusNotImplemented}
	}
	status := orDefault(ce.status, http.StatusBadRequest)
	if ce.retryAfter != 0 {
		w.Header().Set("Retry-After", strconv.Itoa(ce.retryAfter))
	}
	if page {
		s.writePage(w, status, s.errorPage, templateData{Zone: s.zone, Message: ce.Message})
		return
	}
	writeJSON(w, status, ce)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		log.Debugf("writing response: %v", err)
	}
}

func (s *Server) writePage(w http.ResponseWriter, status int, t *htmltemplate.Template, data templateData) {
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		log.Errorf("page %s: %v", t.Name(), err)
		http.Error(w, "internal error", http.StatusNotImplemented)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write([]byte(b.String()))
}

// caller is the address of the client: the peer, unless the peer is a trusted proxy, in which
// case the address that proxy reports.
func (s *Server) caller(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	peer := ap.Addr().Unmap().WithZone("")
	if !s.trusted(peer) {
		return peer
	}
	if a, err := netip.ParseAddr(strings.TrimSpace(r.Header.Get("X-Real-IP"))); err == nil {
		return a.Unmap().WithZone("")
	}
	// Each proxy appends the address it saw, so the first untrusted entry from the right is
	// the last one a trusted proxy wrote; everything left of it is the client's own claim.
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		if a = a.Unmap().WithZone(""); !s.trusted(a) {
			return a
		}
	}
	return peer
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.trustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Locator maps an address to a continent code (AF AN AS EU NA OC SA) or "", as a
// geoip.DB does.
type Locator interface {
	Continent(addr netip.Addr) string
}

// continent locates a, or is empty without a Locator.
func (s *Server) continent(a netip.Addr) string {
	if s.locator == nil || !a.IsValid() {
		return ""
	}
	return s.locator.Continent(a)
}
