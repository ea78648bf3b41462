// Command coredns is CoreDNS with the plugins of plugin.cfg, the registry plugin among them.
package main

//go:generate go run ./gen -in ../plugin.cfg -out zplugins.go

import "github.com/coredns/coredns/coremain"

func main() { coremain.Run() }
