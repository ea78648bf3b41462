package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/mail"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/google/uuid"
	"golang.org/x/net/idna"
)

// Mail is one plain-text message to one recipient.
type Mail struct {
	To, Subject, Body string
}

// Mailer delivers mail.
type Mailer interface {
	Send(ctx context.Context, m Mail) error
	// Reaches returns an error if no mail to addr can be handed over at all, so that a
	// handler can refuse addr before storing it.
	Reaches(ctx context.Context, addr string) error
}

// message is a Mail made ready to hand over: envelope addresses and RFC 5322 text.
type message struct {
	from, to string
	utf8     bool // an address has a non-ASCII local part, which only SMTPUTF8 carries
	text     []byte
}

// compose checks m's header values and renders it with every header a mail needs. CR and LF
// are refused in addresses and subject because they would let a value start a new header.
// Domains go in their IDNA (ASCII) form, which every relay routes; a non-ASCII local part
// makes the message an internationalised one (RFC 6532), whose headers show the addresses as
// written. The subject is RFC 2047-encoded either way.
func (m Mail) compose(from string, now time.Time) (message, error) {
	if strings.ContainsAny(from+m.To+m.Subject, "\r\n") {
		return message{}, errors.New("mail header value contains a line break")
	}
	sender, err := mail.ParseAddress(from)
	if err != nil {
		return message{}, fmt.Errorf("mail sender: %w", err)
	}
	rcpt, err := mail.ParseAddress(m.To)
	if err != nil {
		return message{}, fmt.Errorf("mail recipient: %w", err)
	}
	envFrom, utf8From, err := envelopeAddress(sender.Address)
	if err != nil {
		return message{}, fmt.Errorf("mail sender: %w", err)
	}
	envTo, utf8To, err := envelopeAddress(rcpt.Address)
	if err != nil {
		return message{}, fmt.Errorf("mail recipient: %w", err)
	}
	msg := message{from: envFrom, to: envTo, utf8: utf8From || utf8To}
	if !msg.utf8 {
		sender.Address, rcpt.Address = envFrom, envTo
	}
	_, senderDomain, _ := strings.Cut(envFrom, "@")
	var b bytes.Buffer
	for _, h := range [][2]string{
		{"From", sender.String()},
		{"To", rcpt.String()},
		{"Subject", encodeSubject(m.Subject)},
		{"Date", now.Format(time.RFC1123Z)},
		{"Message-ID", "<" + uuid.NewString() + "@" + senderDomain + ">"},
		{"MIME-Version", "1.0"},
		{"Content-Type", "text/plain; charset=utf-8"},
		{"Content-Transfer-Encoding", "8bit"},
	} {
		b.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	b.WriteString("\r\n")
	body := strings.ReplaceAll(m.Body, "\r\n", "\n")
	b.WriteString(strings.ReplaceAll(body, "\n", "\r\n"))
	msg.text = b.Bytes()
	return msg, nil
}

// envelopeAddress is addr (a parsed address) with a non-ASCII domain in its IDNA form, and
// whether its local part is non-ASCII. An ASCII domain goes as it is.
func envelopeAddress(addr string) (string, bool, error) {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return "", false, fmt.Errorf("no @ in %q", addr)
	}
	local, domain := addr[:at], addr[at+1:]
	if nonASCII(domain) {
		ascii, err := idna.Lookup.ToASCII(domain)
		if err != nil {
			return "", false, fmt.Errorf("domain %q: %w", domain, err)
		}
		domain = ascii
	}
	return local + "@" + domain, nonASCII(local), nil
}

func nonASCII(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r >= utf8.RuneSelf })
}

// encodeSubject is s as RFC 2047 encoded-words if it is not plain ASCII, folded between the
// words so that no header line exceeds 76 characters.
func encodeSubject(s string) string {
	return strings.ReplaceAll(mime.QEncoding.Encode("utf-8", s), "?= =?", "?=\r\n =?")
}

// SMTPMailer sends mail through an SMTP server.
type SMTPMailer struct {
	Addr               string // host:port
	Security           string // "starttls" (default: STARTTLS required), "tls" (implicit TLS), "none" (plain, for loopback relays)
	Username, Password string // optional AUTH PLAIN
	From               string
	TLSConfig          *tls.Config   // optional (tests give their own root CA); ServerName defaults to Addr's host
	Timeout            time.Duration // whole-session bound, default 10s
}

