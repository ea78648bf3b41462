// Package mailtest runs an SMTP server on loopback (go-smtp) that keeps every message it
// receives, for tests of what the API and the built server mail.
package mailtest

import (
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Server is an SMTP server that keeps what it receives. The zero value accepts any mail
// without authentication and does not offer SMTPUTF8.
type Server struct {
	// User and Pass, when set, are required through AUTH PLAIN.
	User, Pass string
	// SMTPUTF8 has the server offer SMTPUTF8 (RFC 6531).
	SMTPUTF8 bool

	mu      sync.Mutex
	msgs    []Message
	taken   int           // messages handed out by Next
	arrived chan struct{} // closed and replaced when a message arrives
}

// Message is one mail as the server received it.
type Message struct {
	From string
	To   []string
	Data string
	User string // authenticated user, "" without AUTH
	TLS  bool   // received over TLS (implicit or STARTTLS)
	UTF8 bool   // MAIL FROM had the SMTPUTF8 parameter
	// EightBit is MAIL FROM's BODY=8BITMIME.
	EightBit bool
}

// Start serves on a free loopback port until the test ends and returns its address.
// security is "none" (plain), "starttls" (offering STARTTLS) or "tls" (implicit TLS); cert is
// used by the last two.
func (s *Server) Start(t testing.TB, security string, cert *tls.Certificate) string {
	t.Helper()
	srv := smtp.NewServer(s)
	srv.Domain = "localhost"
	srv.EnableSMTPUTF8 = s.SMTPUTF8
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	// Sessions cut off by a test (a killed client, a refused message) would only be noise.
	srv.ErrorLog = log.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	switch security {
	case "starttls":
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
	case "tls":
		l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{*cert}})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	t.Cleanup(func() {
		// Close the listener too: Server.Close misses it if Serve has not registered it yet.
		srv.Close()
		l.Close()
		<-done
	})
	return l.Addr().String()
}

// Messages returns every message received so far, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Last is the newest message; a send returns only after the server accepted it.
func (s *Server) Last(t testing.TB) Message {
	t.Helper()
	msgs := s.Messages()
	if len(msgs) == 0 {
		t.Fatal("no mail received")
	}
	return msgs[len(msgs)-1]
}

// Next waits up to 10 seconds for a message not yet counted by Next and returns the newest
// message: each message received lets one call of Next return.
func (s *Server) Next(t testing.TB) Message {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		if len(s.msgs) > s.taken {
			s.taken++
			m := s.msgs[len(s.msgs)-1]
			s.mu.Unlock()
			return m
		}
		arrived := s.arrivedLocked()
		s.mu.Unlock()
		select {
		case <-arrived:
		case <-deadline:
			t.Fatal("no mail arrived within 10s")
		}
	}
}

func (s *Server) arrivedLocked() chan struct{} {
	if s.arrived == nil {
		s.arrived = make(chan struct{})
	}
	return s.arrived
}

func (s *Server) add(m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	if s.arrived != nil {
		close(s.arrived)
		s.arrived = nil
	}
}

// NewSession implements smtp.Backend.
func (s *Server) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{server: s, conn: c}, nil
}

type session struct {
	server *Server
	conn   *smtp.Conn
	user   string
	msg    Message
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.server.User || pass != s.server.Pass {
			return errors.New("invalid credentials")
		}
		s.user = user
		return nil
	}), nil
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if s.server.User != "" && s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.msg = Message{From: from, UTF8: opts.UTF8, EightBit: opts.Body == smtp.Body8BitMIME}
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.msg.To = append(s.msg.To, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, s.msg.TLS = s.conn.TLSConnectionState()
	s.msg.Data, s.msg.User = string(b), s.user
	s.server.add(s.msg)
	return nil
}

func (s *session) Reset()        { s.msg = Message{} }
func (s *session) Logout() error { return nil }

// Parse reads the message text as RFC 5322 and returns it with its body.
func (m Message) Parse(t testing.TB) (*mail.Message, string) {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(m.Data))
	if err != nil {
		t.Fatalf("received mail does not parse: %v\n%s", err, m.Data)
	}
	body, err := io.ReadAll(msg.Body)
	if err != nil {
		t.Fatal(err)
	}
	return msg, string(body)
}

// Line returns the body line that starts with prefix.
func (m Message) Line(t testing.TB, prefix string) string {
	t.Helper()
	_, body := m.Parse(t)
	for l := range strings.SplitSeq(body, "\r\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	t.Fatalf("no line starting with %q in mail:\n%s", prefix, body)
	return ""
}
