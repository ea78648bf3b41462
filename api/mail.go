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
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Mail is one plain-text message to one recipient.
type Mail struct {
	To, Subject, Body string
}

// Mailer delivers mail.
type Mailer interface {
	Send(ctx context.Context, m Mail) error
}

// message is a Mail made ready to hand over: envelope addresses and RFC 5322 text.
type message struct {
	from, to string
	text     []byte
}

// compose checks m's header values and renders it with every header a mail needs. CR and LF
// are refused in addresses and subject because they would let a value start a new header.
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
	_, senderDomain, _ := strings.Cut(sender.Address, "@")
	var b bytes.Buffer
	for _, h := range [][2]string{
		{"From", sender.String()},
		{"To", rcpt.String()},
		{"Subject", mime.QEncoding.Encode("utf-8", m.Subject)},
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
	return message{from: sender.Address, to: rcpt.Address, text: b.Bytes()}, nil
}

// SMTPMailer sends mail through an SMTP server.
type SMTPMailer struct {
	Addr               string // host:port
	Security           string // "starttls" (default: STARTTLS required), "tls" (implicit TLS), "none" (plain, for loopback relays)
	Username, Password string // optional AUTH PLAIN
	From               string
	TLSConfig          *tls.Config   // optional (tests give their own root CA); ServerName defaults to Addr's host
	Timeout            time.Duration // whole-send bound, default 10s
}

// Send delivers m in one SMTP session.
func (s SMTPMailer) Send(ctx context.Context, m Mail) error {
	msg, err := m.compose(s.From, time.Now())
	if err != nil {
		return err
	}
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
	// net/smtp takes no context; expiring the connection ends whatever step it is blocked in.
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Now()) })
	defer stop()
	conn := raw
	if security == "tls" {
		conn = tls.Client(raw, tlsCfg)
	}
	if err := deliver(conn, host, security, tlsCfg, s.Username, s.Password, msg); err != nil {
		return fmt.Errorf("smtp %s: %w", s.Addr, err)
	}
	return nil
}

func deliver(conn net.Conn, host, security string, tlsCfg *tls.Config, user, pass string, msg message) error {
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return err
	}
	defer c.Close()
	if security == "starttls" {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return errors.New("server does not offer STARTTLS")
		}
		if err := c.StartTLS(tlsCfg); err != nil {
			return err
		}
	}
	if user != "" {
		if err := c.Auth(smtp.PlainAuth("", user, pass, host)); err != nil {
			return err
		}
	}
	if err := c.Mail(msg.from); err != nil {
		return err
	}
	if err := c.Rcpt(msg.to); err != nil {
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

// DirMailer writes each mail as an RFC 5322 file (<unix-nanos>-<to>.eml, mode 0600) into Dir
// (created 0700), for setups without SMTP where an operator forwards the mail by hand.
type DirMailer struct {
	Dir string
}

// dirMailFrom is the sender of mail written by DirMailer, which has no relay to name one.
const dirMailFrom = "registry@localhost"

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
