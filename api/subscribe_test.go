package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/regdns/regdns/etcdstore"
)

func TestSubscribe(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Reserved = []string{" Admin "} })
	e.subscribe(t, "taken")
	long := strings.Repeat("a", 63)
	tests := []struct {
		name   string
		params []string
		code   string // expected error code; "" for success; a reason after "UnavailableName "
		want   etcdstore.Record
	}{
		{"new name", []string{"name", "demo"}, "", etcdstore.Record{Name: "demo", Description: "demo's server"}},
		{"uppercase and spaces", []string{"name", "  MiXed-Case1 "}, "", etcdstore.Record{Name: "mixed-case1", Description: "mixed-case1's server"}},
		{"description", []string{"name", "described", "desc", " Living room Pi "}, "", etcdstore.Record{Name: "described", Description: "Living room Pi"}},
		{"empty description", []string{"name", "nodesc", "desc", ""}, "", etcdstore.Record{Name: "nodesc", Description: "nodesc's server"}},
		{"description of 256", []string{"name", "desc256", "desc", strings.Repeat("é", 256)}, "", etcdstore.Record{Name: "desc256", Description: strings.Repeat("é", 256)}},
		{"tunnel mode", []string{"name", "tunnel", "mode", "0"}, "", etcdstore.Record{Name: "tunnel", Description: "tunnel's server"}},
		{"dynamic mode", []string{"name", "dyn", "mode", "1"}, "", etcdstore.Record{Name: "dyn", Description: "dyn's server", Mode: etcdstore.ModeDynamic}},
		{"63 characters", []string{"name", long}, "", etcdstore.Record{Name: long, Description: long + "'s server"}},
		{"ns and letters", []string{"name", "ns1a"}, "", etcdstore.Record{Name: "ns1a", Description: "ns1a's server"}},
		{"email given for a free name", []string{"name", "withmail", "email", "a@example.org"}, "", etcdstore.Record{Name: "withmail", Description: "withmail's server"}},
		{"non-ASCII email, only compared", []string{"name", "umlaut", "email", "jöhn@example.com"}, "", etcdstore.Record{Name: "umlaut", Description: "umlaut's server"}},
		{"email without a dot, only compared", []string{"name", "ab", "email", "a@b"}, "", etcdstore.Record{Name: "ab", Description: "ab's server"}},
		{"no email at all, only compared", []string{"name", "badmail", "email", "not-an-address"}, "", etcdstore.Record{Name: "badmail", Description: "badmail's server"}},
		{"valid punycode", []string{"name", "xn--bcher-kva"}, "", etcdstore.Record{Name: "xn--bcher-kva", Description: "xn--bcher-kva's server"}},
		{"punycode of Japanese with Latin", []string{"name", "xn--abc-7k4bocn9737efd7a"}, "", etcdstore.Record{Name: "xn--abc-7k4bocn9737efd7a", Description: "xn--abc-7k4bocn9737efd7a's server"}},

		// The gateway reads only "UnavailableName" as a refused name: every refusal says it.
		{"missing name", nil, "UnavailableName MissingParameter", etcdstore.Record{}},
		{"blank name", []string{"name", "   "}, "UnavailableName MissingParameter", etcdstore.Record{}},
		{"64 characters", []string{"name", long + "a"}, "UnavailableName InvalidName", etcdstore.Record{}},
		{"leading hyphen", []string{"name", "-demo"}, "UnavailableName InvalidName", etcdstore.Record{}},
		{"trailing hyphen", []string{"name", "demo-"}, "UnavailableName InvalidName", etcdstore.Record{}},
		{"dot", []string{"name", "a.b"}, "UnavailableName InvalidName", etcdstore.Record{}},
		{"inner space", []string{"name", "de mo"}, "UnavailableName InvalidName", etcdstore.Record{}},
		{"underscore", []string{"name", "de_mo"}, "UnavailableName InvalidName", etcdstore.Record{}},
		{"leading underscore", []string{"name", "_dmarc"}, "UnavailableName InvalidName", etcdstore.Record{}},
		{"non-ASCII", []string{"name", "dém"}, "UnavailableName InvalidName", etcdstore.Record{}},
		{"punycode that decodes to nothing valid", []string{"name", "xn--zz"}, "UnavailableName InvalidName", etcdstore.Record{}},
		{"punycode mixing Cyrillic and Latin", []string{"name", "xn--pple-43d"}, "UnavailableName InvalidName", etcdstore.Record{}},
		{"punycode of plain ASCII", []string{"name", "xn--abc-"}, "UnavailableName InvalidName", etcdstore.Record{}},
		{"reserved api", []string{"name", "api"}, "UnavailableName ReservedName", etcdstore.Record{}},
		{"reserved WWW", []string{"name", "WWW"}, "UnavailableName ReservedName", etcdstore.Record{}},
		{"reserved _psl", []string{"name", "_psl"}, "UnavailableName ReservedName", etcdstore.Record{}},
		{"reserved ns", []string{"name", "ns"}, "UnavailableName ReservedName", etcdstore.Record{}},
		{"reserved ns1", []string{"name", "ns1"}, "UnavailableName ReservedName", etcdstore.Record{}},
		{"reserved NS12", []string{"name", "NS12"}, "UnavailableName ReservedName", etcdstore.Record{}},
		{"reserved by the operator", []string{"name", "admin"}, "UnavailableName ReservedName", etcdstore.Record{}},
		{"mode 2", []string{"name", "m2", "mode", "2"}, "InvalidMode", etcdstore.Record{}},
		{"mode word", []string{"name", "mw", "mode", "tunnel"}, "InvalidMode", etcdstore.Record{}},
		{"description of 257", []string{"name", "d257", "desc", strings.Repeat("x", 257)}, "InvalidDescription", etcdstore.Record{}},
		{"description with NUL", []string{"name", "dnul", "desc", "a\x00b"}, "InvalidDescription", etcdstore.Record{}},
		{"description with line break", []string{"name", "dnl", "desc", "a\nb"}, "InvalidDescription", etcdstore.Record{}},
		{"description not UTF-8", []string{"name", "dutf", "desc", "a\xffb"}, "InvalidDescription", etcdstore.Record{}},
		{"taken", []string{"name", "taken"}, "UnavailableName NameTaken", etcdstore.Record{}},
		{"taken in capitals", []string{"name", " TAKEN"}, "UnavailableName NameTaken", etcdstore.Record{}},
	}
	for _, label := range builtinReserved {
		tests = append(tests, struct {
			name   string
			params []string
			code   string
			want   etcdstore.Record
		}{"built-in reserved " + label, []string{"name", label}, "UnavailableName ReservedName", etcdstore.Record{}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now().Add(-time.Second)
			if reason, ok := strings.CutPrefix(tt.code, "UnavailableName "); ok {
				e.unavailable(t, reason, "/subscribe", tt.params...)
				return
			}
			if tt.code != "" {
				e.fails(t, tt.code, "/subscribe", tt.params...)
				return
			}
			r := e.ok(t, "/subscribe", tt.params...)
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var out map[string]string
			if err := json.Unmarshal([]byte(r.body), &out); err != nil {
				t.Fatal(err)
			}
			if len(out) != 2 || out["name"] != tt.want.Name || !isUUID(out["token"]) {
				t.Fatalf("reply %s, want name %q and a lowercase UUID token", r.body, tt.want.Name)
			}
			d := e.stored(t, tt.want.Name)
			if d.Token != out["token"] || d.Description != tt.want.Description || d.Mode != tt.want.Mode {
				t.Errorf("stored token %q description %q mode %d, want %q %q %d", d.Token, d.Description, d.Mode, out["token"], tt.want.Description, tt.want.Mode)
			}
			if d.IPv4.String() != "127.0.0.1" || d.IPv6.IsValid() {
				t.Errorf("stored addresses %v %v, want 127.0.0.1 only", d.IPv4, d.IPv6)
			}
			if d.Created.Before(before) || !d.LastPing.Equal(d.Created) || d.Email != "" {
				t.Errorf("stored created %v last ping %v email %q", d.Created, d.LastPing, d.Email)
			}
		})
	}
}

