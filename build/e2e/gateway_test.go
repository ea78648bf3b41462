package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/regdns/regdns/api/mailtest"
)

// The gateway in the field (see original-server.md) calls the API in fixed sequences and
// reads failures only through the substrings of their "error". These tests replay its
// sequences against ./coredns with a real SMTP server, with the default mail limit.

// gatewaySays is what the gateway's setup page shows for a failed /subscribe: it looks for
// substrings of the error code, and for nothing else.
func gatewaySays(body string) string {
	var e struct{ Error string }
	json.Unmarshal([]byte(body), &e)
	switch {
	case strings.Contains(e.Error, "UnavailableName") && strings.Contains(e.Error, "ReclamationPossible"):
		return "already used, with a reclaim link"
	case strings.Contains(e.Error, "UnavailableName"):
		return "already used"
	case strings.Contains(e.Error, "ReclamationTokenMismatch"):
		return "invalid reclamation token"
	}
	return "Error issuing certificate, try again"
}

// gateway is one gateway, calling from its own address through the trusted proxy.
type gateway struct {
	p  *product
	ip string
}

func (g gateway) call(path string, params url.Values) (int, string) {
	g.p.t.Helper()
	return g.p.call(path, params, http.Header{"X-Real-Ip": {g.ip}})
}

// subscribe is the setup form's submit: /subscribe, then /setemail (whose status the gateway
// ignores). It returns the token, or "" and what the page shows.
func (g gateway) subscribe(params url.Values, email string) (token, says string) {
	g.p.t.Helper()
	code, body := g.call("/subscribe", params)
	if code != http.StatusOK {
		return "", gatewaySays(body)
	}
	var sub struct{ Name, Token string }
	if err := json.Unmarshal([]byte(body), &sub); err != nil || sub.Token == "" {
		g.p.t.Fatalf("subscribe %v: %s", params, body)
	}
	g.call("/setemail", url.Values{"token": {sub.Token}, "email": {email}})
	return sub.Token, ""
}

// certificateStep sets the ACME challenge as the gateway does before its CA is asked; the
// tests then let the CA "fail", as it often does in the field.
func (g gateway) certificateStep(token, value string) {
	g.p.t.Helper()
	if code, body := g.call("/dnsconfig", url.Values{"token": {token}, "challenge": {value}}); code != http.StatusOK {
		g.p.t.Fatalf("dnsconfig: %d %s", code, body)
	}
}

