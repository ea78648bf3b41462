package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/regdns/regdns/etcdstore"
	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// The fuzz targets check the parameter readers of params.go and the whole server: no input
// panics, and what a reader accepts keeps the promises the handlers rely on.

// fuzzServer is a Server for the readers, with an operator-reserved name.
func fuzzServer(f *testing.F, allowPrivate bool) *Server {
	f.Helper()
	s, err := New(openStore(f, testEtcd), Config{Zone: zone, Mailer: DirMailer{Dir: f.TempDir()}, Reserved: []string{"admin"}, AllowPrivateAddrs: allowPrivate})
	if err != nil {
		f.Fatal(err)
	}
	return s
}

// refused checks that err is a 400 with one of codes.
func refused(t *testing.T, err error, codes ...string) {
	t.Helper()
	var ce *clientError
	if !errors.As(err, &ce) || !slices.Contains(codes, ce.Code) || ce.status != 0 || ce.Message == "" {
		t.Fatalf("error %#v, want a 400 with one of %v", err, codes)
	}
}

func addSeeds(f *testing.F, seeds ...string) {
	for _, s := range seeds {
		f.Add(s)
	}
}

func FuzzName(f *testing.F) {
	s := fuzzServer(f, false)
	addSeeds(f, "demo", " MiXed-Case1 ", "", "  ", "api", "WWW", "_psl", "ns1", "ns", "ns1a", "admin", "-demo", "demo-",
		"a.b", "de_mo", "dém", "\u212Aelvin", "x\x00", strings.Repeat("a", 63), strings.Repeat("a", 64), "\xff",
		"wpad", "xn--zz", "xn--pple-43d", "xn--bcher-kva", "xn--abc-", "xn--abc-7k4bocn9737efd7a", "xn--e1afmkfd", "xn--")
	f.Fuzz(func(t *testing.T, in string) {
		name, err := s.name(url.Values{"name": {in}})
		if err != nil {
			refused(t, err, "UnavailableName")
			if reason := err.(*clientError).Reason; reason != "MissingParameter" && reason != "ReservedName" && reason != "InvalidName" {
				t.Fatalf("%q refused for reason %q", in, reason)
			}
			return
		}
		if punycodeRefusal(name) != "" {
			t.Fatalf("%q accepted as %q, which is no valid IDNA of one script", in, name)
		}
		if strings.HasPrefix(name, "xn--") {
			u, err := idna.Registration.ToUnicode(name)
			if back, err2 := idna.Registration.ToASCII(u); err != nil || err2 != nil || back != name {
				t.Fatalf("%q accepted as %q, which does not round-trip through IDNA: %q %v %v", in, name, u, err, err2)
			}
		}
		if name != strings.ToLower(strings.TrimSpace(in)) || len(name) < 1 || len(name) > 63 || name[0] == '-' || name[len(name)-1] == '-' {
			t.Fatalf("%q accepted as %q", in, name)
		}
		if strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" || s.isReserved(name) || len(name)+1+len(zone) > 253 {
			t.Fatalf("%q accepted as %q", in, name)
		}
		if again, err := s.name(url.Values{"name": {name}}); again != name || err != nil {
			t.Fatalf("%q does not read back: %q %v", name, again, err)
		}
	})
}

func FuzzDescription(f *testing.F) {
	addSeeds(f, "", " Living room Pi ", strings.Repeat("é", 256), strings.Repeat("x", 257), "a\x00b", "a\nb", "a\xffb", "\u2028", "\u00a0x\u00a0")
	f.Fuzz(func(t *testing.T, in string) {
		desc, err := description(url.Values{"desc": {in}})
		if err != nil {
			refused(t, err, "InvalidDescription")
			return
		}
		if desc != strings.TrimSpace(in) || !utf8.ValidString(desc) || utf8.RuneCountInString(desc) > 256 || strings.ContainsFunc(desc, unicode.IsControl) {
			t.Fatalf("%q accepted as %q", in, desc)
		}
		if again, err := description(url.Values{"desc": {desc}}); again != desc || err != nil {
			t.Fatalf("%q does not read back: %q %v", desc, again, err)
		}
	})
}

