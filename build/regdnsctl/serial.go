package main

import (
	"context"
	"fmt"
)

// runSerial prints the zone's SOA serial as etcd has it, and with --above raises it over a
// serial served before: after a cluster is restored from a snapshot (README, Restore on a
// cluster), since restore does it itself only for the embedded etcd.
func runSerial(g globals, args []string) int {
	fs := g.flags("serial", "serial [--above N] [--json]")
	above := fs.Uint("above", 0, "raise the serial to be newer than N (RFC 1982) if it is not already")
	asJSON := fs.Bool("json", false, `print {"serial": …}`)
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() > 0 || *above > 1<<32-1 {
		fs.Usage()
		return exitError
	}
	s, err := g.open("serial")
	if err != nil {
		return g.fail("serial", err)
	}
	defer s.done()
	ctx := context.Background()
	serial, err := s.ks.Serial(ctx)
	if err == nil && *above > 0 {
		serial, err = s.ks.RaiseSerial(ctx, uint32(*above))
	}
	if err != nil {
		return g.fail("serial", err)
	}
	if *asJSON {
		g.writeJSON(map[string]uint32{"serial": serial})
	} else {
		fmt.Fprintln(g.stdout, serial)
	}
	return exitOK
}