// Send delivers m in one SMTP session, with SMTPUTF8 if m needs it.
func (s SMTPMailer) Send(ctx context.Context, m Mail) error {
	msg, err := m.compose(s.From, time.Now())
	if err != nil {
		return err
	}
	return s.session(ctx, func(c *smtp.Client, host string) error { return deliver(c, host, s.Username, s.Password, msg) })
}

// errNoSMTPUTF8 refuses an address that the server cannot take.
var errNoSMTPUTF8 = errors.New("the server does not offer SMTPUTF8, which an address with a non-ASCII local part needs")

// Reaches asks the server, when mail to addr needs SMTPUTF8 (RFC 6531: a non-ASCII local
// part), whether it offers it; any other address it takes without asking.
func (s SMTPMailer) Reaches(ctx context.Context, addr string) error {
	msg, err := Mail{To: addr}.compose(s.From, time.Now())
	if err != nil || !msg.utf8 {
		return err
	}
	return s.session(ctx, func(c *smtp.Client, _ string) error {
		if ok, _ := c.Extension("SMTPUTF8"); !ok {
			return errNoSMTPUTF8
		}
		return c.Quit()
	})
}

// session runs fn with a client connected to the server and, as configured, secured.
func (s SMTPMailer) session(ctx context.Context, fn func(c *smtp.Client, host string) error) error {
	security := orDefault(s.Security, "starttls")
	if security != "starttls" && security != "tls" && security != "none" {
		return fmt.Errorf("smtp %s: unknown security %q", s.Addr, s.Security)
	}
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return fmt.Errorf("smtp address: %w", err)
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.TLSConfig != nil {
		tlsCfg = s.TLSConfig.Clone()
	}
	tlsCfg.ServerName = orDefault(tlsCfg.ServerName, host)

	ctx, cancel := context.WithTimeout(ctx, orDefault(s.Timeout, 10*time.Second))
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("smtp %s: %w", s.Addr, err)
	}
	defer raw.Close()
	// The client sets its own deadline for each command; closing the connection ends
	// whatever step it is in.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	var c *smtp.Client
	switch security {
	case "tls":
		c = smtp.NewClient(tls.Client(raw, tlsCfg))
	case "starttls":
		c, err = smtp.NewClientStartTLS(raw, tlsCfg)
	default:
		c = smtp.NewClient(raw)
	}
	if err == nil {
		defer c.Close()
		err = fn(c, host)
	}
	if err != nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("smtp %s: %w", s.Addr, err)
	}
	return nil
}

func deliver(c *smtp.Client, host, user, pass string, msg message) error {
	if user != "" {
		// As net/smtp's PlainAuth: a password goes in clear only to this machine.
		if _, secure := c.TLSConnectionState(); !secure && !isLocalhost(host) {
			return errors.New("refusing AUTH PLAIN over an unencrypted connection to another host")
		}
		if err := c.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
			return err
		}
	}
	if err := c.Mail(msg.from, &smtp.MailOptions{UTF8: msg.utf8}); err != nil {
		return err
	}
	if err := c.Rcpt(msg.to, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg.text); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// isLocalhost reports whether host names this machine.
func isLocalhost(host string) bool {
	ip, err := netip.ParseAddr(host)
	return host == "localhost" || err == nil && ip.IsLoopback()
}

// DirMailer writes each mail as an RFC 5322 file (<unix-nanos>-<to>.eml, mode 0600) into Dir
// (created 0700), for setups without SMTP where an operator forwards the mail by hand.
type DirMailer struct {
	Dir string
}

// dirMailFrom is the sender of mail written by DirMailer, which has no relay to name one.
const dirMailFrom = "registry@localhost"

// Reaches takes every address: whoever forwards the mail needs SMTPUTF8 for a non-ASCII
// local part.
func (DirMailer) Reaches(context.Context, string) error { return nil }

// Send writes m into a new file in d.Dir.
func (d DirMailer) Send(_ context.Context, m Mail) error {
	now := time.Now()
	msg, err := m.compose(dirMailFrom, now)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		return err
	}
	// The address may hold characters that mean something in a path, such as "/".
	to := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@.+-_", r) {
			return r
		}
		return '_'
	}, msg.to)
	name := filepath.Join(d.Dir, fmt.Sprintf("%d-%s.eml", now.UnixNano(), to))
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(msg.text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