func FuzzMode(f *testing.F) {
	addSeeds(f, "", "0", "1", " 1 ", "2", "-1", "01", "tunnel", "\x001")
	f.Fuzz(func(t *testing.T, in string) {
		m, err := mode(url.Values{"mode": {in}})
		want, ok := map[string]etcdstore.Mode{"": etcdstore.ModeTunnel, "0": etcdstore.ModeTunnel, "1": etcdstore.ModeDynamic}[strings.TrimSpace(in)]
		if !ok {
			refused(t, err, "InvalidMode")
			return
		}
		if err != nil || m != want {
			t.Fatalf("%q read as %d, %v; want %d", in, m, err, want)
		}
	})
}

func FuzzChallenge(f *testing.F) {
	addSeeds(f, "abc", "Xq3-b_KPv0Jt2nqF5uYjLx8m1w4cQ6rZ9sAeHdG7iTo", "", " x ", "a b", `a"b`, "a'b", `a\b`, "a\tb", "añb",
		strings.Repeat("~", 255), strings.Repeat("a", 256))
	f.Fuzz(func(t *testing.T, in string) {
		c, err := challenge(url.Values{"challenge": {in}})
		if err != nil {
			refused(t, err, "MissingParameter", "InvalidChallenge")
			return
		}
		if c != strings.TrimSpace(in) || len(c) < 1 || len(c) > 255 {
			t.Fatalf("%q accepted as %q", in, c)
		}
		for _, b := range []byte(c) {
			if b < '!' || b > '~' || b == '"' || b == '\'' || b == '\\' {
				t.Fatalf("%q accepted with byte %q, which would change the TXT record", in, b)
			}
		}
		if again, err := challenge(url.Values{"challenge": {c}}); again != c || err != nil {
			t.Fatalf("%q does not read back: %q %v", c, again, err)
		}
	})
}

func FuzzEmail(f *testing.F) {
	addSeeds(f, "owner@example.org", " Owner@Example.ORG ", "", "owner", "owner@localhost", "Owner <owner@example.org>",
		"owner@example.org\r\nBcc: x@example.org", "océane@example.org", `"a b"@example.org`, `"a"@example.org`,
		"a&b@example.org", "a+tag@example.org", "a@b@example.org", "(c)a@example.org", "a@[127.0.0.1].org", "x@[127.0.0.1]",
		"x@-bad-.org", "x@127.0.0.1", "j.o.h.n@googlemail.com", "JÖHN@Exämple.com", "JO\u0308HN@xn--exmple-cua.com",
		"x@-bäd-.org", "x@xn--zz.org", "x@bücher.123", "jo\u200bhn@example.org", "j\xffhn@example.org", "x@example\u3002org",
		"x@\uab73\uab03\uab79.com", "\u01c5@example.org", "x@İ.com", "ı@straße.de", "x@例え.テスト")
	f.Fuzz(func(t *testing.T, in string) {
		addr, err := email(url.Values{"email": {in}})
		if err != nil {
			refused(t, err, "MissingParameter", "InvalidEmail")
			return
		}
		at := strings.LastIndexByte(addr, '@')
		local, domain := addr[:at], addr[at+1:]
		if !utf8.ValidString(addr) || strings.ContainsFunc(addr, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsGraphic(r) }) ||
			local != strings.ToLower(local) || !norm.NFC.IsNormalString(addr) || len(addr) > 254 {
			t.Fatalf("%q accepted as %q", in, addr)
		}
		// The domain is a host name in its IDNA form, and stored as the Unicode of that form.
		ascii, err := idna.Lookup.ToASCII(domain)
		if err != nil || strings.ContainsAny(domain, "[]:") || !isMailDomain(ascii) || len(local)+1+len(ascii) > 254 {
			t.Fatalf("%q accepted with domain %q (%q, %v), which is no host name", in, domain, ascii, err)
		}
		if u, err := idna.Lookup.ToUnicode(ascii); u != domain || err != nil {
			t.Fatalf("%q accepted with domain %q, not the Unicode form %q of %q (%v)", in, domain, u, ascii, err)
		}
		if a, err := mail.ParseAddress(addr); err != nil || a.Address != addr {
			t.Fatalf("%q accepted as %q, which does not parse as itself: %v", in, addr, err)
		}
		msg, err := Mail{To: addr, Subject: "x"}.compose("registry@mydomain.org", time.Now())
		if err != nil {
			t.Fatalf("%q accepted but no mail can be composed to it: %v", addr, err)
		}
		if msg.to != local+"@"+ascii || msg.utf8 != nonASCII(local) {
			t.Fatalf("%q is mailed to %q (SMTPUTF8 %v)", addr, msg.to, msg.utf8)
		}
		if again, err := email(url.Values{"email": {addr}}); again != addr || err != nil {
			t.Fatalf("%q does not read back: %q %v", addr, again, err)
		}
		// What was typed reaches the mailbox of what is stored, the mailbox the limits count.
		if box := mailbox(addr); box == "" || !sameMailbox(addr, in) || !sameMailbox(addr, box) {
			t.Fatalf("mailbox of %q is %q, of %q %q", addr, box, in, mailbox(in))
		}
		if !nonASCII(addr) && !sameMailbox(addr, strings.ToUpper(addr)) {
			t.Fatalf("%q and its upper case reach different mailboxes", addr)
		}
	})
}