func TestSubscribeNameTooLongForZone(t *testing.T) {
	long := strings.Repeat("abcdefghi.", 24) + "org" // 243 characters
	e := newEnv(t, func(c *Config) { c.Zone = long + "." })
	e.subscribe(t, "ninechars")
	e.unavailable(t, "InvalidName", "/subscribe", "name", "tenletters")
}

func TestSubscribeTakenName(t *testing.T) {
	e := newEnv(t, nil)
	owned := e.subscribe(t, "owned")
	e.verify(t, owned, "owner@example.org")
	pending := e.subscribe(t, "pending")
	e.verifyLink(t, pending, "waiting@example.org")
	gmail := e.subscribe(t, "gmail")
	e.verifyLink(t, gmail, "john.smith+gw@gmail.com")

	tests := []struct {
		name, email, code string
	}{
		{"owned", "", "UnavailableName"},
		{"owned", "owner@example.org", "UnavailableNameReclamationPossible"},
		{"Owned", " OWNER@Example.ORG ", "UnavailableNameReclamationPossible"},
		{"owned", "owner+gateway@example.org", "UnavailableNameReclamationPossible"},
		{"owned", "someone@example.org", "UnavailableName"},
		{"owned", "owner", "UnavailableName"},
		{"owned", "jöhn@example.com", "UnavailableName"},
		// The contact address counts as soon as it is set, verified or not (issue 10).
		{"pending", "waiting@example.org", "UnavailableNameReclamationPossible"},
		{"pending", "", "UnavailableName"},
		{"gmail", "JohnSmith@googlemail.com", "UnavailableNameReclamationPossible"},
		{"gmail", "john.smith@gmail.com", "UnavailableNameReclamationPossible"},
		{"gmail", "john.smith@example.com", "UnavailableName"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" "+tt.email, func(t *testing.T) {
			r := e.fails(t, tt.code, "/subscribe", "name", tt.name, "email", tt.email)
			if r.reason() != "NameTaken" {
				t.Errorf("reason %q, want NameTaken", r.reason())
			}
		})
	}
	if d := e.stored(t, "owned"); d.Token != owned {
		t.Error("a refused subscription changed the record")
	}
}

