// Command regdns-check reports inconsistencies between the registry's records and their
// indexes in etcd, one per line; it exits 0 if there are none, 1 if there are, 2 if it cannot check.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/regdns/regdns/etcdstore"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run is the whole command, apart from the process, so that tests can call it.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("regdns-check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoints := fs.String("endpoints", "", "comma-separated etcd client URLs; default the embedded etcd of -data")
	data := fs.String("data", "data", "the registry's data directory (the Corefile's data), to reach its running embedded etcd")
	var cfg etcdstore.Config
	fs.StringVar(&cfg.Prefix, "prefix", etcdstore.DefaultPrefix, "key prefix of the registry's data")
	fs.DurationVar(&cfg.Timeout, "timeout", etcdstore.DefaultTimeout, "bound on each etcd request")
	fs.StringVar(&cfg.CAFile, "cacert", "", "CA certificate file that signed etcd's server certificate")
	fs.StringVar(&cfg.CertFile, "cert", "", "client certificate file for etcd")
	fs.StringVar(&cfg.KeyFile, "key", "", "key file of the client certificate")
	fs.StringVar(&cfg.Username, "user", "", "etcd user name")
	fs.StringVar(&cfg.Password, "password", "", "etcd password")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "regdns-check: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	for e := range strings.SplitSeq(*endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			cfg.Endpoints = append(cfg.Endpoints, e)
		}
	}

	if len(cfg.Endpoints) == 0 {
		local, err := etcdstore.LocalEndpoint(*data)
		if err != nil {
			fmt.Fprintf(stderr, "regdns-check: %v\n", err)
			return 2
		}
		cfg.Endpoints = []string{local}
	}

	ctx := context.Background()
	store, err := etcdstore.Open(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "regdns-check: %v\n", err)
		return 2
	}
	defer store.Close()
	problems, err := store.Check(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "regdns-check: %v\n", err)
		return 2
	}
	for _, p := range problems {
		fmt.Fprintln(stdout, p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "regdns-check: %d problem(s)\n", len(problems))
		return 1
	}
	return 0
}
