package main

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regdns/regdns/build/regdnsctl/origdbtest"
	"github.com/regdns/regdns/etcdstore"
	"github.com/regdns/regdns/plugin/dnstest"
	"github.com/regdns/regdns/plugin/registry"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The original's rows for the import tests: every column's edge cases.
var (
	lastSeen = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	accounts = []origdbtest.Account{
		{ID: 1, Email: "", OptOut: true}, // the "unknown account" of names without an email
		{ID: 2, Email: "alice@example.com"},
		{ID: 3, Email: "carol@example.com"},
		{ID: 4, Email: "dave@example.com", OptOut: true},
	}
	tokens = map[string]string{
		"alpha": "0b9e2c1a-6f0e-4c55-9d2a-1f4b8e7c6d01", "beta": "0b9e2c1a-6f0e-4c55-9d2a-1f4b8e7c6d02",
		"gamma": "0b9e2c1a-6f0e-4c55-9d2a-1f4b8e7c6d03", "delta": "0b9e2c1a-6f0e-4c55-9d2a-1f4b8e7c6d04",
		"dyn": "0b9e2c1a-6f0e-4c55-9d2a-1f4b8e7c6d05", "dyn6": "0b9e2c1a-6f0e-4c55-9d2a-1f4b8e7c6d06",
		"odd": "0b9e2c1a-6f0e-4c55-9d2a-1f4b8e7c6d07", "upper": "0b9e2c1a-6f0e-4c55-9d2a-1f4b8e7c6d08",
		"wpad": "0b9e2c1a-6f0e-4c55-9d2a-1f4b8e7c6d13",
	}
	// Secrets other than tokens.
	alphaRT, gammaVID = "5d8f4a3b-1c2e-4f6a-8b9c-0d1e2f3a4b01", "5d8f4a3b-1c2e-4f6a-8b9c-0d1e2f3a4b02"
	ts                = lastSeen.Unix()
	domains           = []origdbtest.Domain{
		{ID: 1, Name: "alpha.example.org.", AccountID: 2, Token: tokens["alpha"], Description: "alpha's server", Timestamp: ts,
			DNSChallenge: "chal-alpha", ReclamationToken: alphaRT, Verified: true, Continent: "EU", LastIP: "203.0.113.5"},
		{ID: 2, Name: "beta.example.org.", AccountID: 1, Token: tokens["beta"], Description: "beta's server", Timestamp: ts, Continent: "NA"},
		{ID: 3, Name: "gamma.example.org.", AccountID: 3, Token: tokens["gamma"], Timestamp: ts, VerificationToken: gammaVID, Continent: "AS", LastIP: "198.51.100.3"},
		{ID: 4, Name: "delta.example.org.", AccountID: 4, Token: tokens["delta"], Timestamp: ts},
		{ID: 5, Name: "dyn.example.org.", AccountID: 1, Token: tokens["dyn"], Timestamp: ts, Mode: 1, LastIP: "198.51.100.7"},
		{ID: 6, Name: "dyn6.example.org.", AccountID: 1, Token: tokens["dyn6"], Timestamp: ts, Mode: 1, LastIP: "2001:db8::7"},
		{ID: 7, Name: "odd.example.org.", AccountID: 1, Token: tokens["odd"], Timestamp: ts, LastIP: "300.1.2"},
		{ID: 8, Name: "twin.example.org.", AccountID: 1, Token: tokens["alpha"], Timestamp: ts},
		{ID: 9, Name: "outside.other.org.", AccountID: 1, Token: "0b9e2c1a-6f0e-4c55-9d2a-1f4b8e7c6d09", Timestamp: ts},
		{ID: 10, Name: "UPPER.example.org.", AccountID: 1, Token: tokens["upper"], Timestamp: ts},
		{ID: 11, Name: "bad_label.example.org.", AccountID: 1, Token: "0b9e2c1a-6f0e-4c55-9d2a-1f4b8e7c6d11", Timestamp: ts},
		{ID: 12, Name: "moded.example.org.", AccountID: 1, Token: "0b9e2c1a-6f0e-4c55-9d2a-1f4b8e7c6d12", Timestamp: ts, Mode: 7},
		// Reserved here for new registrations (a gateway holding it could capture proxy
		// autodiscovery), not in the original: the gateway holding it keeps it.
		{ID: 13, Name: "wpad.example.org.", AccountID: 1, Token: tokens["wpad"], Timestamp: ts},
		// The zone's own name servers' names: never a gateway's, whatever the old database says.
		{ID: 14, Name: "ns2.example.org.", AccountID: 1, Token: "0b9e2c1a-6f0e-4c55-9d2a-1f4b8e7c6d14", Timestamp: ts},
	}
	// The lines an import prints about the rows above, whatever the source.
	reportLines = []string{
		`skip domains.id=9: "outside.other.org." is outside the zone example.org.`,
		`skip domains.id=11: "bad_label.example.org." is not a name the API would register`,
		`skip domains.id=12: mode 7 is neither 0 (tunnel) nor 1 (dynamic DNS)`,
		`skip domains.id=14: "ns2.example.org." is not a name the API would register`,
		`conflict twin (domains.id=8): its API token is also "alpha"'s, an earlier record of this import`,
		`note odd (domains.id=7): last_ip "300.1.2" is not an IP address: none kept`,
		`note beta (domains.id=2): no last_ip: no address kept`,
		`note upper (domains.id=10): name "UPPER.example.org." stored as "upper.example.org."`,
		`note wpad (domains.id=13): "wpad" is reserved for new registrations; imported because a gateway holds it (delete it to take it back)`,
	}
)