func TestReclaim(t *testing.T) {
	e := newEnv(t, nil)
	old := e.subscribe(t, "demo", "desc", "old description")
	e.verify(t, old, "owner@example.org")
	e.subscribe(t, "nomail")

	rt := e.reclamationToken(t, "Demo ")
	m := e.smtp.Last(t)
	msg, body := m.Parse(t)
	if got := msg.Header.Get("To"); got != "<owner@example.org>" || len(m.To) != 1 || m.To[0] != "owner@example.org" {
		t.Errorf("reclaim mail to %q (envelope %v)", got, m.To)
	}
	if s := msg.Header.Get("Subject"); !strings.Contains(s, "demo.mydomain.org") {
		t.Errorf("reclaim subject %q does not name the domain", s)
	}
	if !strings.Contains(body, "valid until") {
		t.Errorf("reclaim mail does not say how long the token is valid:\n%s", body)
	}
	if toks := e.stored(t, "demo").ReclamationTokens(); len(toks) != 1 || strings.Contains(toks[0].Hash, rt) || toks[0].Expires.Before(time.Now().Add(23*time.Hour)) {
		t.Errorf("stored reclamation tokens %v", toks)
	}

	e.fails(t, "ReclamationTokenMismatch", "/subscribe", "name", "demo", "reclamationToken", "00000000-0000-4000-8000-000000000000")
	e.fails(t, "ReclamationTokenMismatch", "/subscribe", "name", "nomail", "reclamationToken", rt)

	// The gateway may send the token as the user typed it.
	r := e.ok(t, "/subscribe", "name", "demo", "reclamationToken", " "+strings.ToUpper(rt)+" ", "mode", "1")
	var out struct{ Name, Token string }
	json.Unmarshal([]byte(r.body), &out)
	if out.Name != "demo" || !isUUID(out.Token) || out.Token == old {
		t.Fatalf("reclaim reply %s", r.body)
	}
	e.fails(t, "InvalidToken", "/info", "token", old)
	info := e.info(t, out.Token)
	if info["mode"] != 1.0 || info["description"] != "old description" || info["email"] != "owner@example.org" {
		t.Errorf("after reclaim: %v", info)
	}

	// The token works until it expires (issue 10): a retry after a failed certificate step
	// succeeds and rotates the API token again.
	second := e.ok(t, "/subscribe", "name", "demo", "reclamationToken", rt)
	var again struct{ Name, Token string }
	json.Unmarshal([]byte(second.body), &again)
	if again.Name != "demo" || !isUUID(again.Token) || again.Token == out.Token {
		t.Fatalf("second use of the reclamation token: %s", second.body)
	}
	e.fails(t, "InvalidToken", "/info", "token", out.Token)

	// A new reclaim does not take the mailed token away.
	rt2 := e.reclamationToken(t, "demo")
	e.ok(t, "/subscribe", "name", "demo", "reclamationToken", rt2, "desc", "new description")
	if d := e.stored(t, "demo"); d.Description != "new description" || d.Mode != etcdstore.ModeTunnel {
		t.Errorf("second reclaim stored description %q mode %d", d.Description, d.Mode)
	}
	e.ok(t, "/subscribe", "name", "demo", "reclamationToken", rt)

	for _, tt := range []struct {
		name   string
		params []string
		code   string
		reason string
	}{
		{"missing name", nil, "UnavailableName", "MissingParameter"},
		{"invalid name", []string{"name", "a.b"}, "UnavailableName", "InvalidName"},
		{"unknown name", []string{"name", "nobody"}, "NoSuchName", ""},
		{"no email", []string{"name", "nomail"}, "NoEmail", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sent := len(e.smtp.Messages())
			if r := e.fails(t, tt.code, "/reclaim", tt.params...); r.reason() != tt.reason {
				t.Errorf("reason %q, want %q", r.reason(), tt.reason)
			}
			if len(e.smtp.Messages()) != sent {
				t.Error("a refused reclaim sent mail")
			}
		})
	}
}