// pasted is a mailed token as the gateway sends it after the user pasted it.
func pasted(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func TestGatewayFirstSetupRetry(t *testing.T) {
	mb := &mailtest.Server{SMTPUTF8: true}
	p := startProduct(t, mb.Start(t, "none", nil))
	g := gateway{p, "81.2.69.10"}
	const owner = "Owner@Example.net"
	form := url.Values{"name": {"home"}, "email": {owner}}

	token, says := g.subscribe(form, owner)
	if token == "" {
		t.Fatalf("first submit: %s", says)
	}
	if m := mb.Next(t); strings.Join(m.To, ",") != "owner@example.net" || linkRE.FindString(m.Data) == "" {
		t.Fatalf("verification mail to %q:\n%s", m.To, m.Data)
	}
	g.certificateStep(token, "first-try")

	// The user submits again before opening the mail: the name is taken, but theirs.
	if _, says := g.subscribe(form, owner); says != "already used, with a reclaim link" {
		t.Fatalf("second submit shows %q", says)
	}
	g.call("/reclaim", url.Values{"name": {"home"}})
	m := mb.Next(t)
	rt := tokenRE.FindStringSubmatch(m.Data)
	if strings.Join(m.To, ",") != "owner@example.net" || rt == nil {
		t.Fatalf("reclamation mail to %q:\n%s", m.To, m.Data)
	}
	reclaim := url.Values{"name": {"home"}, "reclamationToken": {pasted(" " + strings.ToUpper(rt[1]) + "\n")}}
	second, says := g.subscribe(reclaim, owner)
	if second == "" || second == token {
		t.Fatalf("reclaim with the mailed token: %q, shows %q", second, says)
	}
	mb.Next(t) // the /setemail after it
	g.certificateStep(second, "second-try")

	// The certificate step failed again: the same form, the same token, once more.
	third, says := g.subscribe(reclaim, owner)
	if third == "" || third == second {
		t.Fatalf("second reclaim with the same token: %q, shows %q", third, says)
	}
	mb.Next(t)
	g.certificateStep(third, "third-try")
	if code, _ := g.call("/info", url.Values{"token": {second}}); code != http.StatusBadRequest {
		t.Errorf("the replaced token still answers /info: %d", code)
	}
	code, body := g.call("/info", url.Values{"token": {third}})
	var info struct {
		Email    string
		Verified bool
	}
	if json.Unmarshal([]byte(body), &info); code != http.StatusOK || info.Email != "owner@example.net" || !info.Verified {
		t.Errorf("info after the reclaim: %d %s", code, body)
	}
	if got := txtValues(p.query("udp", "_acme-challenge.home.example.org.", dns.TypeTXT).Answer); !strings.Contains(strings.Join(got, ","), "third-try") {
		t.Errorf("the newest challenge is not served: %v", got)
	}

	// Strangers asking for reclamation mail neither take the mailed token away nor leave
	// the owner's own mail refused (issue 11).
	stranger := gateway{p, "81.2.69.99"}
	limited := 0
	for range 10 {
		switch code, body := stranger.call("/reclaim", url.Values{"name": {"home"}}); {
		case code == http.StatusOK:
			mb.Next(t)
		case code == http.StatusTooManyRequests && errorCode(body) == "RateLimited":
			limited++
		default:
			t.Fatalf("anonymous reclaim: %d %s", code, body)
		}
	}
	if limited != 8 {
		t.Errorf("%d of 10 anonymous reclaims refused, want 8 (the name keeps 3 tokens)", limited)
	}
	fourth, says := g.subscribe(reclaim, owner)
	if fourth == "" {
		t.Fatalf("the first mailed token after the flood: %s", says)
	}
	if m := mb.Next(t); strings.Join(m.To, ",") != "owner@example.net" {
		t.Errorf("the owner's /setemail after the flood sent no mail to them: %q", m.To)
	}
}

func TestGatewayRefusedNames(t *testing.T) {
	mb := &mailtest.Server{SMTPUTF8: true}
	p := startProduct(t, mb.Start(t, "none", nil))
	g := gateway{p, "81.2.69.11"}
	for _, tt := range []struct{ name, reason string }{
		{"admin", "ReservedName"}, // reserved in the Corefile, as in Corefile.example
		{"ns", "ReservedName"},
		{"wpad", "ReservedName"},
		{"autodiscover", "ReservedName"},
		{"xn--pple-43d", "InvalidName"},
		{"my_gateway", "InvalidName"},
		{"", "MissingParameter"},
	} {
		code, body := g.call("/subscribe", url.Values{"name": {tt.name}, "email": {"a@example.net"}})
		var e struct{ Error, Reason string }
		json.Unmarshal([]byte(body), &e)
		if code != http.StatusBadRequest || e.Error != "UnavailableName" || e.Reason != tt.reason || gatewaySays(body) != "already used" {
			t.Errorf("%q: %d %s, want 400 UnavailableName (%s)", tt.name, code, body, tt.reason)
		}
	}
	// Addresses the setup page accepts are only compared: the registration goes through.
	for i, addr := range []string{"jöhn@example.com", "a@b"} {
		name := []string{"umlaut", "shortmail"}[i]
		if token, says := g.subscribe(url.Values{"name": {name}, "email": {addr}}, addr); token == "" {
			t.Fatalf("%s with email %q: %s", name, addr, says)
		}
	}
	// The internationalised one gets its verification mail through /setemail (with SMTPUTF8)
	// and is the name's contact: the owner can reclaim the name. "a@b" is no address to mail.
	m := mb.Next(t)
	link := linkRE.FindString(m.Data)
	if strings.Join(m.To, ",") != "jöhn@example.com" || !m.UTF8 || link == "" || !strings.Contains(m.Data, "\r\nTo: <jöhn@example.com>\r\n") {
		t.Fatalf("verification mail to %q (SMTPUTF8 %v):\n%s", m.To, m.UTF8, m.Data)
	}
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("verification link: %s", resp.Status)
	}
	if _, says := g.subscribe(url.Values{"name": {"umlaut"}, "email": {"Jöhn@Example.com"}}, ""); says != "already used, with a reclaim link" {
		t.Errorf("submitting umlaut again shows %q", says)
	}
	g.call("/reclaim", url.Values{"name": {"umlaut"}})
	if m := mb.Next(t); strings.Join(m.To, ",") != "jöhn@example.com" || !m.UTF8 || tokenRE.FindStringSubmatch(m.Data) == nil {
		t.Errorf("reclamation mail to %q (SMTPUTF8 %v):\n%s", m.To, m.UTF8, m.Data)
	}
	if n := len(mb.Messages()); n != 2 {
		t.Errorf("%d mails, want the verification and the reclamation of umlaut only", n)
	}
}

// One person sets up five gateways with one mailbox, a few seconds apart: every gateway's
// verification mail arrives.
func TestGatewaysSharingAMailbox(t *testing.T) {
	mb := &mailtest.Server{SMTPUTF8: true}
	p := startProduct(t, mb.Start(t, "none", nil))
	for i, addr := range []string{"installer@example.net", "Installer@example.net", "installer+2@example.net", "installer@example.net", "INSTALLER@example.net"} {
		if i > 0 {
			time.Sleep(2 * time.Second)
		}
		g := gateway{p, fmt.Sprintf("81.2.69.%d", 20+i)}
		name := fmt.Sprintf("site%d", i+1)
		token, says := g.subscribe(url.Values{"name": {name}, "email": {addr}}, addr)
		if token == "" {
			t.Fatalf("%s: %s", name, says)
		}
		if m := mb.Next(t); !strings.Contains(m.Data, name+".example.org") || linkRE.FindString(m.Data) == "" {
			t.Fatalf("mail %d to %q is not %s's verification:\n%s", i+1, m.To, name, m.Data)
		}
	}
}