// wantRecords are the records the rows above become (secrets are checked apart).
func wantRecords() map[string]etcdstore.Record {
	rec := func(name string, mode etcdstore.Mode, desc, continent, ip string) etcdstore.Record {
		d := etcdstore.Record{Name: name, Token: tokens[name], Description: desc, Mode: mode, Continent: continent,
			Created: lastSeen, LastPing: lastSeen, OptOut: true}
		if ip != "" {
			d.SetAddr(netip.MustParseAddr(ip))
		}
		return d
	}
	alpha := rec("alpha", etcdstore.ModeTunnel, "alpha's server", "EU", "203.0.113.5")
	alpha.SetEmail("alice@example.com", true)
	alpha.OptOut = false
	gamma := rec("gamma", etcdstore.ModeTunnel, "", "AS", "198.51.100.3")
	gamma.SetEmail("carol@example.com", false)
	gamma.OptOut = false
	delta := rec("delta", etcdstore.ModeTunnel, "", "", "")
	delta.SetEmail("dave@example.com", false)
	return map[string]etcdstore.Record{
		"alpha": alpha,
		"beta":  rec("beta", etcdstore.ModeTunnel, "beta's server", "NA", ""),
		"gamma": gamma,
		"delta": delta,
		"dyn":   rec("dyn", etcdstore.ModeDynamic, "", "", "198.51.100.7"),
		"dyn6":  rec("dyn6", etcdstore.ModeDynamic, "", "", "2001:db8::7"),
		"odd":   rec("odd", etcdstore.ModeTunnel, "", "", ""),
		"upper": rec("upper", etcdstore.ModeTunnel, "", "", ""),
		"wpad":  rec("wpad", etcdstore.ModeTunnel, "", "", ""),
	}
}

// testCorefile writes a Corefile for example.org with an embedded etcd (on its socket, as by
// default) in a new data directory, and returns its path.
func testCorefile(t testing.TB, extra string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "Corefile")
	corefile := fmt.Sprintf(`example.org:0 {
    registry {
        data %s
        ns ns1.example.org 127.0.0.1
%s
    }
}
`, filepath.Join(dir, "data"), extra)
	if err := os.WriteFile(path, []byte(corefile), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// embeddedOf is the embedded etcd the server of cfg runs, as a test starts it in the server's
// place; fast shortens its raft ticks.
func embeddedOf(cfg registry.Config, fast bool) etcdstore.EmbeddedConfig {
	ec := cfg.Embedded
	ec.Dir, ec.Fast = etcdstore.EmbeddedDir(cfg.DataDir), fast
	return ec
}

// regdnsctl runs the tool with args and returns its exit status and output.
func regdnsctl(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestImportSources(t *testing.T) {
	sources := []struct {
		name string
		open func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string {
			return origdbtest.WriteSQLite(t, filepath.Join(t.TempDir(), "registration.sqlite"), accounts, domains)
		}},
		{"postgres", func(t *testing.T) string {
			s := origdbtest.StartPostgres(t)
			origdbtest.Fill(t, s.DB, origdbtest.Postgres, accounts, domains)
			return s.URL
		}},
		{"mariadb", func(t *testing.T) string {
			s := origdbtest.StartMariaDB(t)
			origdbtest.Fill(t, s.DB, origdbtest.MySQL, accounts, domains)
			return s.URL
		}},
	}
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			t.Parallel()
			importAndVerify(t, src.open(t))
		})
	}
}