// The contact address can reclaim as soon as it is set, before its link is followed, and
// completing the reclaim with the mailed token verifies it.
func TestReclaimUnverifiedContact(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.VerifyTTL = time.Nanosecond })
	token := e.subscribe(t, "demo")
	e.verifyLink(t, token, "owner@example.org") // expires at once, never followed
	if info := e.info(t, token); info["email"] != "owner@example.org" || info["verified"] != false {
		t.Fatalf("after an expired link: %v", info)
	}
	e.fails(t, "UnavailableNameReclamationPossible", "/subscribe", "name", "demo", "email", "owner@example.org")
	rt := e.reclamationToken(t, "demo")
	if to := e.smtp.Last(t).To; len(to) != 1 || to[0] != "owner@example.org" {
		t.Errorf("reclamation mail to %v", to)
	}
	token = e.subscribe(t, "demo", "reclamationToken", rt)
	if info := e.info(t, token); info["email"] != "owner@example.org" || info["verified"] != true {
		t.Errorf("after a reclaim with the mailed token: %v", info)
	}
}

// Anyone can ask for reclamation mail; a flood of requests neither takes away the token
// mailed first nor leaves the owner's own mail refused (issue 11).
func TestAnonymousReclaimFlood(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MailLimit = RateLimit{} }) // the default
	token := e.subscribe(t, "demo")
	e.verify(t, token, "owner@example.org")
	first := e.reclamationToken(t, "demo")
	mails := len(e.smtp.Messages())
	for i := range 10 {
		r := e.get(t, "/reclaim", "name", "demo")
		if i < etcdstore.MaxReclamationTokens-1 {
			if r.status != http.StatusOK {
				t.Fatalf("reclaim %d: %d %s", i, r.status, r.body)
			}
			continue
		}
		limited(t, r, 23*3600, 24*3600)
	}
	if n := len(e.smtp.Messages()) - mails; n != etcdstore.MaxReclamationTokens-1 {
		t.Errorf("%d more reclamation mails, want %d", n, etcdstore.MaxReclamationTokens-1)
	}
	e.ok(t, "/setemail", "token", token, "email", "owner@example.org")
	token = e.subscribe(t, "demo", "reclamationToken", first)
	e.info(t, token)
}

func TestReclamationTokenExpires(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ReclaimTTL = time.Nanosecond })
	token := e.subscribe(t, "demo")
	e.verify(t, token, "owner@example.org")
	rt := e.reclamationToken(t, "demo")
	e.fails(t, "ReclamationTokenMismatch", "/subscribe", "name", "demo", "reclamationToken", rt)
	e.fails(t, "InvalidToken", "/unsubscribe", "reclamationToken", rt)
	e.info(t, token)
}

