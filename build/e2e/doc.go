// Package e2e holds the end-to-end tests: they run the built ./coredns and ./regdnsctl (through
// $COREDNS_BINARY and $REGDNSCTL_BINARY, set by `make test`, or built from build/ and
// build/regdnsctl when unset) against real clients, mail, etcd clusters and faults.
package e2e
