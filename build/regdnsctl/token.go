package main

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/regdns/regdns/etcdstore"
)

var tokenCommands = map[string]command{
	"rotate": {"rotate NAME [--json]: give the name a new API token and print it; the old one stops working", runTokenRotate},
}

func runToken(g globals, args []string) int { return g.subcommands("token", tokenCommands, args) }

// runTokenRotate replaces the API token (also the PageKite secret) in the record and its
// index in one transaction. The gateway must be given the new token: it keeps the old one.
func runTokenRotate(g globals, args []string) int {
	fs := g.flags("token rotate", "token rotate NAME [--json]")
	asJSON := fs.Bool("json", false, `print {"name": …, "token": …}`)
	name, ok := parseName(fs, args)
	if !ok {
		return exitError
	}
	s, err := g.open("token rotate")
	if err != nil {
		return g.fail("token rotate", err)
	}
	defer s.done()
	token := uuid.NewString() // the form /subscribe gives
	d, err := s.ks.Update(context.Background(), etcdstore.ByName(name), func(d *etcdstore.Record) error {
		d.Token = token
		return nil
	})
	if err != nil {
		return s.result(name, err)
	}
	if *asJSON {
		g.writeJSON(map[string]string{"name": d.Name, "token": d.Token})
	} else {
		fmt.Fprintln(g.stdout, d.Token)
	}
	return exitOK
}