// FuzzMailbox: whatever /subscribe's email parameter holds, comparing it cannot fail, and the
// mailbox is a fixed point that ignores case.
func FuzzMailbox(f *testing.F) {
	addSeeds(f, "owner@example.org", "Owner+tag@Example.ORG", "j.o.h.n@googlemail.com", "jöhn@example.com", "jo\u0308hn@example.com",
		"a@b", "not-an-address", "", "@", "+@gmail.com", "x@bücher.de", "x@xn--bcher-kva.de", "\xff@\xfe", "a@b@c", "x@İ.com")
	f.Fuzz(func(t *testing.T, in string) {
		box := mailbox(in)
		if again := mailbox(box); again != box {
			t.Fatalf("mailbox(%q) = %q, but mailbox(%q) = %q", in, box, box, again)
		}
		if in != "" && strings.ContainsRune(in, '@') != strings.ContainsRune(box, '@') {
			t.Fatalf("mailbox(%q) = %q", in, box)
		}
		if sameMailbox(in, "") || sameMailbox("", in) {
			t.Fatalf("%q reaches the mailbox of an empty address", in)
		}
	})
}

func FuzzOptOut(f *testing.F) {
	addSeeds(f, "", "1", "0", "true", "FALSE", " True ", "yes", "2", "\x00")
	f.Fuzz(func(t *testing.T, in string) {
		v, set, err := optOut(url.Values{"optout": {in}})
		want, ok := map[string]bool{"": false, "1": true, "true": true, "0": false, "false": false}[strings.ToLower(strings.TrimSpace(in))]
		if !ok {
			refused(t, err, "InvalidOptOut")
			return
		}
		if err != nil || v != want || set != (strings.TrimSpace(in) != "") {
			t.Fatalf("%q read as %v, set %v, %v", in, v, set, err)
		}
	})
}

func FuzzSecret(f *testing.F) {
	addSeeds(f, "", " ", "5FC38090-7F60-4D97-97D4-0B3D4F13E9E6 ", "00000000-0000-4000-8000-000000000000", "\u212A", "\xff", "İ")
	f.Fuzz(func(t *testing.T, in string) {
		q := url.Values{"token": {in}}
		v := secret(q, "token")
		if v != strings.ToLower(strings.TrimSpace(in)) {
			t.Fatalf("%q read as %q", in, v)
		}
		req, err := requiredSecret(q, "token")
		if v == "" {
			refused(t, err, "MissingParameter")
		} else if req != v || err != nil {
			t.Fatalf("%q: required reads %q %v, optional %q", in, req, err, v)
		}
	})
}

