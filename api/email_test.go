package api

import (
	"bytes"
	"context"
	"fmt"
	golog "log"
	"mime"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/regdns/regdns/etcdstore"
)

func TestSetEmailAndVerify(t *testing.T) {
	e := newEnv(t, nil)
	token := e.subscribe(t, "demo")
	r := e.ok(t, "/setemail", "token", token, "email", " Owner@Example.org ", "optout", "1")
	if r.body != "" {
		t.Errorf("setemail body %q, want empty", r.body)
	}

	m := e.smtp.Last(t)
	if m.From != "registry@mydomain.org" || len(m.To) != 1 || m.To[0] != "owner@example.org" {
		t.Errorf("envelope from %q to %v", m.From, m.To)
	}
	msg, body := m.Parse(t)
	for header, want := range map[string]string{
		"From":         `"Registry" <registry@mydomain.org>`,
		"To":           "<owner@example.org>",
		"MIME-Version": "1.0",
		"Content-Type": "text/plain; charset=utf-8",
	} {
		if got := msg.Header.Get(header); got != want {
			t.Errorf("header %s: %q, want %q", header, got, want)
		}
	}
	if s := msg.Header.Get("Subject"); !strings.Contains(s, "demo.mydomain.org") {
		t.Errorf("subject %q does not name the domain", s)
	}
	if date, err := msg.Header.Date(); err != nil || time.Since(date) > time.Minute {
		t.Errorf("Date %v: %v", date, err)
	}
	if id := msg.Header.Get("Message-ID"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@mydomain.org>") {
		t.Errorf("Message-ID %q", id)
	}
	link := m.Line(t, e.url+"/verifyemail?s=")
	if id := strings.TrimPrefix(link, e.url+"/verifyemail?s="); !isUUID(id) {
		t.Errorf("link %q does not end in a verification id", link)
	}
	if !strings.Contains(body, "\r\n"+link+"\r\n") {
		t.Errorf("link not on a line of its own:\n%s", body)
	}

	// The address is the contact at once, unverified (issue 10).
	info := e.info(t, token)
	if _, ok := info["pending_email"]; ok || info["verified"] != false || info["email"] != "owner@example.org" || info["optout"] != true {
		t.Errorf("before verification: %v", info)
	}

	page := fetch(t, http.MethodGet, nil, link)
	if page.status != http.StatusOK || page.header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("verify: %d %s %s", page.status, page.header.Get("Content-Type"), page.body)
	}
	if !strings.Contains(page.body, "demo.mydomain.org") || !strings.Contains(page.body, "owner@example.org") {
		t.Errorf("success page does not show the domain and address:\n%s", page.body)
	}
	if page.header.Get("Access-Control-Allow-Origin") != "" {
		t.Error("the verification page allows cross-origin reads")
	}
	info = e.info(t, token)
	if info["email"] != "owner@example.org" || info["verified"] != true {
		t.Errorf("after verification: %v", info)
	}

	again := fetch(t, http.MethodGet, nil, link)
	if again.status != http.StatusBadRequest || again.header.Get("Content-Type") != "text/html; charset=utf-8" || !strings.Contains(again.body, "already used") {
		t.Errorf("reused link: %d %s\n%s", again.status, again.header.Get("Content-Type"), again.body)
	}

	// The same address again keeps it verified; any other replaces the contact at once,
	// unverified.
	e.ok(t, "/setemail", "token", token, "email", "OWNER@example.org")
	if info := e.info(t, token); info["email"] != "owner@example.org" || info["verified"] != true {
		t.Errorf("after the same address again: %v", info)
	}
	e.ok(t, "/setemail", "token", token, "email", "owner+gw@example.org")
	if info := e.info(t, token); info["email"] != "owner+gw@example.org" || info["verified"] != false {
		t.Errorf("after another address of the same mailbox: %v", info)
	}
	e.ok(t, "/setemail", "token", token, "email", "next@example.org", "optout", "false")
	if info := e.info(t, token); info["optout"] != false || info["email"] != "next@example.org" || info["verified"] != false {
		t.Errorf("a new address is not the unverified contact, or optout=false was ignored: %v", info)
	}
	e.ok(t, "/setemail", "token", token, "email", "next@example.org", "optout", "TRUE")
	e.ok(t, "/setemail", "token", token, "email", "next@example.org")
	if info := e.info(t, token); info["optout"] != true {
		t.Errorf("setemail without optout changed it: %v", info)
	}
}

