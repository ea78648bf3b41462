package api

import (
	"context"
	"crypto/tls"
	"errors"
	"mime"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regdns/regdns/api/mailtest"
	"github.com/regdns/regdns/etcdstore/certtest"
)

func TestSMTPMailer(t *testing.T) {
	cert, roots := certtest.SelfSigned(t)
	for _, tt := range []struct {
		name           string
		server, client string // security of each side
		user, pass     string // required by the server / sent by the client
		sendPass       string
		wantErr        bool
		wantTLS        bool
	}{
		{name: "plain", server: "none", client: "none"},
		{name: "STARTTLS with AUTH PLAIN", server: "starttls", client: "starttls", user: "relay", pass: "s3cret", sendPass: "s3cret", wantTLS: true},
		{name: "STARTTLS is the default", server: "starttls", client: "", wantTLS: true},
		{name: "implicit TLS with AUTH PLAIN", server: "tls", client: "tls", user: "relay", pass: "s3cret", sendPass: "s3cret", wantTLS: true},
		{name: "STARTTLS required but not offered", server: "none", client: "starttls", wantErr: true},
		{name: "wrong password", server: "tls", client: "tls", user: "relay", pass: "s3cret", sendPass: "guess", wantErr: true},
		{name: "unknown security", server: "none", client: "ssl", wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sink := &mailtest.Server{User: tt.user, Pass: tt.pass}
			m := SMTPMailer{
				Addr:      sink.Start(t, tt.server, &cert),
				Security:  tt.client,
				Username:  tt.user,
				Password:  tt.sendPass,
				From:      "registry@mydomain.org",
				TLSConfig: &tls.Config{RootCAs: roots},
				Timeout:   5 * time.Second,
			}
			err := m.Send(context.Background(), Mail{To: "owner@example.org", Subject: "Hi", Body: "line one\nline two\n"})
			if tt.wantErr {
				if err == nil {
					t.Fatal("sent")
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := sink.Last(t)
			if got.TLS != tt.wantTLS || got.User != tt.user || got.From != "registry@mydomain.org" || strings.Join(got.To, ",") != "owner@example.org" {
				t.Errorf("received tls=%v user=%q from %q to %v", got.TLS, got.User, got.From, got.To)
			}
			if _, body := got.Parse(t); body != "line one\r\nline two\r\n" {
				t.Errorf("body %q", body)
			}
		})
	}
}

func TestSMTPMailerTimeout(t *testing.T) {
	// A server that accepts and never greets.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	m := SMTPMailer{Addr: l.Addr().String(), Security: "none", From: "registry@mydomain.org", Timeout: 200 * time.Millisecond}
	start := time.Now()
	if err := m.Send(context.Background(), Mail{To: "owner@example.org", Subject: "Hi", Body: "x"}); err == nil {
		t.Fatal("sent to a silent server")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("gave up after %v", took)
	}
}

func TestMailRefusesHeaderInjection(t *testing.T) {
	sink := &mailtest.Server{}
	m := SMTPMailer{Addr: sink.Start(t, "none", nil), Security: "none", From: "registry@mydomain.org"}
	d := DirMailer{Dir: t.TempDir()}
	for _, tt := range []struct {
		name string
		mail Mail
		from string
	}{
		{"subject", Mail{To: "owner@example.org", Subject: "Hi\r\nBcc: victim@example.org"}, m.From},
		{"bare LF in subject", Mail{To: "owner@example.org", Subject: "Hi\nBcc: victim@example.org"}, m.From},
		{"recipient", Mail{To: "owner@example.org\r\nBcc: victim@example.org", Subject: "Hi"}, m.From},
		{"sender", Mail{To: "owner@example.org", Subject: "Hi"}, "registry@mydomain.org\nBcc: victim@example.org"},
		{"recipient not an address", Mail{To: "owner", Subject: "Hi"}, m.From},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sm := m
			sm.From = tt.from
			if err := sm.Send(context.Background(), tt.mail); err == nil {
				t.Error("SMTPMailer sent it")
			}
			if tt.from == m.From {
				if err := d.Send(context.Background(), tt.mail); err == nil {
					t.Error("DirMailer wrote it")
				}
			}
		})
	}
	if n := len(sink.Messages()); n != 0 {
		t.Errorf("%d mails reached the server", n)
	}
}

func TestDirMailer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	d := DirMailer{Dir: dir}
	if err := d.Send(context.Background(), Mail{To: "o/wner@example.org", Subject: "Grüße", Body: "Hello\nthere"}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("outbox %v: %v", st.Mode(), err)
	}
	files, err := os.ReadDir(dir)
	if err != nil || len(files) != 1 {
		t.Fatalf("outbox holds %v: %v", files, err)
	}
	name := files[0].Name()
	nanos, rest, _ := strings.Cut(name, "-")
	if rest != "o_wner@example.org.eml" || len(nanos) < 19 || strings.Trim(nanos, "0123456789") != "" {
		t.Errorf("file name %q", name)
	}
	info, _ := files[0].Info()
	if info.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v", info.Mode())
	}
	text, _ := os.ReadFile(filepath.Join(dir, name))
	msg, err := mail.ReadMessage(strings.NewReader(string(text)))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"From", "To", "Subject", "Date", "Message-Id", "Mime-Version", "Content-Type"} {
		if msg.Header.Get(h) == "" {
			t.Errorf("no %s header in\n%s", h, text)
		}
	}
	if !strings.HasSuffix(string(text), "\r\n\r\nHello\r\nthere") {
		t.Errorf("body not in CRLF lines:\n%q", text)
	}
}

