// Command regdnsctl is the registry operator's tool: it reads the registry block of the
// server's Corefile to reach the same etcd, and imports, checks, manages, backs up and restores
// the registry's data. The commands on names and etcd take --json for output a script reads.
package main

import (
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"

	"github.com/regdns/regdns/build/version"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// Exit statuses of every command.
const (
	exitOK       = 0 // done, nothing to report
	exitFindings = 1 // done, with problems reported (inconsistencies, skipped rows, conflicts)
	exitError    = 2 // could not do it: bad usage, unreadable input, etcd unreachable
	exitNotFound = 3 // the name given is not registered
)

// command is one subcommand: it parses its own arguments and returns the exit status.
type command struct {
	summary string
	run     func(g globals, args []string) int
}

// globals are the flags before the command name, and where to write.
type globals struct {
	conf, zone     string
	stdout, stderr io.Writer
}

var commands = map[string]command{
	"import":   {"import [--dry-run] SOURCE: copy the original server's database into etcd", runImport},
	"check":    {"check [--fix]: report (and repair) inconsistencies between records and their indexes", runCheck},
	"corefile": {"corefile --from config.toml [-templates DIR]: print a Corefile for the original server's configuration", runCorefile},
	"names":    {"names list|show|delete|disable|enable …: inspect and manage registered names", runNames},
	"token":    {"token rotate NAME: give a name a new API token", runToken},
	"email":    {"email set NAME ADDRESS [--verified] | email clear NAME: set or remove a contact address", runEmail},
	"serial":   {"serial [--above N]: print the SOA serial; raise it above N (after restoring a cluster)", runSerial},
	"stats":    {"stats: count names by mode, email, staleness; etcd's size and revision", runStats},
	"backup":   {"backup FILE: write a snapshot of etcd (mode 0600)", runBackup},
	"restore":  {"restore FILE [--serial N]: with the server stopped, put the embedded etcd back from a snapshot", runRestore},
	"version":  {"version: print this build's release and commit", runVersion},
}

// runVersion prints the release and commit the Makefile stamped into this build.
func runVersion(g globals, args []string) int {
	if len(args) > 0 {
		fmt.Fprintln(g.stderr, "usage: regdnsctl version")
		return exitError
	}
	fmt.Fprintln(g.stdout, version.String())
	return exitOK
}

// run is the whole tool, apart from the process, so that tests can call it.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("regdnsctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	g := globals{stdout: stdout, stderr: stderr}
	fs.StringVar(&g.conf, "conf", "Corefile", "the server's Corefile, whose registry block says where etcd is")
	fs.StringVar(&g.zone, "zone", "", "the registry block's zone, when the Corefile has several")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: regdnsctl [-conf Corefile] [-zone ZONE] COMMAND [ARGS]\n\ncommands:")
		for _, name := range slices.Sorted(maps.Keys(commands)) {
			fmt.Fprintf(stderr, "  %s\n", commands[name].summary)
		}
		fmt.Fprintln(stderr, "\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return exitError
	}
	cmd, ok := commands[fs.Arg(0)]
	if !ok {
		fmt.Fprintf(stderr, "regdnsctl: unknown command %q\n", fs.Arg(0))
		fs.Usage()
		return exitError
	}
	return cmd.run(g, fs.Args()[1:])
}

// fail reports err for command name and returns exitError.
func (g globals) fail(name string, err error) int {
	fmt.Fprintf(g.stderr, "regdnsctl %s: %v\n", name, err)
	return exitError
}

// flags is a flag set for command name whose errors go to stderr.
func (g globals) flags(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("regdnsctl "+name, flag.ContinueOnError)
	fs.SetOutput(g.stderr)
	fs.Usage = func() {
		fmt.Fprintf(g.stderr, "usage: regdnsctl %s\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// interspersed parses args with fs allowing flags after the positional arguments
// (`import sqlite:x --dry-run`), and returns the positional ones.
func interspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