func TestSetEmailRejects(t *testing.T) {
	e := newEnv(t, nil)
	token := e.subscribe(t, "demo")
	for _, tt := range []struct {
		name   string
		params []string
		code   string
	}{
		{"missing token", []string{"email", "a@example.org"}, "MissingParameter"},
		{"unknown token", []string{"token", "nope", "email", "a@example.org"}, "InvalidToken"},
		{"missing email", []string{"token", token}, "MissingParameter"},
		{"not an address", []string{"token", token, "email", "owner"}, "InvalidEmail"},
		{"display name", []string{"token", token, "email", "Owner <owner@example.org>"}, "InvalidEmail"},
		{"no dot in the domain", []string{"token", token, "email", "owner@localhost"}, "InvalidEmail"},
		{"domain literal", []string{"token", token, "email", "x@[127.0.0.1]"}, "InvalidEmail"},
		{"IPv6 domain literal", []string{"token", token, "email", "x@[IPv6:::1]"}, "InvalidEmail"},
		{"domain label with hyphens at its ends", []string{"token", token, "email", "x@-bad-.org"}, "InvalidEmail"},
		{"empty domain label", []string{"token", token, "email", "x@example..org"}, "InvalidEmail"},
		{"numeric top-level domain", []string{"token", token, "email", "x@127.0.0.1"}, "InvalidEmail"},
		{"underscore in the domain", []string{"token", token, "email", "x@my_host.org"}, "InvalidEmail"},
		{"header injection", []string{"token", token, "email", "owner@example.org\r\nBcc: x@example.org"}, "InvalidEmail"},
		{"Unicode domain label with hyphens at its ends", []string{"token", token, "email", "x@-bäd-.org"}, "InvalidEmail"},
		{"Unicode domain with a digit top-level label", []string{"token", token, "email", "x@bücher.123"}, "InvalidEmail"},
		{"invalid IDNA label", []string{"token", token, "email", "x@xn--zz.org"}, "InvalidEmail"},
		{"invisible character in the local part", []string{"token", token, "email", "jo\u200bhn@example.org"}, "InvalidEmail"},
		{"control character in the local part", []string{"token", token, "email", "jö\u0085hn@example.org"}, "InvalidEmail"},
		{"no-break space in the local part", []string{"token", token, "email", "jö\u00a0hn@example.org"}, "InvalidEmail"},
		{"invalid UTF-8", []string{"token", token, "email", "j\xffhn@example.org"}, "InvalidEmail"},
		{"too long", []string{"token", token, "email", strings.Repeat("a", 64) + "@" + strings.Repeat("b", 186) + ".org"}, "InvalidEmail"},
		{"invalid optout", []string{"token", token, "email", "a@example.org", "optout", "maybe"}, "InvalidOptOut"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.fails(t, tt.code, "/setemail", tt.params...)
		})
	}
	if n := len(e.smtp.Messages()); n != 0 {
		t.Errorf("%d mails sent for refused requests", n)
	}
}

func TestVerifyEmailRejects(t *testing.T) {
	e := newEnv(t, nil)
	for _, tt := range []struct {
		name, query, reason string
	}{
		{"missing id", "", "incomplete"},
		{"empty id", "?s=%20", "incomplete"},
		{"unknown id", "?s=00000000-0000-4000-8000-000000000000", "unknown"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := fetch(t, http.MethodGet, nil, e.url+"/verifyemail"+tt.query)
			if r.status != http.StatusBadRequest || r.header.Get("Content-Type") != "text/html; charset=utf-8" || !strings.Contains(r.body, tt.reason) {
				t.Errorf("%d %s\n%s", r.status, r.header.Get("Content-Type"), r.body)
			}
		})
	}
}

func TestVerificationLinkExpires(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.VerifyTTL = time.Nanosecond })
	token := e.subscribe(t, "demo")
	r := fetch(t, http.MethodGet, nil, e.verifyLink(t, token, "owner@example.org"))
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "expired") {
		t.Errorf("expired link: %d\n%s", r.status, r.body)
	}
	// The address stays the contact, unverified, after its link expired (issue 10).
	if info := e.info(t, token); info["email"] != "owner@example.org" || info["verified"] != false {
		t.Errorf("after an expired link: %v", info)
	}
}

func TestVerificationPageEscapes(t *testing.T) {
	e := newEnv(t, nil)
	token := e.subscribe(t, "demo")
	r := fetch(t, http.MethodGet, nil, e.verifyLink(t, token, "a&b@example.org"))
	if r.status != http.StatusOK || !strings.Contains(r.body, "a&amp;b@example.org") {
		t.Errorf("%d\n%s", r.status, r.body)
	}
}

func TestCustomTemplates(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Templates = Templates{
			VerifySubject: "Bitte bestätigen: {{.Name}} in {{.Zone}}\n",
			VerifyBody:    "Link:\n{{.Link}}\nfür {{.Email}}\n",
			SuccessPage:   "<p>ok {{.Domain}}</p>",
		}
	})
	token := e.subscribe(t, "demo")
	link := e.verifyLink(t, token, "owner@example.org")
	msg, _ := e.smtp.Last(t).Parse(t)
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil || subject != "Bitte bestätigen: demo in mydomain.org" {
		t.Errorf("subject %q (%v), raw %q", subject, err, msg.Header.Get("Subject"))
	}
	if r := fetch(t, http.MethodGet, nil, link); r.body != "<p>ok demo.mydomain.org</p>" {
		t.Errorf("custom page %q", r.body)
	}
}

