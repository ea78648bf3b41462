package api

import (
	"bytes"
	golog "log"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var auditLine = regexp.MustCompile(`audit endpoint=\S+ name=\S+ caller=\S+ code=\d+`)

// auditLines runs calls against an API configured by configure and returns the audit lines
// logged meanwhile, and the whole log.
func auditLines(t *testing.T, configure func(*Config), calls func(e *env)) ([]string, string) {
	var logs bytes.Buffer
	golog.SetOutput(&logs)
	defer golog.SetOutput(os.Stderr)
	calls(newEnv(t, configure))
	golog.SetOutput(os.Stderr)
	return auditLine.FindAllString(logs.String(), -1), logs.String()
}

// TestAuditLog pins one INFO line per call that changes (or tried to change) a name, with the
// endpoint, the name, the caller and the status, and none for reads or pings that change nothing.
func TestAuditLog(t *testing.T) {
	var token, link, rt, challenge string
	lines, logs := auditLines(t, nil, func(e *env) {
		token = e.subscribe(t, "demo")
		e.ok(t, "/info", "token", token)
		e.ok(t, "/ping", "token", token)                            // same address, just subscribed: nothing written
		e.ok(t, "/ping", "token", token, "ip", "9.9.9.9")           // a new address
		e.fails(t, "InvalidToken", "/ping", "token", "not-a-token") // name unknown
		challenge = "acme-challenge-value-0123456789"
		e.ok(t, "/dnsconfig", "token", token, "challenge", challenge)
		link = e.verifyLink(t, token, "owner@example.org")
		fetch(t, "GET", nil, link)
		rt = e.reclamationToken(t, "demo")
		e.ok(t, "/revokeemail", "token", token)
		e.fails(t, "InvalidToken", "/unsubscribe", "token", rt+"0")
		e.ok(t, "/unsubscribe", "token", token)
	})
	want := []string{
		"audit endpoint=/subscribe name=demo caller=127.0.0.1 code=200",
		"audit endpoint=/ping name=demo caller=127.0.0.1 code=200",
		"audit endpoint=/ping name=- caller=127.0.0.1 code=400",
		"audit endpoint=/dnsconfig name=demo caller=127.0.0.1 code=200",
		"audit endpoint=/setemail name=demo caller=127.0.0.1 code=200",
		"audit endpoint=/verifyemail name=demo caller=127.0.0.1 code=200",
		"audit endpoint=/reclaim name=demo caller=127.0.0.1 code=200",
		"audit endpoint=/revokeemail name=demo caller=127.0.0.1 code=200",
		"audit endpoint=/unsubscribe name=- caller=127.0.0.1 code=400",
		"audit endpoint=/unsubscribe name=demo caller=127.0.0.1 code=200",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("audit lines:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(logs, "[INFO] plugin/registry: audit endpoint=/subscribe") {
		t.Errorf("audit lines are not logged at INFO:\n%s", logs)
	}
	id := link[strings.LastIndex(link, "=")+1:]
	for what, secret := range map[string]string{"token": token, "reclamation token": rt, "verification id": id,
		"challenge": challenge, "address": "owner@example.org", "query string": "?"} {
		for _, l := range lines {
			if strings.Contains(l, secret) {
				t.Errorf("the %s is in the audit line %q", what, l)
			}
		}
	}
	if strings.Contains(logs, token) || strings.Contains(logs, rt) || strings.Contains(logs, id) {
		t.Errorf("a secret is in the log:\n%s", logs)
	}
}

func TestAuditOff(t *testing.T) {
	lines, logs := auditLines(t, func(c *Config) { c.AuditOff = true }, func(e *env) {
		token := e.subscribe(t, "demo")
		e.ok(t, "/dnsconfig", "token", token, "challenge", "acme-challenge-value-0123456789")
	})
	if len(lines) != 0 {
		t.Errorf("audit off, yet logged:\n%s", strings.Join(lines, "\n"))
	}
	if !strings.Contains(logs, `GET "/subscribe" 200`) {
		t.Errorf("the calls were not made (no access log line):\n%s", logs)
	}
}
