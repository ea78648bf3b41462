package api

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/regdns/regdns/etcdstore"
)

// A name an operator disabled (regdnsctl names disable) refuses every request about it with
// NameDisabled, stays taken (UnavailableName to /subscribe, even with a valid reclamation
// token) and mails nothing; enabled again, its token and reclamation token work as before.
func TestDisabledName(t *testing.T) {
	e := newEnv(t, nil)
	token := e.subscribe(t, "abuser")
	e.verify(t, token, "owner@example.org")
	rt := e.reclamationToken(t, "abuser")
	if _, err := e.store.Update(t.Context(), etcdstore.ByName("abuser"), func(d *etcdstore.Record) error {
		d.Disable("phishing, ticket 42", time.Now())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sent := len(e.smtp.Messages())
	for _, call := range [][]string{
		{"/info", "token", token},
		{"/ping", "token", token},
		{"/dnsconfig", "token", token, "challenge", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"},
		{"/setemail", "token", token, "email", "new@example.org"},
		{"/revokeemail", "token", token},
		{"/unsubscribe", "token", token},
		{"/unsubscribe", "reclamationToken", rt},
		{"/reclaim", "name", "abuser"},
	} {
		r := e.fails(t, "NameDisabled", call[0], call[1:]...)
		if want := `The name "abuser" is disabled by the registry's operator.`; r.message() != want {
			t.Errorf("%s: message %q, want %q (the operator's reason stays private)", call[0], r.message(), want)
		}
	}
	e.unavailable(t, "NameTaken", "/subscribe", "name", "abuser")
	e.unavailable(t, "NameDisabled", "/subscribe", "name", "abuser", "reclamationToken", rt)
	if n := len(e.smtp.Messages()); n != sent {
		t.Errorf("%d mails sent for a disabled name", n-sent)
	}
	d := e.stored(t, "abuser")
	if d.Token != token || d.Email != "owner@example.org" || !d.IsDisabled() {
		t.Fatalf("disabled record changed: token kept %v, email %q, disabled %v", d.Token == token, d.Email, d.IsDisabled())
	}

	if _, err := e.store.Update(t.Context(), etcdstore.ByName("abuser"), func(d *etcdstore.Record) error {
		d.Enable(time.Now())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if info := e.info(t, token); info["name"] != "abuser" {
		t.Errorf("info after enable: %v", info)
	}
	e.ok(t, "/ping", "token", token)
	e.ok(t, "/subscribe", "name", "abuser", "reclamationToken", rt)
}

// message is the human-readable message of a JSON error reply.
func (r reply) message() string {
	var e struct{ Message string }
	json.Unmarshal([]byte(r.body), &e)
	return e.Message
}