// revokeemail cancels the verification under way and withdraws the verified state; the
// address stays the contact for reclamation, as in the original server.
func TestRevokeEmail(t *testing.T) {
	e := newEnv(t, nil)
	token := e.subscribe(t, "demo")
	e.verify(t, token, "owner@example.org")
	e.ok(t, "/revokeemail", "token", token)
	if info := e.info(t, token); info["email"] != "owner@example.org" || info["verified"] != false {
		t.Errorf("after revoking a verified address: %v", info)
	}

	link := e.verifyLink(t, token, "next@example.org")
	e.ok(t, "/revokeemail", "token", token)
	if info := e.info(t, token); info["email"] != "next@example.org" || info["verified"] != false {
		t.Errorf("after revoke: %v", info)
	}
	if r := fetch(t, http.MethodGet, nil, link); r.status != http.StatusBadRequest {
		t.Errorf("revoked link answered %d", r.status)
	}
	e.fails(t, "UnavailableNameReclamationPossible", "/subscribe", "name", "demo", "email", "next@example.org")
	e.ok(t, "/revokeemail", "token", token)
	e.fails(t, "MissingParameter", "/revokeemail")
	e.fails(t, "InvalidToken", "/revokeemail", "token", "nope")
}

// A new contact address drops the reclamation tokens mailed to the previous one: they prove
// that mailbox, not the new one. An address of the same mailbox keeps them.
func TestNewContactDropsReclamationTokens(t *testing.T) {
	e := newEnv(t, nil)
	token := e.subscribe(t, "demo")
	e.ok(t, "/setemail", "token", token, "email", "owner@example.org")
	rt := e.reclamationToken(t, "demo")
	e.ok(t, "/setemail", "token", token, "email", "OWNER@example.org")
	token = e.subscribe(t, "demo", "reclamationToken", rt)
	e.ok(t, "/setemail", "token", token, "email", "other@example.org")
	e.fails(t, "ReclamationTokenMismatch", "/subscribe", "name", "demo", "reclamationToken", rt)
	e.info(t, token)
}

// An address with a non-ASCII local part (RFC 6531) is mailed with SMTPUTF8, its domain in
// IDNA form in the envelope; the headers show it as stored (RFC 6532), and the subject is
// still RFC 2047-encoded. It is the contact like any other.
func TestSetEmailInternationalised(t *testing.T) {
	e := newEnvSMTPUTF8(t, true, func(c *Config) {
		c.Templates = Templates{VerifySubject: "Bestätigen: {{.Domain}}", VerifyBody: "für {{.Email}}:\n{{.Link}}\n"}
	})
	token := e.subscribe(t, "demo")
	link := e.verifyLink(t, token, " JÖHN@Exämple.com ")
	m := e.smtp.Last(t)
	if !m.UTF8 || m.From != "registry@mydomain.org" || strings.Join(m.To, ",") != "jöhn@xn--exmple-cua.com" {
		t.Errorf("envelope SMTPUTF8=%v from %q to %v", m.UTF8, m.From, m.To)
	}
	msg, body := m.Parse(t)
	if to := msg.Header.Get("To"); to != "<jöhn@exämple.com>" {
		t.Errorf("To %q", to)
	}
	raw := msg.Header.Get("Subject")
	subject, err := new(mime.WordDecoder).DecodeHeader(raw)
	if !strings.HasPrefix(raw, "=?utf-8?q?") || nonASCII(raw) || err != nil || subject != "Bestätigen: demo.mydomain.org" {
		t.Errorf("subject %q decodes to %q (%v)", raw, subject, err)
	}
	if !strings.Contains(body, "für jöhn@exämple.com:\r\n") {
		t.Errorf("body does not name the address:\n%s", body)
	}
	if info := e.info(t, token); info["email"] != "jöhn@exämple.com" || info["verified"] != false {
		t.Errorf("before verification: %v", info)
	}
	if r := fetch(t, http.MethodGet, nil, link); r.status != http.StatusOK {
		t.Fatalf("verify: %d %s", r.status, r.body)
	}
	if info := e.info(t, token); info["email"] != "jöhn@exämple.com" || info["verified"] != true {
		t.Errorf("after verification: %v", info)
	}

	// The same mailbox typed otherwise (decomposed, upper case, the domain in IDNA form) opens
	// the reclaim path, whose mail goes the same way.
	e.fails(t, "UnavailableNameReclamationPossible", "/subscribe", "name", "demo", "email", "JO\u0308HN@xn--exmple-cua.com")
	e.reclamationToken(t, "demo")
	if m := e.smtp.Last(t); !m.UTF8 || strings.Join(m.To, ",") != "jöhn@xn--exmple-cua.com" {
		t.Errorf("reclamation mail: SMTPUTF8=%v to %v", m.UTF8, m.To)
	}
}