func TestUnsubscribe(t *testing.T) {
	e := newEnv(t, nil)
	token := e.subscribe(t, "demo")
	r := e.ok(t, "/unsubscribe", "token", " "+strings.ToUpper(token))
	if r.body != "" {
		t.Errorf("unsubscribe body %q, want empty", r.body)
	}
	e.fails(t, "InvalidToken", "/info", "token", token)
	e.fails(t, "InvalidToken", "/unsubscribe", "token", token)
	e.subscribe(t, "demo")

	owned := e.subscribe(t, "owned")
	e.verify(t, owned, "owner@example.org")
	rt := e.reclamationToken(t, "owned")
	e.fails(t, "InvalidToken", "/unsubscribe", "reclamationToken", "00000000-0000-4000-8000-000000000000")
	e.ok(t, "/unsubscribe", "reclamationToken", rt)
	e.fails(t, "InvalidToken", "/info", "token", owned)
	e.fails(t, "NoSuchName", "/reclaim", "name", "owned")

	e.fails(t, "MissingParameter", "/unsubscribe")
	e.fails(t, "MissingParameter", "/unsubscribe", "token", "  ", "reclamationToken", "")
	e.fails(t, "InvalidToken", "/unsubscribe", "token", "not-a-token")
}

func TestPing(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
	token := e.subscribe(t, "demo")
	before := e.stored(t, "demo")
	time.Sleep(5 * time.Millisecond)

	r := e.do(t, http.MethodGet, http.Header{"X-Real-Ip": {"2001:db8::7"}}, "/ping", "token", token)
	if r.status != http.StatusOK || r.body != "" {
		t.Fatalf("ping: %d %q", r.status, r.body)
	}
	d := e.stored(t, "demo")
	if !d.LastPing.After(before.LastPing) || d.IPv6.String() != "2001:db8::7" || d.IPv4.String() != "127.0.0.1" {
		t.Errorf("after ping over IPv6: last ping %v (was %v), addresses %v %v", d.LastPing, before.LastPing, d.IPv4, d.IPv6)
	}
	e.do(t, http.MethodGet, http.Header{"X-Real-Ip": {"198.51.100.4"}}, "/ping", "token", token)
	if d := e.stored(t, "demo"); d.IPv4.String() != "198.51.100.4" || d.IPv6.String() != "2001:db8::7" {
		t.Errorf("after ping over IPv4: addresses %v %v", d.IPv4, d.IPv6)
	}
	e.fails(t, "MissingParameter", "/ping")
	e.fails(t, "InvalidToken", "/ping", "token", "00000000-0000-4000-8000-000000000000")
}

func TestDNSConfig(t *testing.T) {
	e := newEnv(t, nil)
	token := e.subscribe(t, "demo")
	acme := "Xq3-b_KPv0Jt2nqF5uYjLx8m1w4cQ6rZ9sAeHdG7iTo" // 43 characters of base64url, like ACME's
	for _, c := range []string{"first", "second", acme} {
		e.ok(t, "/dnsconfig", "token", token, "challenge", c)
	}
	info := e.info(t, token)
	if info["dns_challenge"] != acme {
		t.Errorf("dns_challenge %v, want the newest", info["dns_challenge"])
	}
	if got, _ := json.Marshal(info["dns_challenges"]); string(got) != `["`+acme+`","second"]` {
		t.Errorf("dns_challenges %s, want the two newest, newest first", got)
	}
	e.ok(t, "/dnsconfig", "token", token, "challenge", strings.Repeat("~", 255))

	for _, tt := range []struct {
		name      string
		challenge string
		code      string
	}{
		{"missing", "", "MissingParameter"},
		{"space inside", "a b", "InvalidChallenge"},
		{"double quote", `a"b`, "InvalidChallenge"},
		{"single quote", "a'b", "InvalidChallenge"},
		{"backslash", `a\b`, "InvalidChallenge"},
		{"tab", "a\tb", "InvalidChallenge"},
		{"non-ASCII", "añb", "InvalidChallenge"},
		{"256 characters", strings.Repeat("a", 256), "InvalidChallenge"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.fails(t, tt.code, "/dnsconfig", "token", token, "challenge", tt.challenge)
		})
	}
	e.fails(t, "MissingParameter", "/dnsconfig", "challenge", "x")
	e.fails(t, "InvalidToken", "/dnsconfig", "token", "nope", "challenge", "x")
}

