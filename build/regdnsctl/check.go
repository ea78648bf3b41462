package main

import (
	"context"
	"fmt"
)

// runCheck reports every inconsistency between the records and their indexes, one per line,
// from one scan of etcd (no view of the zone is loaded); with --fix it first repairs what it
// can prove (etcdstore's Repair) and then reports what is left.
func runCheck(g globals, args []string) int {
	fs := g.flags("check", "check [--fix] [--json]")
	fix := fs.Bool("fix", false, "delete index keys no record points back to, create index keys records miss if no other record holds them")
	asJSON := fs.Bool("json", false, `print {"fixed": […], "problems": […]}`)
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() > 0 {
		return g.fail("check", fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	s, err := g.open("check")
	if err != nil {
		return g.fail("check", err)
	}
	defer s.done()
	ctx := context.Background()
	fixed := []string{}
	if *fix {
		if fixed, err = s.ks.Repair(ctx); err != nil {
			return g.fail("check", err)
		}
	}
	problems, err := s.ks.Check(ctx)
	if err != nil {
		return g.fail("check", err)
	}
	if *asJSON {
		g.writeJSON(map[string][]string{"fixed": fixed, "problems": append([]string{}, problems...)})
	} else {
		for _, f := range fixed {
			fmt.Fprintln(g.stdout, "fixed "+f)
		}
		for _, p := range problems {
			fmt.Fprintln(g.stdout, p)
		}
	}
	if len(fixed) > 0 {
		fmt.Fprintf(g.stderr, "regdnsctl check: %d fixed\n", len(fixed))
	}
	if len(problems) > 0 {
		fmt.Fprintf(g.stderr, "regdnsctl check: %d problem(s)\n", len(problems))
		return exitFindings
	}
	return exitOK
}