func TestDirMailerThroughAPI(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, func(c *Config) { c.Mailer = DirMailer{Dir: dir} })
	token := e.subscribe(t, "demo")
	e.ok(t, "/setemail", "token", token, "email", "owner@example.org")
	files, _ := os.ReadDir(dir)
	if len(files) != 1 {
		t.Fatalf("outbox holds %v", files)
	}
	text, _ := os.ReadFile(filepath.Join(dir, files[0].Name()))
	if !strings.Contains(string(text), "\r\n"+e.url+"/verifyemail?s=") {
		t.Errorf("no verification link in\n%s", text)
	}
}

// Reaches asks the server about SMTPUTF8 only for mail that needs it, after STARTTLS (a
// server may list other extensions once the connection is secure).
func TestSMTPMailerReaches(t *testing.T) {
	cert, roots := certtest.SelfSigned(t)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead.Close()
	for _, smtputf8 := range []bool{true, false} {
		sink := &mailtest.Server{SMTPUTF8: smtputf8}
		m := SMTPMailer{Addr: sink.Start(t, "starttls", &cert), From: "registry@mydomain.org", TLSConfig: &tls.Config{RootCAs: roots}}
		if err := m.Reaches(context.Background(), "jöhn@exämple.com"); (err == nil) != smtputf8 || err != nil && !errors.Is(err, errNoSMTPUTF8) {
			t.Errorf("SMTPUTF8 offered %v: %v", smtputf8, err)
		}
		if len(sink.Messages()) != 0 {
			t.Error("asking sent mail")
		}
	}
	// No server is asked about an ASCII local part: this one is not even listening.
	m := SMTPMailer{Addr: dead.Addr().String(), Security: "none", From: "registry@mydomain.org"}
	for _, addr := range []string{"owner@example.org", "owner@bücher.de"} {
		if err := m.Reaches(context.Background(), addr); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}
	if err := m.Reaches(context.Background(), "jöhn@exämple.com"); err == nil {
		t.Error("a dead server reaches jöhn@exämple.com")
	}
}

// DirMailer writes mail to an internationalised address too: the file is named after the
// envelope address (domain in IDNA form), the headers show the address as given.
func TestDirMailerInternationalised(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, func(c *Config) { c.Mailer = DirMailer{Dir: dir} })
	token := e.subscribe(t, "demo")
	e.ok(t, "/setemail", "token", token, "email", "jöhn@exämple.com")
	files, _ := os.ReadDir(dir)
	if len(files) != 1 || !strings.HasSuffix(files[0].Name(), "-j_hn@xn--exmple-cua.com.eml") {
		t.Fatalf("outbox holds %v", files)
	}
	text, _ := os.ReadFile(filepath.Join(dir, files[0].Name()))
	msg, err := mail.ReadMessage(strings.NewReader(string(text)))
	if err != nil || msg.Header.Get("To") != "<jöhn@exämple.com>" {
		t.Fatalf("To %q (%v) in\n%s", msg.Header.Get("To"), err, text)
	}
	if !strings.Contains(string(text), "\r\n"+e.url+"/verifyemail?s=") {
		t.Errorf("no verification link in\n%s", text)
	}
}

// A non-ASCII subject is RFC 2047-encoded and folded between its encoded-words, so that no
// line holding one is longer than RFC 2047 allows; an ASCII one goes as it is.
func TestSubjectEncoding(t *testing.T) {
	for _, subject := range []string{
		strings.Repeat("Grüße aus Köln für demo.mydomain.org, ", 6),
		"Confirm your email address for demo.mydomain.org",
	} {
		msg, err := Mail{To: "owner@example.org", Subject: subject}.compose("registry@mydomain.org", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		header, _, _ := strings.Cut(string(msg.text), "\r\n\r\n")
		_, field, _ := strings.Cut(header, "\r\nSubject: ")
		field, _, _ = strings.Cut(field, "\r\nDate: ")
		lines := strings.Split(field, "\r\n")
		for _, l := range lines[1:] {
			if !strings.HasPrefix(l, " =?utf-8?q?") || len(l) > 76 {
				t.Errorf("continuation line %q", l)
			}
		}
		if nonASCII(header) || nonASCII(subject) != (len(lines) > 1) {
			t.Errorf("subject %q sent as:\n%s", subject, field)
		}
		parsed, err := mail.ReadMessage(strings.NewReader(string(msg.text)))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := new(mime.WordDecoder).DecodeHeader(parsed.Header.Get("Subject")); got != subject || err != nil {
			t.Errorf("subject reads back as %q (%v), want %q", got, err, subject)
		}
	}
}

// AUTH PLAIN goes over a plain connection only to this machine, as net/smtp's PlainAuth has it.
func TestIsLocalhost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "127.0.0.1": true, "127.0.0.53": true, "::1": true,
		"smtp.example.net": false, "192.0.2.25": false, "localhost.example.net": false, "::ffff:192.0.2.25": false,
	} {
		if got := isLocalhost(host); got != want {
			t.Errorf("isLocalhost(%q) = %v", host, got)
		}
	}
}
