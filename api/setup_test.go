package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clog "github.com/coredns/coredns/plugin/pkg/log"
	"github.com/regdns/regdns/api/mailtest"
	"github.com/regdns/regdns/etcdstore"
	"github.com/regdns/regdns/etcdstore/etcdtest"
)

const zone = "mydomain.org"

// testEtcd is the embedded etcd every test shares; each test keeps its records under its own prefix.
var testEtcd *etcdstore.Embedded

func TestMain(m *testing.M) {
	// The access log is written at debug level; turning it on lets the tests see it.
	clog.D.Set()
	var stop func()
	var err error
	testEtcd, stop, err = etcdtest.StartShared()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

var prefixes atomic.Int64

// openStore opens a store on e under a prefix no other test uses.
func openStore(t testing.TB, e *etcdstore.Embedded) *etcdstore.Store {
	t.Helper()
	return openStoreAt(t, e, fmt.Sprintf("/api-test/%d/", prefixes.Add(1)))
}

// openStoreAt opens a store on e under prefix: a second one on a prefix is another replica.
func openStoreAt(t testing.TB, e *etcdstore.Embedded, prefix string) *etcdstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := etcdstore.Open(ctx, etcdstore.Config{
		Endpoints: e.Endpoints(),
		Prefix:    prefix,
	})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.View().WaitLoaded(ctx); err != nil {
		t.Fatalf("view not loaded: %v", err)
	}
	return s
}

// env is one API server over HTTP on loopback, with its store and the SMTP server its mail goes to.
type env struct {
	store *etcdstore.Store
	api   *Server
	url   string
	smtp  *mailtest.Server
}

// newEnv starts an API on the shared etcd; configure may change the config before New.
func newEnv(t testing.TB, configure func(*Config)) *env {
	t.Helper()
	return newEnvOn(t, openStore(t, testEtcd), configure)
}

func newEnvOn(t testing.TB, store *etcdstore.Store, configure func(*Config)) *env {
	t.Helper()
	sink := &mailtest.Server{}
	ts := httptest.NewUnstartedServer(nil)
	base := "http://" + ts.Listener.Addr().String()
	cfg := Config{
		Zone:      zone,
		Mailer:    SMTPMailer{Addr: sink.Start(t, "none", nil), Security: "none", From: "Registry <registry@mydomain.org>"},
		VerifyURL: base + "/verifyemail",
		// Tests send bursts from one address, many mails to one recipient and many changes
		// of one name; the rate limit tests set their own limits.
		ClientLimit: RateLimit{Rate: -1},
		MailLimit:   RateLimit{Rate: -1},
		WriteLimit:  RateLimit{Rate: -1},
	}
	if configure != nil {
		configure(&cfg)
	}
	api, err := New(store, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts.Config.Handler = api
	ts.Start()
	t.Cleanup(ts.Close)
	return &env{store: store, api: api, url: base, smtp: sink}
}

// newEnvSMTPUTF8 is newEnv with an SMTP server that offers SMTPUTF8 or not.
func newEnvSMTPUTF8(t testing.TB, smtputf8 bool, configure func(*Config)) *env {
	t.Helper()
	sink := &mailtest.Server{SMTPUTF8: smtputf8}
	e := newEnv(t, func(c *Config) {
		c.Mailer = SMTPMailer{Addr: sink.Start(t, "none", nil), Security: "none", From: "Registry <registry@mydomain.org>"}
		if configure != nil {
			configure(c)
		}
	})
	e.smtp = sink
	return e
}

// reply is an HTTP response, read whole.
type reply struct {
	status int
	header http.Header
	body   string
}

// code is the error code of a JSON error reply.
func (r reply) code() string {
	var e struct{ Error, Message string }
	json.Unmarshal([]byte(r.body), &e)
	return e.Error
}

// reason is the finer reason of a JSON error reply, "" if it gives none.
func (r reply) reason() string {
	var e struct{ Reason string }
	json.Unmarshal([]byte(r.body), &e)
	return e.Reason
}

// get calls path with the query given as key, value pairs.
func (e *env) get(t *testing.T, path string, kv ...string) reply {
	t.Helper()
	return e.do(t, http.MethodGet, nil, path, kv...)
}

func (e *env) do(t *testing.T, method string, header http.Header, path string, kv ...string) reply {
	t.Helper()
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Add(kv[i], kv[i+1])
	}
	u := e.url + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return fetch(t, method, header, u)
}

