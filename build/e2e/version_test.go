package e2e

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/coredns/coredns/coremain"
)

// TestVersion: ./coredns -version names this project's release and the commit it was built
// from (the Makefile sets both from git), beside the CoreDNS version it is built on.
func TestVersion(t *testing.T) {
	if os.Getenv("COREDNS_BINARY") == "" {
		t.Skip("the version is set by the Makefile's -ldflags: run with COREDNS_BINARY=$PWD/coredns after make build")
	}
	out, err := exec.Command(binary(t), "-version").Output()
	if err != nil {
		t.Fatalf("-version: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	want := regexp.MustCompile(`^regdns-[0-9a-z.+-]+ \(CoreDNS-` + regexp.QuoteMeta(coremain.CoreVersion) + `\)$`)
	if len(lines) != 2 || !want.MatchString(lines[0]) || strings.HasPrefix(lines[0], "regdns-devel") {
		t.Fatalf("-version printed:\n%s\nwant regdns-VERSION (CoreDNS-%s), then the platform and the commit", out, coremain.CoreVersion)
	}
	fields := strings.Split(lines[1], ", ")
	commit := fields[len(fields)-1]
	if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(commit) {
		t.Fatalf("-version names commit %q, want a full git commit", commit)
	}
	if err := exec.Command("git", "cat-file", "-e", commit+"^{commit}").Run(); err != nil {
		t.Errorf("-version names commit %s, which this repository does not have", commit)
	}
}

// TestCtlVersion: regdnsctl version names the same release and commit as ./coredns -version,
// since the Makefile stamps both from one git state.
func TestCtlVersion(t *testing.T) {
	if os.Getenv("COREDNS_BINARY") == "" || os.Getenv("REGDNSCTL_BINARY") == "" {
		t.Skip("the version is set by the Makefile's -ldflags: run with COREDNS_BINARY and REGDNSCTL_BINARY after make build")
	}
	core, err := exec.Command(binary(t), "-version").Output()
	if err != nil {
		t.Fatalf("-version: %v", err)
	}
	ctl, err := exec.Command(ctlBinary(t), "version").Output()
	if err != nil {
		t.Fatalf("regdnsctl version: %v", err)
	}
	m := regexp.MustCompile(`^regdns (\S+) \(commit ([0-9a-f]{40})\)\n$`).FindStringSubmatch(string(ctl))
	if m == nil {
		t.Fatalf("regdnsctl version printed %q, want regdns VERSION (commit HASH)", ctl)
	}
	if !strings.HasPrefix(string(core), "regdns-"+m[1]+" ") || !strings.Contains(string(core), m[2]) {
		t.Errorf("regdnsctl names %s at %s; ./coredns -version says:\n%s", m[1], m[2], core)
	}
}