func FuzzIP(f *testing.F)   { fuzzAddress(f, "ip") }
func FuzzIPv6(f *testing.F) { fuzzAddress(f, "ipv6") }

// fuzzAddress reads param with a strict server and one that allows private addresses.
func fuzzAddress(f *testing.F, param string) {
	strict, lax := fuzzServer(f, false), fuzzServer(f, true)
	code := map[string]string{"ip": "InvalidIP", "ipv6": "InvalidIPv6"}[param]
	addSeeds(f, "", " 81.2.69.142 ", "::ffff:81.2.69.142", "10.0.0.1", "127.0.0.1", "0.0.0.0", "255.255.255.255", "100.64.0.1",
		"192.0.2.1", "198.18.0.1", "240.0.0.1", "224.0.0.1", "1.2.3", "01.2.3.4", "2a00:1450:4001::1", "::1", "::", "fd00::1",
		"fe80::1%eth0", "ff02::1", "2001:db8::1", "64:ff9b::5102:458e", "::5102:458e", "2A00:1450:4001:0:0:0:0:1", "::ffff:0:0",
		"64:ff9b::a00:1", "2002:a00:1::1", "2002:5102:458e::1", "2001:0:4136:e378:8000:63bf:f5ff:fffe", "::a00:1", "64:ff9b:1::a00:1")
	// The ranges the issue names, written down again here so that the fuzzer checks the server's list.
	var refusedRanges []netip.Prefix
	for _, p := range []string{"0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15", "198.51.100.0/24",
		"203.0.113.0/24", "240.0.0.0/4", "255.255.255.255/32", "2001:db8::/32", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
		"127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8", "::ffff:0:0/96"} {
		refusedRanges = append(refusedRanges, netip.MustParsePrefix(p))
	}
	f.Fuzz(func(t *testing.T, in string) {
		q := url.Values{param: {in}}
		a, err := strict.address(q, param)
		b, laxErr := lax.address(q, param)
		if laxErr != nil {
			refused(t, laxErr, code)
			if err == nil {
				t.Fatalf("%q accepted strictly as %v but refused with AllowPrivateAddrs", in, a)
			}
		}
		if strings.TrimSpace(in) == "" {
			if err != nil || laxErr != nil || a.IsValid() || b.IsValid() {
				t.Fatalf("empty %q read as %v %v, %v %v", in, a, b, err, laxErr)
			}
			return
		}
		if err == nil && a != b {
			t.Fatalf("%q read as %v strictly, %v with AllowPrivateAddrs", in, a, b)
		}
		if laxErr != nil {
			return
		}
		want, perr := netip.ParseAddr(strings.TrimSpace(in))
		if perr != nil || b != want.Unmap() || b.Zone() != "" || b.Is6() != (param == "ipv6") || b.Is4In6() {
			t.Fatalf("%q accepted as %v", in, b)
		}
		if back, err := netip.ParseAddr(b.String()); err != nil || back != b {
			t.Fatalf("%v does not read back: %v %v", b, back, err)
		}
		if b.IsUnspecified() || b.IsMulticast() || b == broadcast {
			t.Fatalf("%q accepted as %v, which is no host's address", in, b)
		}
		if err != nil {
			refused(t, err, code)
			return
		}
		if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() {
			t.Fatalf("%q accepted as %v", in, a)
		}
		for _, p := range refusedRanges {
			if p.Contains(a) {
				t.Fatalf("%q accepted as %v, in %v", in, a, p)
			}
		}
		if v4, ok := embeddedIPv4(a); ok && strict.refusal(v4) != "" {
			t.Fatalf("%q accepted as %v, which leads to %v", in, a, v4)
		}
	})
}