func fetch(t *testing.T, method string, header http.Header, u string) reply {
	t.Helper()
	r, err := request(method, header, u)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// request is fetch for goroutines other than the test's own, which must not call t.Fatal.
func request(method string, header http.Header, u string) (reply, error) {
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		return reply{}, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	client := http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

// ok calls path and fails the test unless it answers 200.
func (e *env) ok(t *testing.T, path string, kv ...string) reply {
	t.Helper()
	r := e.get(t, path, kv...)
	if r.status != http.StatusOK {
		t.Fatalf("%s %v: %d %s", path, kv, r.status, r.body)
	}
	return r
}

// fails calls path and fails the test unless it answers 400 with code.
func (e *env) fails(t *testing.T, code, path string, kv ...string) reply {
	t.Helper()
	r := e.get(t, path, kv...)
	if r.status != http.StatusBadRequest || r.code() != code {
		t.Fatalf("%s %v: got %d %s, want 400 %s", path, kv, r.status, r.body, code)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json", path, ct)
	}
	return r
}

// unavailable calls path and fails the test unless it refuses the name as the gateway must
// read it: 400 UnavailableName, with reason.
func (e *env) unavailable(t *testing.T, reason, path string, kv ...string) reply {
	t.Helper()
	r := e.fails(t, "UnavailableName", path, kv...)
	if r.reason() != reason {
		t.Errorf("%s %v: reason %q, want %q (%s)", path, kv, r.reason(), reason, r.body)
	}
	return r
}

// subscribe registers name and returns its token.
func (e *env) subscribe(t *testing.T, name string, kv ...string) string {
	t.Helper()
	r := e.ok(t, "/subscribe", append([]string{"name", name}, kv...)...)
	var out struct{ Name, Token string }
	if err := json.Unmarshal([]byte(r.body), &out); err != nil || out.Token == "" {
		t.Fatalf("subscribe %s: %q: %v", name, r.body, err)
	}
	return out.Token
}

// info returns the /info object of token.
func (e *env) info(t *testing.T, token string) map[string]any {
	t.Helper()
	r := e.ok(t, "/info", "token", token)
	var out map[string]any
	if err := json.Unmarshal([]byte(r.body), &out); err != nil {
		t.Fatalf("info: %q: %v", r.body, err)
	}
	return out
}

// verifyLink asks for addr to be set on token's name and returns the link from the mail.
func (e *env) verifyLink(t *testing.T, token, addr string) string {
	t.Helper()
	e.ok(t, "/setemail", "token", token, "email", addr)
	return e.smtp.Last(t).Line(t, e.url+"/verifyemail?s=")
}

// verify makes addr the verified email of token's name.
func (e *env) verify(t *testing.T, token, addr string) {
	t.Helper()
	if r := fetch(t, http.MethodGet, nil, e.verifyLink(t, token, addr)); r.status != http.StatusOK {
		t.Fatalf("verify link: %d %s", r.status, r.body)
	}
}

// reclamationToken asks for a reclamation token for name and returns it from the mail.
func (e *env) reclamationToken(t *testing.T, name string) string {
	t.Helper()
	e.ok(t, "/reclaim", "name", name)
	return tokenLine(t, e.smtp.Last(t))
}

// tokenLine returns the body line of m that is a UUID, the reclamation token.
func tokenLine(t *testing.T, m mailtest.Message) string {
	t.Helper()
	_, body := m.Parse(t)
	for l := range strings.SplitSeq(body, "\r\n") {
		if isUUID(l) {
			return l
		}
	}
	t.Fatalf("no token line in mail:\n%s", body)
	return ""
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case (c < '0' || c > '9') && (c < 'a' || c > 'f'):
			return false
		}
	}
	return true
}

// stored returns the record of name straight from the store.
func (e *env) stored(t *testing.T, name string) *etcdstore.Record {
	t.Helper()
	d, err := e.store.Get(context.Background(), etcdstore.ByName(name))
	if err != nil {
		t.Fatalf("stored %s: %v", name, err)
	}
	return &d
}
