package main

import (
	"strings"

	"github.com/regdns/regdns/api"
	"github.com/regdns/regdns/etcdstore"
)

var emailCommands = map[string]command{
	"set":   {"set NAME ADDRESS [--verified] [--json]: make ADDRESS the contact address (unverified unless --verified)", runEmailSet},
	"clear": {"clear NAME [--json]: remove the contact address", runEmailClear},
}

func runEmail(g globals, args []string) int { return g.subcommands("email", emailCommands, args) }

func runEmailSet(g globals, args []string) int {
	fs := g.flags("email set", "email set NAME ADDRESS [--verified] [--json]")
	verified := fs.Bool("verified", false, "record the address as verified (you checked it reaches the owner)")
	asJSON := fs.Bool("json", false, "print the record as JSON")
	pos, err := interspersed(fs, args)
	if err != nil {
		return exitError
	}
	if len(pos) != 2 {
		fs.Usage()
		return exitError
	}
	name := strings.ToLower(strings.TrimSpace(pos[0]))
	addr, err := api.ContactAddress(strings.TrimSpace(pos[1]))
	if err != nil {
		return g.fail("email set", err)
	}
	return g.update("email set", name, *asJSON, func(d *etcdstore.Record) error {
		setContact(d, addr, *verified)
		return nil
	})
}

func runEmailClear(g globals, args []string) int {
	fs := g.flags("email clear", "email clear NAME [--json]")
	asJSON := fs.Bool("json", false, "print the record as JSON")
	name, ok := parseName(fs, args)
	if !ok {
		return exitError
	}
	return g.update("email clear", name, *asJSON, func(d *etcdstore.Record) error {
		setContact(d, "", false)
		return nil
	})
}

// setContact makes addr the contact address. What was mailed to another address (the
// reclamation tokens, the verification link) stops working: it proved that mailbox only.
func setContact(d *etcdstore.Record, addr string, verified bool) {
	if !strings.EqualFold(d.Email, addr) {
		d.ClearReclamationTokens()
		d.ClearVerification()
	}
	d.SetEmail(addr, verified)
}