// FuzzServeHTTP sends arbitrary paths, query strings and X-Forwarded-For headers through the
// server over HTTP. "TOKEN" in the query stands for a live token, so that the fuzzer reaches
// past the token check. With etcd healthy, and an SMTP server that offers SMTPUTF8 (without
// it an address with a non-ASCII local part is a 501), no request may fail with a 5xx.
func FuzzServeHTTP(f *testing.F) {
	e := newEnvSMTPUTF8(f, true, func(c *Config) {
		c.MailLimit = RateLimit{} // the default, so that fuzzing sends few mails
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	for _, s := range [][3]string{
		{"/subscribe", "name=demo", ""},
		{"/subscribe", "name=x&desc=a+b&mode=1&ip=81.2.69.142&ipv6=2a00:1450::1&email=a%40example.org", "81.2.69.142"},
		{"/subscribe", "name=%00&reclamationToken=TOKEN", "garbage, 10.0.0.1"},
		{"/unsubscribe", "reclamationToken=x", ""},
		{"/reclaim", "name=demo", ""},
		{"/ping", "token=TOKEN&ip=10.0.0.1", "2a00:1450::5"},
		{"/ping", "token=TOKEN&ipv6=2a00:1450::1", ""},
		{"/dnsconfig", "token=TOKEN&challenge=abc", ""},
		{"/info", "token=TOKEN", ""},
		{"/setemail", "token=TOKEN&email=a%40example.org&optout=1", ""},
		{"/setemail", "token=TOKEN&email=j%C3%B6hn%40ex%C3%A4mple.com", ""},
		{"/verifyemail", "s=00000000-0000-4000-8000-000000000000", ""},
		{"/revokeemail", "token=TOKEN", ""},
		{"/connectivity-check", "", ""},
		{"/nope", "a=%zz;b", ""},
		{"//subscribe/../info", "token=TOKEN", ""},
		{"/Subscribe/", "name=demo", ""},
		{"/ping", "token=TOKEN&token=x&ip=&ip=81.2.69.142", ""},
	} {
		f.Add(s[0], s[1], s[2])
	}
	token := ""
	f.Fuzz(func(t *testing.T, path, query, forwarded string) {
		// The fuzzer may have unsubscribed the name; a new one keeps TOKEN meaningful.
		if strings.Contains(query, "TOKEN") {
			if _, err := e.store.Get(context.Background(), etcdstore.ByToken(token)); errors.Is(err, etcdstore.ErrNotFound) {
				token = e.subscribe(t, "fuzz-"+uuid.NewString()[:8])
			} else if err != nil {
				t.Fatal(err)
			}
		}
		req, err := http.NewRequest(http.MethodGet, e.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Path = "/" + strings.ReplaceAll(strings.TrimPrefix(path, "/"), "TOKEN", token)
		req.URL.RawQuery = strings.ReplaceAll(escapeQuery(query), "TOKEN", token)
		// Header values cannot hold control characters.
		req.Header.Set("X-Forwarded-For", strings.Map(func(r rune) rune {
			if r < ' ' || r == 0x7f {
				return -1
			}
			return r
		}, forwarded))
		resp, err := fuzzClient.Do(req)
		if uerr := (*url.Error)(nil); errors.As(err, &uerr) {
			err = uerr.Err // without the URL, which holds the token
		}
		if err != nil {
			t.Fatalf("%q %q: %v", path, query, err)
		}
		defer resp.Body.Close()
		var body struct{ Error, Message string }
		isJSON := resp.Header.Get("Content-Type") == "application/json"
		if isJSON && resp.StatusCode != http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error == "" || body.Message == "" {
				t.Errorf("%q %q: %d with a JSON body that is no error: %v", path, query, resp.StatusCode, err)
			}
		}
		if resp.StatusCode >= 500 {
			t.Fatalf("%q %q: %d %s", path, query, resp.StatusCode, body.Error)
		}
		if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
			t.Errorf("%q %q: 429 without Retry-After", path, query)
		}
	})
}

var fuzzClient = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// escapeQuery percent-encodes what cannot stand in a request line's query (controls, spaces,
// non-ASCII, '#') and leaves the rest, malformed escapes included, for the server to judge.
func escapeQuery(q string) string {
	var b strings.Builder
	for _, c := range []byte(q) {
		if c <= ' ' || c >= 0x7f || c == '#' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}
