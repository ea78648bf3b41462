// Command coredns is CoreDNS with the plugins of plugin.cfg, the registry plugin among them.
package main

//go:generate go run ./gen -in ../plugin.cfg -out zplugins.go

import (
	"os"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/coremain"

	"github.com/regdns/regdns/build/version"
	"github.com/regdns/regdns/etcdstore"
)

func main() {
	// The registry runs its embedded etcd as a child process of this binary (etcdstore/process.go).
	if etcdstore.IsEmbeddedProcess() {
		os.Exit(etcdstore.ServeEmbeddedProcess())
	}
	etcdstore.EnableEmbeddedProcess()
	nameBuild()
	coremain.Run()
}

// nameBuild makes -version and the startup banner name this project's release and commit
// ("regdns-VERSION (CoreDNS-1.15.0)", then "linux/amd64, go1.26.x, COMMIT") instead of a
// stock CoreDNS with an empty commit.
func nameBuild() {
	caddy.AppName = "regdns"
	caddy.AppVersion = version.Version + " (CoreDNS-" + coremain.CoreVersion + ")"
	coremain.GitCommit = version.Commit
}