// Without SMTPUTF8 at the server no mail can reach a non-ASCII local part: /setemail answers
// 501, logs why, and leaves the record as it was.
func TestSetEmailInternationalisedWithoutSMTPUTF8(t *testing.T) {
	var logs bytes.Buffer
	golog.SetOutput(&logs)
	defer golog.SetOutput(os.Stderr)
	e := newEnvSMTPUTF8(t, false, nil)
	token := e.subscribe(t, "demo")
	e.ok(t, "/setemail", "token", token, "email", "owner@example.org")
	before := e.stored(t, "demo")

	r := e.get(t, "/setemail", "token", token, "email", "jöhn@exämple.com")
	if r.status != http.StatusNotImplemented || r.code() != "InternalError" {
		t.Errorf("/setemail: %d %s", r.status, r.body)
	}
	// A bad token is refused as such, before the server is asked.
	e.fails(t, "InvalidToken", "/setemail", "token", "00000000-0000-4000-8000-000000000000", "email", "jöhn@exämple.com")
	e.fails(t, "MissingParameter", "/setemail", "email", "jöhn@exämple.com")
	if after := e.stored(t, "demo"); !reflect.DeepEqual(after, before) {
		t.Errorf("the record changed:\n%+v\nbefore:\n%+v", after, before)
	}
	if n := len(e.smtp.Messages()); n != 1 {
		t.Errorf("%d mails reached the server, want only the first address's", n)
	}

	// Such a contact stored otherwise (imported, or set while the relay offered SMTPUTF8) gets
	// no reclamation mail either: a 501, as for any mail the relay does not take.
	if _, err := e.store.Update(context.Background(), etcdstore.ByName("demo"), func(d *etcdstore.Record) error {
		d.SetEmail("jöhn@exämple.com", false)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if r := e.get(t, "/reclaim", "name", "demo"); r.status != http.StatusNotImplemented {
		t.Errorf("/reclaim: %d %s", r.status, r.body)
	}
	if n := len(e.smtp.Messages()); n != 1 {
		t.Errorf("%d mails reached the server, want only the first address's", n)
	}
	golog.SetOutput(os.Stderr)
	got := logs.String()
	for _, want := range []string{"/setemail: contact address not reachable", "/reclaim: sending mail", "SMTPUTF8"} {
		if !strings.Contains(got, want) {
			t.Errorf("log does not say %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, token) {
		t.Errorf("log shows the token:\n%s", got)
	}
}

// An ASCII local part needs no SMTPUTF8: a Unicode domain goes in its IDNA form, in the
// envelope and the headers, whether the server offers SMTPUTF8 or not.
func TestSetEmailUnicodeDomain(t *testing.T) {
	for _, smtputf8 := range []bool{true, false} {
		t.Run(fmt.Sprintf("SMTPUTF8 offered %v", smtputf8), func(t *testing.T) {
			e := newEnvSMTPUTF8(t, smtputf8, nil)
			token := e.subscribe(t, "demo")
			e.verify(t, token, "Owner@Bücher.de")
			m := e.smtp.Last(t)
			if m.UTF8 || strings.Join(m.To, ",") != "owner@xn--bcher-kva.de" {
				t.Errorf("envelope SMTPUTF8=%v to %v", m.UTF8, m.To)
			}
			header, _, _ := strings.Cut(m.Data, "\r\n\r\n")
			if msg, _ := m.Parse(t); msg.Header.Get("To") != "<owner@xn--bcher-kva.de>" || nonASCII(header) {
				t.Errorf("header not in ASCII:\n%s", header)
			}
			// The body names the address as stored, in UTF-8, declared as 8-bit.
			if _, body := m.Parse(t); !strings.Contains(body, "owner@bücher.de") || !m.EightBit {
				t.Errorf("BODY=8BITMIME %v, body:\n%s", m.EightBit, body)
			}
			// One form is stored per address: the IDNA form given later is the same address.
			if info := e.info(t, token); info["email"] != "owner@bücher.de" || info["verified"] != true {
				t.Errorf("after verification: %v", info)
			}
			e.ok(t, "/setemail", "token", token, "email", "owner@xn--bcher-kva.de")
			if info := e.info(t, token); info["email"] != "owner@bücher.de" || info["verified"] != true {
				t.Errorf("after the IDNA form of the same address: %v", info)
			}
		})
	}
}