// importAndVerify imports source (the rows above) into a new embedded etcd: a dry run, the
// import, a check and a rerun, and compares what is stored with wantRecords.
func importAndVerify(t *testing.T, source string) {
	conf := testCorefile(t, "")
	expectRun := func(wantCode int, wantLines []string, args ...string) string {
		t.Helper()
		code, stdout, stderr := regdnsctl(append([]string{"-conf", conf}, args...)...)
		if code != wantCode {
			t.Fatalf("regdnsctl %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, wantCode, stdout, stderr)
		}
		for _, w := range wantLines {
			if !strings.Contains(stdout, w) {
				t.Errorf("regdnsctl %s: no line %q in:\n%s", strings.Join(args, " "), w, stdout)
			}
		}
		for _, secret := range []string{tokens["alpha"], alphaRT, gammaVID} {
			if strings.Contains(stdout+stderr, secret) {
				t.Errorf("regdnsctl %s shows a secret", strings.Join(args, " "))
			}
		}
		return stdout
	}

	out := expectRun(exitFindings, append(reportLines,
		"would import alpha (domains.id=1): mode=tunnel ipv4=203.0.113.5 continent=EU email=alice@example.com (verified) reclamation token until",
		"would import gamma (domains.id=3): mode=tunnel ipv4=198.51.100.3 continent=AS email=carol@example.com (unverified) verification link until",
		"would import delta (domains.id=4): mode=tunnel email=dave@example.com (unverified) optout last_ping=2025-06-01T12:00:00Z",
		"would import dyn6 (domains.id=6): mode=dynamic ipv6=2001:db8::7",
		"summary: 14 rows: would import 9, unchanged 0, conflicts 1, skipped 4; 6 with notes"),
		"import", source, "--dry-run")
	if n, want := strings.Count(out, "would import ")-1, len(wantRecords()); n != want { // less the summary
		t.Errorf("the dry run shows %d records, want %d", n, want)
	}
	if n := storedKeys(t, conf); n != 0 {
		t.Fatalf("the dry run wrote %d keys", n)
	}

	expectRun(exitFindings, append(reportLines, "summary: 14 rows: imported 9, unchanged 0, conflicts 1, skipped 4; 6 with notes"), "import", source)
	expectRun(exitOK, nil, "check")
	expectRun(exitFindings, append(reportLines, "summary: 14 rows: imported 0, unchanged 9, conflicts 1, skipped 4; 6 with notes"), "import", source)
	verifyRecords(t, conf)
}

// storedKeys counts the keys under the registry's prefix, with the Corefile's etcd.
func storedKeys(t *testing.T, conf string) int64 {
	t.Helper()
	cfg, err := registryConfig(conf, "")
	if err != nil {
		t.Fatal(err)
	}
	ks, release, err := openKeyspace(cfg, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	resp, err := ks.Client().Get(t.Context(), etcdstore.DefaultPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

// verifyRecords compares the records stored in the Corefile's etcd with wantRecords, and
// finds the imported secrets through their indexes.
func verifyRecords(t *testing.T, conf string) {
	t.Helper()
	cfg, err := registryConfig(conf, "")
	if err != nil {
		t.Fatal(err)
	}
	e, err := etcdstore.StartEmbedded(embeddedOf(cfg, false))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	s, err := etcdstore.Open(t.Context(), etcdstore.Config{Endpoints: e.Endpoints(), Local: e})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	if err := s.View().WaitLoaded(ctx); err != nil {
		t.Fatal(err)
	}
	for name, want := range wantRecords() {
		got, err := s.Get(ctx, etcdstore.ByToken(want.Token))
		if err != nil {
			t.Errorf("%s by its token: %v", name, err)
			continue
		}
		var challenges []string
		for _, c := range got.Challenges {
			challenges = append(challenges, c.Value)
		}
		got.Challenges, want.Challenges = nil, nil
		gotVerify, _ := got.Verification()
		gotReclaim := len(got.ReclamationTokens())
		got.Pending, want.Pending = nil, nil
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got, want)
		}
		wantChallenges := map[string]string{"alpha": "[chal-alpha]"}[name]
		if fmt.Sprint(challenges) != orEmpty(wantChallenges) {
			t.Errorf("%s challenges %v, want %s", name, challenges, orEmpty(wantChallenges))
		}
		if (gotVerify != "") != (name == "gamma") {
			t.Errorf("%s has a pending verification: %v, want %v", name, gotVerify != "", name == "gamma")
		}
		if want := map[string]int{"alpha": 1}[name]; gotReclaim != want {
			t.Errorf("%s has %d reclamation tokens, want %d", name, gotReclaim, want)
		}
	}
	window := func(what string, exp time.Time) {
		if d := time.Until(exp); d < 23*time.Hour || d > 25*time.Hour {
			t.Errorf("%s expires in %v, want the default 24h after the import", what, d)
		}
	}
	if d, err := s.Get(ctx, etcdstore.ByReclamationToken(alphaRT)); err != nil || d.Name != "alpha" {
		t.Errorf("alpha by its reclamation token: %s, %v", d.Name, err)
	} else {
		window("alpha's reclamation token", d.ReclamationTokens()[0].Expires)
	}
	if d, err := s.Get(ctx, etcdstore.ByVerificationID(gammaVID)); err != nil || d.Name != "gamma" {
		t.Errorf("gamma by its verification id: %s, %v", d.Name, err)
	} else {
		_, exp := d.Verification()
		window("gamma's verification id", exp)
	}
	if n := s.View().Len(); n != len(wantRecords()) {
		t.Errorf("%d records stored, want %d", n, len(wantRecords()))
	}
}

func orEmpty(s string) string {
	if s == "" {
		return "[]"
	}
	return s
}

// A source that cannot be read stops the import before etcd is touched, without showing the
// source's password.
func TestImportSourceErrors(t *testing.T) {
	conf := testCorefile(t, "")
	closed := dnstest.FreeAddrs(t, 1)[0]
	for _, tt := range []struct{ source, stderr string }{
		{"postgres://bob:secretpw@" + closed + "/db", "failed to connect"},
		{"mysql://bob:secretpw@" + closed + "/db", "connection refused"},
		{"ftp://bob:secretpw@example.org/db", "want sqlite:PATH, postgres://… or mysql://…"},
		// URLs that do not parse: url's errors quote them, or the piece of the password that broke them.
		{"ftp://bob:secretpw@example.org:x/db", "want sqlite:PATH, postgres://… or mysql://…"},
		{"mysql://bob:secretpw@" + closed + "x/db", "is not a URL"},
		{"mysql://bob:secretpw/x@" + closed + "/db", "is not a URL"},
		{"mysql://bob:secretpw%zz@" + closed + "/db", "is not a URL"},
		{"sqlite:" + filepath.Join(t.TempDir(), "missing.sqlite"), "no such file"},
		{"sqlite:" + writeFile(t, "not a database"), "reading domains"},
	} {
		code, stdout, stderr := regdnsctl("-conf", conf, "import", tt.source)
		if code != exitError || !strings.Contains(stderr, tt.stderr) || strings.Contains(stdout+stderr, "secretpw") {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q without the password", tt.source, code, stderr, exitError, tt.stderr)
		}
		if strings.Contains(stderr, "embedded etcd") {
			t.Errorf("%s: etcd was opened for a source that cannot be read", tt.source)
		}
	}
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The MySQL password can stay off the command line, in MYSQL_PWD.
func TestImportMySQLPasswordFromEnv(t *testing.T) {
	s := origdbtest.StartMariaDB(t)
	origdbtest.Fill(t, s.DB, origdbtest.MySQL, accounts, domains[:1])
	if _, err := s.DB.Exec("SET PASSWORD = PASSWORD('s3cret-pw')"); err != nil {
		t.Fatal(err)
	}
	conf := testCorefile(t, "")
	if code, _, stderr := regdnsctl("-conf", conf, "import", s.URL); code != exitError || !strings.Contains(stderr, "Access denied") {
		t.Fatalf("without the password: exit %d, %s", code, stderr)
	}
	t.Setenv("MYSQL_PWD", "s3cret-pw")
	code, stdout, stderr := regdnsctl("-conf", conf, "import", s.URL)
	if code != exitOK || !strings.Contains(stdout, "imported 1,") {
		t.Fatalf("with MYSQL_PWD: exit %d\n%s\n%s", code, stdout, stderr)
	}
}
