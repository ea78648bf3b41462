package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestReloadPluginStopsWatchingAfterSIGUSR1 pins the CoreDNS behaviour Corefile.example and
// the README warn about: the reload plugin applies an edit of the Corefile by itself, but
// after one SIGUSR1 it no longer watches the file, and only the next SIGUSR1 applies an edit.
// If this test fails because a later CoreDNS fixed that, change those two texts with it.
func TestReloadPluginStopsWatchingAfterSIGUSR1(t *testing.T) {
	registry := func(tunnel string) string {
		return "        ns ns1.example.org 127.0.0.1\n        tunnel " + tunnel
	}
	p := startServer(t, "    reload 2s 1s", registry("192.0.2.80"))
	corefile := filepath.Join(p.cmd.Dir, "Corefile")
	subscribe(t, p, "gw", "0", "")
	tunnel := func() []string { return rdata(p.query("udp", "gw.example.org.", dns.TypeA), dns.TypeA) }
	edit := func(from, to string) {
		t.Helper()
		b, err := os.ReadFile(corefile)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(corefile, []byte(strings.Replace(string(b), "tunnel "+from, "tunnel "+to, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	reloads := func() int { return strings.Count(p.log.String(), "Reloading complete") }

	edit("192.0.2.80", "192.0.2.81")
	waitUntil(t, 20*time.Second, "the reload plugin applying an edit", func() bool { return slices.Equal(tunnel(), []string{"192.0.2.81"}) })

	before := reloads()
	p.cmd.Process.Signal(syscall.SIGUSR1)
	waitUntil(t, 20*time.Second, "the reload by SIGUSR1", func() bool { return reloads() > before })

	edit("192.0.2.81", "192.0.2.82")
	// Ten check intervals of the reload plugin (2s, with up to 1s of jitter).
	time.Sleep(20 * time.Second)
	if got := tunnel(); !slices.Equal(got, []string{"192.0.2.81"}) {
		t.Fatalf("after a SIGUSR1, an edit was applied without a signal (tunnel %v): the reload plugin watches the file again; update Corefile.example and the README", got)
	}
	p.cmd.Process.Signal(syscall.SIGUSR1)
	waitUntil(t, 20*time.Second, "the next SIGUSR1 applying the edit", func() bool { return slices.Equal(tunnel(), []string{"192.0.2.82"}) })
}
