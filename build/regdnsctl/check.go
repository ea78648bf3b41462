package main

import (
	"context"
	"fmt"
)

// runCheck reports every inconsistency between the records and their indexes, one per line,
// from one scan of etcd (no view of the zone is loaded).
func runCheck(g globals, args []string) int {
	fs := g.flags("check", "check")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() > 0 {
		return g.fail("check", fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	cfg, err := registryConfig(g.conf, g.zone)
	if err != nil {
		return g.fail("check", err)
	}
	ks, release, err := openKeyspace(cfg, g.stderr)
	if err != nil {
		return g.fail("check", err)
	}
	defer release()
	problems, err := ks.Check(context.Background())
	if err != nil {
		return g.fail("check", err)
	}
	for _, p := range problems {
		fmt.Fprintln(g.stdout, p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(g.stderr, "regdnsctl check: %d problem(s)\n", len(problems))
		return exitFindings
	}
	return exitOK
}
