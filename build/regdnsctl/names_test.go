package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/regdns/regdns/api"
	"github.com/regdns/regdns/etcdstore"
)

// liveRegistry plays the running server: its embedded etcd on the Corefile's data directory
// (reached by the tool through the owner-only socket), a Store with its view, and the HTTP API
// on that Store, as the plugin runs them.
type liveRegistry struct {
	t     *testing.T
	conf  string
	e     *etcdstore.Embedded
	store *etcdstore.Store
	url   string
}

func startRegistry(t *testing.T) *liveRegistry {
	t.Helper()
	conf := testCorefile(t, "        etcd_prefix /reg/")
	cfg, err := registryConfig(conf, "")
	if err != nil {
		t.Fatal(err)
	}
	r := &liveRegistry{t: t, conf: conf}
	if r.e, err = etcdstore.StartEmbedded(embeddedOf(cfg, true)); err != nil {
		t.Fatal(err)
	}
	if r.store, err = etcdstore.Open(t.Context(), etcdstore.Config{Endpoints: r.e.Endpoints(), Prefix: "/reg/"}); err != nil {
		r.e.Close()
		t.Fatal(err)
	}
	srv, err := api.New(r.store, api.Config{
		Zone: "example.org", Mailer: api.DirMailer{Dir: t.TempDir()},
		ClientLimit: api.RateLimit{Rate: -1}, MailLimit: api.RateLimit{Rate: -1}, WriteLimit: api.RateLimit{Rate: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	r.url = ts.URL
	t.Cleanup(func() { ts.Close(); r.stop() })
	if err := r.store.View().WaitLoaded(t.Context()); err != nil {
		t.Fatal(err)
	}
	return r
}

// stop stops the server; stopping it twice is harmless.
func (r *liveRegistry) stop() {
	if r.store != nil {
		r.store.Close()
		r.e.Close()
		r.store = nil
	}
}

// call gets an API path and returns the status and the JSON error code ("" for none).
func (r *liveRegistry) call(path string, kv ...string) (int, string, string) {
	r.t.Helper()
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	resp, err := http.Get(r.url + path + "?" + q.Encode())
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e struct{ Error string }
	json.Unmarshal(body, &e)
	return resp.StatusCode, e.Error, string(body)
}

// expect fails the test unless path answers status with error code.
func (r *liveRegistry) expect(status int, code, path string, kv ...string) string {
	r.t.Helper()
	got, gotCode, body := r.call(path, kv...)
	if got != status || gotCode != code {
		r.t.Fatalf("%s %v: %d %s, want %d %q", path, kv, got, body, status, code)
	}
	return body
}

func (r *liveRegistry) subscribe(name string, kv ...string) string {
	r.t.Helper()
	body := r.expect(200, "", "/subscribe", append([]string{"name", name}, kv...)...)
	var out struct{ Token string }
	json.Unmarshal([]byte(body), &out)
	return out.Token
}

// ctl runs the tool on the registry's Corefile and fails the test unless it exits with want.
func (r *liveRegistry) ctl(want int, args ...string) string {
	r.t.Helper()
	code, stdout, stderr := regdnsctl(append([]string{"-conf", r.conf}, args...)...)
	if code != want {
		r.t.Fatalf("regdnsctl %v: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, want, stdout, stderr)
	}
	return stdout
}

// ctlJSON runs the tool with --json and decodes its output into v.
func (r *liveRegistry) ctlJSON(v any, args ...string) {
	r.t.Helper()
	out := r.ctl(exitOK, append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		r.t.Fatalf("regdnsctl %v --json: %v\n%s", args, err, out)
	}
}

func TestNamesListAndShow(t *testing.T) {
	r := startRegistry(t)
	alphaToken := r.subscribe("alpha", "mode", "1", "ip", "93.184.216.34")
	r.subscribe("beta")
	r.subscribe("albert")
	r.expect(200, "", "/setemail", "token", alphaToken, "email", "owner@example.org")
	if _, err := r.store.Update(t.Context(), etcdstore.ByName("beta"), func(d *etcdstore.Record) error {
		d.LastPing = time.Now().Add(-48 * time.Hour)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	names := func(args ...string) []string {
		var list []nameView
		r.ctlJSON(&list, append([]string{"names", "list"}, args...)...)
		var out []string
		for _, v := range list {
			if v.Token != "" {
				t.Errorf("names list shows %s's token", v.Name)
			}
			out = append(out, v.Name)
		}
		return out
	}
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{nil, []string{"albert", "alpha", "beta"}},
		{[]string{"--prefix", "AL"}, []string{"albert", "alpha"}},
		{[]string{"--mode", "dynamic"}, []string{"alpha"}},
		{[]string{"--mode", "tunnel", "--stale", "24h"}, []string{"beta"}},
		{[]string{"--stale", "72h"}, nil},
	} {
		if got := names(tt.args...); !slices.Equal(got, tt.want) {
			t.Errorf("names list %v: %v, want %v", tt.args, got, tt.want)
		}
	}
	if out := r.ctl(exitOK, "names", "list"); !strings.Contains(out, "alpha") || !strings.Contains(out, "owner@example.org (unverified)") {
		t.Errorf("names list:\n%s", out)
	}

	var v nameView
	r.ctlJSON(&v, "names", "show", " Alpha ")
	if v.Name != "alpha" || v.Token != "" || v.Mode != "dynamic" || v.IPv4 != "93.184.216.34" || v.Email != "owner@example.org" || v.EmailVerified || v.Verification == nil || !isHex64(v.Verification.Hash) {
		t.Errorf("names show alpha: %+v", v)
	}
	if out := r.ctl(exitOK, "names", "show", "alpha"); strings.Contains(out, alphaToken) || !strings.Contains(out, "verification:") {
		t.Errorf("names show without --show-secrets:\n%s", out)
	}
	r.ctlJSON(&v, "names", "show", "alpha", "--show-secrets")
	if v.Token != alphaToken {
		t.Errorf("--show-secrets: token %q, want the API token", v.Token)
	}
	r.ctl(exitNotFound, "names", "show", "nobody")
	r.ctl(exitError, "names", "show")
	r.ctl(exitError, "names", "list", "--mode", "other")
	r.ctl(exitError, "names", "frobnicate")
}

// No command shows a name's API token unless asked for it (names show --show-secrets; token
// rotate's new token), in text or in JSON, in any field.
func TestOutputsKeepTokenOut(t *testing.T) {
	r := startRegistry(t)
	token := r.subscribe("alpha")
	if token == "" {
		t.Fatal("subscribe gave no token")
	}
	for _, args := range [][]string{
		{"names", "list"}, {"names", "list", "--json"},
		{"names", "show", "alpha"}, {"names", "show", "alpha", "--json"},
		{"names", "disable", "alpha", "--reason", "abuse"}, {"names", "enable", "alpha", "--json"},
		{"names", "disable", "alpha", "--reason", "abuse", "--json"}, {"names", "enable", "alpha"},
		{"email", "set", "alpha", "owner@example.org"}, {"email", "set", "alpha", "other@example.org", "--json"},
		{"email", "clear", "alpha"}, {"email", "clear", "alpha", "--json"},
		{"check"}, {"check", "--json"}, {"stats"}, {"stats", "--json"}, {"serial", "--json"},
		{"names", "delete", "alpha", "--json"},
	} {
		code, stdout, stderr := regdnsctl(append([]string{"-conf", r.conf}, args...)...)
		if code != exitOK {
			t.Errorf("regdnsctl %v: exit %d\n%s", args, code, stderr)
		}
		if strings.Contains(stdout+stderr, token) {
			t.Errorf("regdnsctl %v shows the API token:\n%s%s", args, stdout, stderr)
		}
	}
}

func isHex64(s string) bool {
	return len(s) == 64 && strings.Trim(s, "0123456789abcdef") == ""
}

// Disabling a name makes its token fail at once with NameDisabled and keeps the name taken;
// enabling it restores it. Deleting a name frees it for /subscribe and leaves no key behind.
func TestNamesDisableEnableDelete(t *testing.T) {
	r := startRegistry(t)
	token := r.subscribe("spammer")
	other := r.subscribe("other")
	r.ctl(exitError, "names", "disable", "spammer")
	var v nameView
	r.ctlJSON(&v, "names", "disable", "spammer", "--reason", "phishing, ticket 42")
	if !v.Disabled || v.DisabledReason != "phishing, ticket 42" || v.DisabledSince == nil {
		t.Fatalf("disable printed %+v", v)
	}
	r.expect(400, "NameDisabled", "/info", "token", token)
	r.expect(400, "NameDisabled", "/ping", "token", token)
	r.expect(400, "UnavailableName", "/subscribe", "name", "spammer")
	if out := r.ctl(exitOK, "names", "show", "spammer"); !strings.Contains(out, "phishing, ticket 42") {
		t.Errorf("names show lacks the reason:\n%s", out)
	}
	if out := r.ctl(exitOK, "names", "list"); !strings.Contains(out, "phishing, ticket 42") {
		t.Errorf("names list lacks the reason:\n%s", out)
	}
	r.ctlJSON(&v, "names", "enable", "spammer")
	if v.Disabled {
		t.Errorf("enable printed %+v", v)
	}
	r.expect(200, "", "/info", "token", token)
	r.ctl(exitError, "names", "enable", "spammer") // not disabled
	r.ctl(exitNotFound, "names", "disable", "nobody", "--reason", "x")

	if out := r.ctl(exitOK, "names", "delete", "spammer"); !strings.Contains(out, "deleted spammer") {
		t.Errorf("names delete: %s", out)
	}
	r.expect(400, "InvalidToken", "/info", "token", token)
	r.subscribe("spammer")
	r.ctl(exitNotFound, "names", "delete", "nobody")
	r.expect(200, "", "/info", "token", other)
	r.ctl(exitOK, "check")
}

// A rotated token works at once and the old one fails; email set and clear show in /info.
func TestTokenRotateAndEmail(t *testing.T) {
	r := startRegistry(t)
	old := r.subscribe("gw")
	var rotated struct{ Name, Token string }
	r.ctlJSON(&rotated, "token", "rotate", "gw")
	if rotated.Name != "gw" || len(rotated.Token) != 36 || rotated.Token == old {
		t.Fatalf("token rotate printed %+v", rotated)
	}
	r.expect(400, "InvalidToken", "/info", "token", old)
	info := func() map[string]any {
		var m map[string]any
		json.Unmarshal([]byte(r.expect(200, "", "/info", "token", rotated.Token)), &m)
		return m
	}
	if m := info(); m["token"] != rotated.Token {
		t.Errorf("/info with the new token: %v", m)
	}
	if out := strings.TrimSpace(r.ctl(exitOK, "token", "rotate", "gw")); len(out) != 36 || out == rotated.Token {
		t.Errorf("token rotate printed %q", out)
	} else {
		r.expect(400, "InvalidToken", "/info", "token", rotated.Token)
		rotated.Token = out
	}
	r.ctl(exitNotFound, "token", "rotate", "nobody")

	r.ctl(exitOK, "email", "set", "gw", "Owner@Example.ORG")
	if m := info(); m["email"] != "owner@example.org" || m["verified"] != false {
		t.Errorf("after email set: %v", m)
	}
	r.ctl(exitOK, "email", "set", "gw", "owner@example.org", "--verified")
	if m := info(); m["email"] != "owner@example.org" || m["verified"] != true {
		t.Errorf("after email set --verified: %v", m)
	}
	r.ctl(exitError, "email", "set", "gw", "not an address")
	r.ctl(exitOK, "email", "clear", "gw")
	if m := info(); m["email"] != "" || m["verified"] != false {
		t.Errorf("after email clear: %v", m)
	}
	r.expect(400, "NoEmail", "/reclaim", "name", "gw")
	r.ctl(exitOK, "check")
}

// check --fix deletes index keys no record points back to and re-creates missing ones; the
// API then finds the record by its token again. What it cannot prove stays reported.
func TestCheckFix(t *testing.T) {
	r := startRegistry(t)
	token := r.subscribe("alpha")
	r.subscribe("beta")
	cli := r.store.Client()
	ghost := "/reg/tokens/" + strings.Repeat("ab", 32)
	tokenKey := "/reg/tokens/" + sha256Hex(token)
	for _, op := range []clientv3.Op{
		clientv3.OpPut(ghost, "ghost"),
		clientv3.OpDelete(tokenKey),
		clientv3.OpPut("/reg/names/broken", "{"),
	} {
		if _, err := cli.Do(t.Context(), op); err != nil {
			t.Fatal(err)
		}
	}
	r.expect(400, "InvalidToken", "/info", "token", token)
	r.ctl(exitFindings, "check")
	var res struct{ Fixed, Problems []string }
	code, stdout, stderr := regdnsctl("-conf", r.conf, "check", "--fix", "--json")
	if code != exitFindings {
		t.Fatalf("check --fix: exit %d\n%s", code, stderr)
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Fixed) != 2 || !strings.HasPrefix(res.Fixed[0], ghost+": deleted") || !strings.HasPrefix(res.Fixed[1], tokenKey+": created") {
		t.Errorf("fixed %q", res.Fixed)
	}
	if len(res.Problems) != 1 || !strings.Contains(res.Problems[0], "/reg/names/broken: record is not valid JSON") {
		t.Errorf("left %q, want only the broken record", res.Problems)
	}
	if strings.Contains(stdout+stderr, token) {
		t.Error("check output shows a token")
	}
	r.expect(200, "", "/info", "token", token)
	// A damaged record is deleted alone (its index keys cannot be read from it).
	if _, err := cli.Put(t.Context(), "/reg/tokens/"+strings.Repeat("cd", 32), "broken"); err != nil {
		t.Fatal(err)
	}
	if out := r.ctl(exitOK, "names", "delete", "broken"); !strings.Contains(out, "deleted the damaged record of broken") {
		t.Errorf("names delete broken: %s", out)
	}
	r.ctl(exitFindings, "check")
	r.ctl(exitOK, "check", "--fix")
	r.ctl(exitOK, "check")
	r.subscribe("broken")
}

func TestStats(t *testing.T) {
	r := startRegistry(t)
	tok := r.subscribe("a", "mode", "1")
	r.subscribe("b")
	r.subscribe("c")
	r.expect(200, "", "/setemail", "token", tok, "email", "owner@example.org")
	if _, err := r.store.Update(t.Context(), etcdstore.ByName("c"), func(d *etcdstore.Record) error {
		d.LastPing = time.Now().Add(-40 * 24 * time.Hour)
		d.SetEmail("c@example.org", true)
		d.Disable("test", time.Now())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var st registryStats
	r.ctlJSON(&st, "stats")
	want := registryStats{Names: 3, ByMode: map[string]int{"tunnel": 2, "dynamic": 1}, WithEmail: 2, EmailVerified: 1, Disabled: 1,
		Stale: map[string]int{"7d": 1, "30d": 1, "90d": 0}}
	if st.DBSize <= 0 || st.Revision <= 0 || st.Serial != r.store.View().Serial() {
		t.Errorf("db size %d, revision %d, serial %d (served %d)", st.DBSize, st.Revision, st.Serial, r.store.View().Serial())
	}
	st.DBSize, st.Revision, st.Serial = 0, 0, 0
	if got, _ := json.Marshal(st); string(got) != string(must(json.Marshal(want))) {
		t.Errorf("stats %s, want %s", got, must(json.Marshal(want)))
	}
	if out := r.ctl(exitOK, "stats"); !strings.Contains(out, "names: 3 (tunnel 2, dynamic 1), disabled 1") {
		t.Errorf("stats:\n%s", out)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// A backup taken while the server runs restores, with the server stopped, into a data
// directory the server then serves: the names of the backup, the former data kept aside, and
// a SOA serial above the one served before the restore.
func TestBackupRestore(t *testing.T) {
	r := startRegistry(t)
	keep := r.subscribe("kept")
	file := filepath.Join(t.TempDir(), "backup.db")
	var b struct {
		File   string
		Bytes  int64
		Serial uint32
	}
	r.ctlJSON(&b, "backup", file)
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != b.Bytes || b.Serial == 0 {
		t.Fatalf("backup %+v: file %v, %v", b, fi, err)
	}
	for _, n := range []string{"later1", "later2", "later3"} {
		r.subscribe(n)
	}
	served := r.store.View().Serial()
	if out := r.ctl(exitError, "restore", file); out != "" {
		t.Errorf("restore while the server runs printed %q", out)
	}
	r.stop()
	r.ctl(exitError, "restore", filepath.Join(t.TempDir(), "none.db"))
	var res restored
	r.ctlJSON(&res, "restore", file)
	if res.Kept == "" || int32(res.Serial-served) <= 0 {
		t.Fatalf("restore %+v; served %d before", res, served)
	}
	if _, err := os.Stat(filepath.Join(res.Kept, "member")); err != nil {
		t.Errorf("former data not kept: %v", err)
	}

	// The server starts again on the restored data.
	cfg, _ := registryConfig(r.conf, "")
	e, err := etcdstore.StartEmbedded(embeddedOf(cfg, true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	s, err := etcdstore.Open(t.Context(), etcdstore.Config{Endpoints: e.Endpoints(), Prefix: "/reg/"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.View().WaitLoaded(t.Context()); err != nil {
		t.Fatal(err)
	}
	if d, ok := s.View().LookupToken(keep); !ok || d.Name != "kept" || s.View().Len() != 1 {
		t.Errorf("restored view: kept found %v, %d names; want only kept", ok, s.View().Len())
	}
	if got := s.View().Serial(); got != res.Serial {
		t.Errorf("restored serial %d, restore said %d", got, res.Serial)
	}
	t.Logf("serial %d served before the restore, %d after", served, res.Serial)
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// serial prints the SOA serial the server serves and raises it over a given one, at once.
func TestSerial(t *testing.T) {
	r := startRegistry(t)
	r.subscribe("a")
	var got struct{ Serial uint32 }
	r.ctlJSON(&got, "serial")
	if got.Serial != r.store.View().Serial() {
		t.Errorf("serial %d, the server serves %d", got.Serial, r.store.View().Serial())
	}
	r.ctlJSON(&got, "serial", "--above", "1000000")
	if got.Serial != 1000001 {
		t.Errorf("serial --above 1000000: %d", got.Serial)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.store.View().Serial() != got.Serial {
		if time.Now().After(deadline) {
			t.Fatalf("the server serves %d, not the raised %d", r.store.View().Serial(), got.Serial)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out := strings.TrimSpace(r.ctl(exitOK, "serial", "--above", "5")); out != "1000001" {
		t.Errorf("serial --above a lower one: %q, want unchanged", out)
	}
}

// TestVersionCommand: a build without the Makefile's stamps says so; arguments are refused.
func TestVersionCommand(t *testing.T) {
	code, out, _ := regdnsctl("version")
	if code != exitOK || out != "regdns devel (commit unknown)\n" {
		t.Errorf("version: %d %q", code, out)
	}
	if code, _, _ := regdnsctl("version", "extra"); code != exitError {
		t.Errorf("version extra: exit %d, want %d", code, exitError)
	}
}
