package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/regdns/regdns/plugin/dnstest"
)

// multisocketSockets is the NUM_SOCKETS the multisocket test gives CoreDNS's multisocket plugin.
const multisocketSockets = 2

// CoreDNS's multisocket plugin opens several UDP sockets and TCP listeners on the registry's
// address (SO_REUSEPORT: the kernel spreads clients over them by their address and port), each
// served by its own server sharing the block's registry: every one answers the registry's
// names, one given through the API after start too, before and after a reload.
func TestMultisocketRegistry(t *testing.T) {
	addrs := dnstest.FreeAddrs(t, 4)
	dir := t.TempDir()
	_, dnsPort, _ := net.SplitHostPort(addrs[0])
	corefile := zoneBlock(dnsPort, fmt.Sprintf("    multisocket %d", multisocketSockets),
		fmt.Sprintf("        api %s\n        %s\n        allow_private_addresses", addrs[1], embeddedEtcd(filepath.Join(dir, "data"), addrs[2], addrs[3])))
	p := runCorefile(t, dir, corefile, addrs[0], addrs[1])

	port, _ := strconv.Atoi(dnsPort)
	for _, proto := range []string{"udp", "tcp"} {
		if n := p.listeningSockets(proto, port); n != multisocketSockets {
			t.Fatalf("coredns has %d %s sockets listening on port %d, want %d (multisocket %d)", n, proto, port, multisocketSockets, multisocketSockets)
		}
	}
	p.serves(otherClient(p), "multi")
	p.answersFromEverySocket()

	// A reload (SIGUSR1) replaces the servers: the new ones serve as many sockets, and the
	// old ones' are not left behind.
	reloads := func() int { return strings.Count(p.log.String(), "Reloading complete") }
	p.cmd.Process.Signal(syscall.SIGUSR1)
	waitUntil(t, 20*time.Second, "the reload by SIGUSR1", func() bool { return reloads() == 1 })
	for _, proto := range []string{"udp", "tcp"} {
		waitUntil(t, 20*time.Second, fmt.Sprintf("%d %s sockets after the reload", multisocketSockets, proto), func() bool {
			return p.listeningSockets(proto, port) == multisocketSockets
		})
	}
	p.serves(otherClient(p), "reloaded")
	p.answersFromEverySocket()
}

// answersFromEverySocket asks for multi.example.org from 64 fresh sockets over UDP and over TCP.
func (p *product) answersFromEverySocket() {
	p.t.Helper()
	// Each query from its own socket, so from its own source port: with 64 of them, the
	// chance that the kernel sends all of them to the same socket is 2^-63, and a socket
	// nothing serves would leave its share unanswered.
	for _, network := range []string{"udp", "tcp"} {
		var wg sync.WaitGroup
		failures := make(chan string, 64)
		for range 64 {
			wg.Go(func() {
				r, err := dnstest.Exchange(network, p.dns, "multi.example.org.", dns.TypeA)
				if err != nil || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.7" {
					failures <- fmt.Sprintf("%v %v", r, err)
				}
			})
		}
		wg.Wait()
		close(failures)
		for f := range failures {
			p.t.Errorf("%s query from a fresh socket: %s", network, f)
		}
	}
}

// dns_tcp_guard's descriptor check does not hold with several sockets accepting at once
// (a flood of 3,072 connections left 319-356 open at a threshold of 299), so ./coredns
// refuses the combination at start: multisocket's setup runs before the registry's.
func TestMultisocketRefusesDNSTCPGuard(t *testing.T) {
	addrs := dnstest.FreeAddrs(t, 4)
	dir := t.TempDir()
	_, dnsPort, _ := net.SplitHostPort(addrs[0])
	cf := filepath.Join(dir, "Corefile")
	corefile := zoneBlock(dnsPort, fmt.Sprintf("    multisocket %d", multisocketSockets),
		fmt.Sprintf("        api %s\n        %s\n        dns_tcp_guard", addrs[1], embeddedEtcd(filepath.Join(dir, "data"), addrs[2], addrs[3])))
	if err := os.WriteFile(cf, []byte(corefile), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary(t), "-conf", cf).CombinedOutput()
	if err == nil || ctx.Err() != nil || !strings.Contains(string(out), "dns_tcp_guard cannot be combined with multisocket") {
		t.Errorf("./coredns with multisocket %d and dns_tcp_guard: %v, want it to exit refusing them\n%s", multisocketSockets, err, out)
	}
}

// listeningSockets counts the sockets of ./coredns bound to port on IPv4 for proto ("udp" or
// "tcp", listening ones only), from /proc/net/PROTO matched against the process's descriptors.
func (p *product) listeningSockets(proto string, port int) int {
	p.t.Helper()
	pid := p.cmd.Process.Pid
	owned := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		p.t.Fatal(err)
	}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			owned[strings.TrimSuffix(inode, "]")] = true
		}
	}
	table, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, proto))
	if err != nil {
		p.t.Fatal(err)
	}
	defer table.Close()
	wantLocal := fmt.Sprintf(":%04X", port)
	n := 0
	sc := bufio.NewScanner(table)
	sc.Scan() // header
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
		f := strings.Fields(sc.Text())
		if len(f) > 9 && strings.HasSuffix(f[1], wantLocal) && (proto == "udp" || f[3] == "0A") && owned[f[9]] {
			n++
		}
	}
	return n
}
