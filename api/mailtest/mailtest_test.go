package mailtest

import (
	"context"
	"net/smtp"
	"testing"
	"time"
)

// TestServerKeepsMail sends two messages with net/smtp and checks what Messages, Last and
// Next report, and that Next fails when nothing new arrives.
func TestServerKeepsMail(t *testing.T) {
	var s Server
	addr := s.Start(t, "none", nil)
	send := func(to, body string) {
		t.Helper()
		if err := smtp.SendMail(addr, nil, "from@example.org", []string{to}, []byte("Subject: hi\r\n\r\n"+body+"\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	send("a@example.org", "first: 1")
	if m := s.Next(t); m.From != "from@example.org" || len(m.To) != 1 || m.To[0] != "a@example.org" || m.Line(t, "first:") != "first: 1" {
		t.Errorf("first message %+v", m)
	}
	send("b@example.org", "second: 2")
	if m := s.Last(t); m.To[0] != "b@example.org" || m.Line(t, "second:") != "second: 2" {
		t.Errorf("last message %+v", m)
	}
	if n := len(s.Messages()); n != 2 {
		t.Errorf("%d messages kept, want 2", n)
	}
	if m := s.Next(t); m.To[0] != "b@example.org" {
		t.Errorf("Next after the second send returned %+v", m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	failed := make(chan bool)
	go func() {
		ft := &fatalRecorder{TB: t}
		defer func() { failed <- ft.fatal }()
		defer func() { recover() }()
		s.Next(ft)
	}()
	select {
	case f := <-failed:
		if !f {
			t.Error("Next returned with no new message")
		}
	case <-ctx.Done():
		t.Error("Next did not give up")
	}
}

// TestServerRequiresAuth checks that with User set, mail without AUTH is refused.
func TestServerRequiresAuth(t *testing.T) {
	s := Server{User: "u", Pass: "p"}
	addr := s.Start(t, "none", nil)
	if err := smtp.SendMail(addr, nil, "from@example.org", []string{"a@example.org"}, []byte("\r\nx\r\n")); err == nil {
		t.Error("mail accepted without authentication")
	}
	if n := len(s.Messages()); n != 0 {
		t.Errorf("%d messages kept", n)
	}
}

// fatalRecorder records Fatal instead of ending the test, and stops the caller by panicking.
type fatalRecorder struct {
	testing.TB
	fatal bool
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatal(...any) {
	f.fatal = true
	panic("fatal")
}