func TestDNSConfigKeepsConfiguredCount(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ChallengeKeep = 3 })
	token := e.subscribe(t, "demo")
	for _, c := range []string{"a", "b", "c", "d"} {
		e.ok(t, "/dnsconfig", "token", token, "challenge", c)
	}
	if got, _ := json.Marshal(e.info(t, token)["dns_challenges"]); string(got) != `["d","c","b"]` {
		t.Errorf("dns_challenges %s", got)
	}
}

func TestInfo(t *testing.T) {
	e := newEnv(t, nil)
	token := e.subscribe(t, "demo", "desc", "My gateway", "mode", "1")
	e.verify(t, token, "owner@example.org")
	e.verifyLink(t, token, "next@example.org")
	e.ok(t, "/dnsconfig", "token", token, "challenge", "abc")
	e.reclamationToken(t, "demo")

	r := e.ok(t, "/info", "token", strings.ToUpper(token))
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var info map[string]any
	if err := json.Unmarshal([]byte(r.body), &info); err != nil {
		t.Fatal(err)
	}
	d := e.stored(t, "demo")
	want := map[string]any{
		"name":           "demo",
		"token":          token,
		"description":    "My gateway",
		"mode":           1.0,
		"continent":      "",
		"ip":             "127.0.0.1",
		"ipv6":           "",
		"dns_challenge":  "abc",
		"dns_challenges": []any{"abc"},
		"email":          "next@example.org",
		"verified":       false,
		"optout":         false,
		"timestamp":      float64(d.Created.Unix()),
		"last_ping":      float64(d.LastPing.Unix()),
	}
	got, _ := json.Marshal(info)
	exp, _ := json.Marshal(want)
	if string(got) != string(exp) {
		t.Errorf("info\n got %s\nwant %s", got, exp)
	}
	vh, _ := d.Verification()
	for _, secret := range []string{vh, d.ReclamationTokens()[0].Hash} {
		if secret == "" || strings.Contains(r.body, secret) {
			t.Errorf("info shows a secret hash, or the setup set none: %q", secret)
		}
	}

	fresh := e.info(t, e.subscribe(t, "fresh"))
	if fresh["verified"] != false || fresh["email"] != "" || fresh["dns_challenge"] != "" || len(fresh["dns_challenges"].([]any)) != 0 {
		t.Errorf("info of a fresh name: %v", fresh)
	}
	e.fails(t, "MissingParameter", "/info")
	e.fails(t, "InvalidToken", "/info", "token", "00000000-0000-4000-8000-000000000000")
}

// A ping from the same address within the ping granularity writes nothing; an older last ping, or a
// new address, is written.
func TestPingWithoutChange(t *testing.T) {
	e := newEnv(t, nil)
	token := e.subscribe(t, "demo")
	rev := func() int64 { return e.store.View().Revision() }
	before, at := e.stored(t, "demo"), rev()
	e.ok(t, "/ping", "token", token)
	if d := e.stored(t, "demo"); !d.LastPing.Equal(before.LastPing) || rev() != at {
		t.Errorf("a ping with nothing new wrote: last ping %v (was %v), revision %d (was %d)", d.LastPing, before.LastPing, rev(), at)
	}
	old := time.Now().Add(-2 * DefaultPingGranularity)
	if _, err := e.store.Update(context.Background(), etcdstore.ByName("demo"), func(d *etcdstore.Record) error {
		d.LastPing = old
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.ok(t, "/ping", "token", token)
	if d := e.stored(t, "demo"); !d.LastPing.After(old.Add(DefaultPingGranularity)) {
		t.Errorf("a ping after %s did not record its time: %v", 2*DefaultPingGranularity, d.LastPing)
	}
	e.ok(t, "/ping", "token", token, "ip", "198.51.99.7")
	if d := e.stored(t, "demo"); d.IPv4.String() != "198.51.99.7" {
		t.Errorf("a ping with a new address did not record it: %v", d.IPv4)
	}
	e.fails(t, "InvalidToken", "/ping", "token", strings.ToUpper("00000000-0000-4000-8000-000000000000"))
}
